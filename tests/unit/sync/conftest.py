"""The engine and executor over in-memory fakes of both ports and a real SQLite store in ``tmp_path``.

The configuration is the shipped one (``config/demo.yaml`` with ``mappings/``), as the end-to-end
tests use it, with one worker (no threads) and a store file per test. The engine is built as
:func:`connector.runtime.assembly.build` builds it, the fakes standing in for the adapters and a
:class:`~tests.fakes.Clock` for the wall clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connector.config import LoadedConfig, load_config
from connector.core.models import Incident
from connector.store import Store
from connector.sync.cycle import CycleReport
from connector.sync.engine import SWEEP_PAGE, Engine
from tests.conftest import REPO
from tests.fakes import Clock, FakeJira, FakeServiceNow

ACME_GROUP = "ACME Hosting L2"
SETTINGS = """\
  overlap: 30s
  workers: 1
  search_lag: 10m
  dead_letter_retry: 30s
  sweep_interval: 10m
"""


@pytest.fixture(scope="session")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedConfig:
    """The shipped configuration and mappings, one worker; loaded once."""
    root = tmp_path_factory.mktemp("config")
    text = (REPO / "config" / "demo.yaml").read_text()
    text = text.replace("mappings: ../mappings", f"mappings: {REPO / 'mappings'}")
    text = text.replace("  overlap: 30s\n", SETTINGS)
    text = text.replace("sqlite:///../var/demo.db", "sqlite:///state.db")  # relative to each test's folder
    assert "workers: 1" in text
    (root / "connector.yaml").write_text(text)
    return load_config(root / "connector.yaml")


@dataclass
class World:
    """Both remote systems (fakes), the store file and the clock: what outlives a connector process."""

    loaded: LoadedConfig
    root: Path
    clock: Clock
    snow: FakeServiceNow
    sites: dict[str, FakeJira]
    stores: list[Store] = field(default_factory=list)

    @property
    def acme(self) -> FakeJira:
        return self.sites["acme"]

    @property
    def store(self) -> Store:
        """The store of the latest process."""
        return self.stores[-1]

    def open_store(self) -> Store:
        """The store as :func:`connector.runtime.assembly.open_store` opens it, in this world's folder."""
        connector = self.loaded.connector
        store = Store.open(
            connector.store.url,
            self.root,
            actor=connector.instance_name,
            retry_delay=connector.polling.dead_letter_retry,
        )
        self.stores.append(store)
        return store

    def start(self, *, sweep_page: int = SWEEP_PAGE) -> Engine:
        """A connector process: a fresh store handle and engine over the same file and the same remote systems.

        Calling it again is a restart: nothing the previous engine held in memory survives.
        """
        if self.stores:
            self.store.close()
        store = self.open_store()
        return Engine(
            self.loaded, store, self.snow, dict(self.sites), clock=self.clock, sweep_page=sweep_page
        )

    def close(self) -> None:
        for store in self.stores:
            store.close()

    # --- people ---------------------------------------------------------------------------------------

    def incident_for_acme(self, **values: str) -> Incident:
        """An incident routed to ACME, with a public comment, as the desk files it."""
        defaults = {
            "short_description": "Checkout fails for all customers",
            "description": "Payment page times out",
            "impact": "1",
            "urgency": "1",
            "priority": "1",
            "state": "2",
            "assignment_group": "grp-acme",
            "assignment_group.name": ACME_GROUP,
        }
        return self.snow.desk_create(**{**defaults, **values})


@pytest.fixture
def world(loaded: LoadedConfig, tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    sites = {
        name: FakeJira.for_mapping(name, loaded.suppliers[name], clock, base_url=f"https://{name}.example")
        for name in ("acme", "initech")
    }
    created = World(loaded, tmp_path, clock, FakeServiceNow(clock), sites)
    yield created
    created.close()


def converge(engine: Engine, *, limit: int = 10, sweep: bool | None = None) -> CycleReport:
    """Cycle until one cycle writes, fails and holds nothing; returns that quiet cycle's report."""
    for _ in range(limit):
        report = engine.cycle(sweep=sweep)
        if not report.writes and not report.failed and not report.held:
            return report
    raise AssertionError(f"no convergence after {limit} cycles; last: {report}")
