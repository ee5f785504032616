"""Fixtures of the end-to-end tests: a fresh world (sandbox, config, store) and a runtime on it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.runtime.assembly import Runtime
from tests.conftest import REPO
from tests.integration.world import World


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The shipped config and mappings against a sandbox of their own (modules may override this)."""
    created = World.create(tmp_path)
    yield created
    created.close()


@pytest.fixture
def runtime(world: World) -> Iterator[Runtime]:
    """The connector built from the world's config, closed after the test."""
    running = world.runtime()
    yield running
    running.close()


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped config with its store at ``tmp_path/state.db`` and no sandbox (none is reached)."""
    shutil.copytree(REPO / "mappings", tmp_path / "mappings")
    (tmp_path / "config").mkdir()
    text = (REPO / "config" / "demo.yaml").read_text()
    text = text.replace("  embedded: true", "  embedded: false").replace("  replay: builtin\n", "")
    text = text.replace("sqlite:///../var/demo.db", "sqlite:///../state.db")
    config = tmp_path / "config" / "connector.yaml"
    config.write_text(text)
    for name in (
        "MIM_DEMO_SN_PASSWORD",
        "MIM_DEMO_ACME_TOKEN",
        "MIM_DEMO_GLOBEX_TOKEN",
        "MIM_DEMO_INITECH_TOKEN",
    ):
        monkeypatch.setenv(name, "not-used")
    return config
