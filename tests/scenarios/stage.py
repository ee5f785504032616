"""The stage a scenario plays on: a fresh sandbox, the shipped config tuned for speed, the daemon process.

:class:`Stage` wraps an integration :class:`~tests.integration.world.World` (the shipped
``config/demo.yaml`` and ``mappings/`` pointed at a sandbox of its own) and

* rewrites the config's ``polling``, ``retry``, timeouts and rate budgets (:class:`Tuning`), so
  that a thousand faults fit in a couple of minutes;
* gives the people of the scenario HTTP sessions *tagged* with :data:`HUMAN_PARAM`: every fault
  rule the nemesis installs excludes tagged requests, so faults hit the connector only (a person
  retrying by hand is not what is under test);
* runs the daemon as a real process (``mim-connector run``) that can be SIGKILLed and restarted;
  with ``instances`` above one, as that many processes sharing a store on a throwaway PostgreSQL
  server (:func:`tests.postgres.running_server`), each an instance of the runtime holding its
  singleton roles by leases (``store.lease`` shortened by :class:`Tuning` so that takeovers fit
  the scenario's pace).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from jira import JIRA
from requests.adapters import HTTPAdapter
from sqlalchemy import create_engine, text

from tests.integration.world import World
from tests.postgres import running_server

HUMAN_PARAM = "mim_scenario_actor"
"""Query parameter on every request a person of the scenario sends (both platforms ignore it)."""
NOT_HUMAN = rf"^(?!.*{HUMAN_PARAM}=)"
"""Fault-rule ``query`` regex matching every request except the people's."""
SN_USER, JIRA_USER = "svc.mim-connector", "mim-connector"
"""The connector's users as the sandbox journals show them."""
SCRIPT = str(Path(sys.executable).parent / "mim-connector")


@dataclass(frozen=True)
class Tuning:
    """Config values a scenario runs with; the defaults keep the shipped ratios at a 250 ms poll."""

    poll: str = "250ms"
    overlap: str = "30s"
    search_lag: str = "3s"
    """Must exceed the index lag the nemesis injects: a lost create is re-sent after it."""
    dead_letter_retry: str = "250ms"
    sweep_interval: str = "5s"
    attempts: int = 4
    initial_backoff: str = "20ms"
    max_backoff: str = "200ms"
    cooldown: str = "250ms"
    timeout: str = "1s"
    requests_per_second: float = 80.0
    burst: int = 40
    lease_ttl: str | None = None
    """``store.lease.ttl``; ``None`` keeps the shipped default (one daemon never contends)."""
    lease_renew_every: str | None = None
    """``store.lease.renew_every`` (at most half the TTL): also every instance's heartbeat, at
    which it hears the 429 closures the others received."""

    @classmethod
    def for_instances(cls) -> Tuning:
        """Leases short enough that a killed instance's roles and claims move within the epochs.

        A SIGKILLed holder on this machine is succeeded at the other's next renewal anyway
        (:func:`connector.runtime.lease.vacated`); the TTL bounds the rest.
        """
        return cls(lease_ttl="2s", lease_renew_every="500ms")

    def apply(self, config: dict[str, Any]) -> None:
        """Rewrite a loaded ``connector.yaml`` in place."""
        config["sandbox"] = {"embedded": False}
        config["polling"] = {
            "servicenow_interval": self.poll,
            "supplier_interval": self.poll,
            "overlap": self.overlap,
            "search_lag": self.search_lag,
            "dead_letter_retry": self.dead_letter_retry,
            "sweep_interval": self.sweep_interval,
        }
        config["retry"] = {
            "attempts": self.attempts,
            "initial_backoff": self.initial_backoff,
            "max_backoff": self.max_backoff,
            "cooldown": self.cooldown,
        }
        budget = {"requests_per_second": self.requests_per_second, "burst": self.burst}
        sites = [config["servicenow"], *(s["jira"] for s in config["suppliers"].values())]
        for site in sites:
            site["timeout"] = self.timeout
            site["rate_budget"] = dict(budget)
        if self.lease_ttl is not None or self.lease_renew_every is not None:
            lease = config.setdefault("store", {}).setdefault("lease", {})
            if self.lease_ttl is not None:
                lease["ttl"] = self.lease_ttl
            if self.lease_renew_every is not None:
                lease["renew_every"] = self.lease_renew_every


class _Tagged(HTTPAdapter):
    """Adds :data:`HUMAN_PARAM` to every request sent through it."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        request.prepare_url(request.url, {HUMAN_PARAM: "1"})
        return super().send(request, *args, **kwargs)


def tag(session: requests.Session) -> requests.Session:
    """Mark every request of ``session`` as a person's (see :data:`NOT_HUMAN`)."""
    session.mount("http://", _Tagged())
    return session


@dataclass
class DaemonProcess:
    """``mim-connector run`` as a child process; its stderr goes to ``log``, appended across restarts."""

    config: Path
    log: Path
    name: str = "the daemon"
    starts: list[float] = field(default_factory=list)
    """Wall-clock times (``time.time()``) of every start."""
    kills: int = 0
    killed: list[float] = field(default_factory=list)
    """Wall-clock times of every SIGKILL."""
    _process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the daemon (it must not be running)."""
        assert not self.alive(), f"{self.name} is already running"
        with self.log.open("ab") as sink:
            self._process = subprocess.Popen(
                [SCRIPT, "run", "-c", str(self.config)],
                stdout=sink,
                stderr=sink,
                env=os.environ.copy(),
            )
        self.starts.append(time.time())

    def alive(self) -> bool:
        """Whether the process runs (a daemon that exited on its own is reported, not hidden)."""
        if self._process is None:
            return False
        code = self._process.poll()
        if code is not None:
            self._process = None
            raise AssertionError(f"{self.name} exited on its own with code {code}; see {self.log}")
        return True

    def kill(self) -> None:
        """SIGKILL the daemon and reap it."""
        if self._process is None:
            return
        self.killed.append(time.time())
        self._process.send_signal(signal.SIGKILL)
        self._process.wait(timeout=10)
        self._process = None
        self.kills += 1

    def pause(self) -> None:
        """SIGSTOP (for measurements that must not race the daemon)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """End the daemon politely (SIGTERM), or kill it when it does not stop."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None


@dataclass
class Stage:
    """A world, its tuned config, the people's sessions and the daemon (or several instances)."""

    world: World
    daemons: list[DaemonProcess]
    tuning: Tuning
    store: str = "SQLite"
    """Where the daemons keep their state, as the report names it."""
    _resources: ExitStack = field(default_factory=ExitStack)

    @classmethod
    def create(cls, root: Path, tuning: Tuning | None = None, *, instances: int = 1) -> Stage:
        """Build the world under ``root`` and tune its config (no daemon is started).

        One instance keeps the shipped SQLite store; more share a database of their own on a
        PostgreSQL server started here and stopped by :meth:`close`.
        """
        resources = ExitStack()
        try:
            tuning = tuning or (Tuning.for_instances() if instances > 1 else Tuning())
            url = _postgres_database(resources) if instances > 1 else None
            world = World.create(root)
            resources.callback(world.close)
            config = yaml.safe_load(world.config.read_text())
            tuning.apply(config)
            if url is not None:
                config.setdefault("store", {})["url"] = url
            world.config.write_text(yaml.safe_dump(config, sort_keys=False))
        except BaseException:
            resources.close()
            raise
        if instances == 1:
            daemons = [DaemonProcess(world.config, root / "daemon.log")]
        else:
            daemons = [
                DaemonProcess(world.config, root / f"daemon-{n}.log", name=f"instance {n}")
                for n in range(1, instances + 1)
            ]
        return cls(world, daemons, tuning, "SQLite" if url is None else "PostgreSQL", resources)

    @property
    def daemon(self) -> DaemonProcess:
        """The daemon of a one-instance stage."""
        assert len(self.daemons) == 1, "this stage runs several instances: use daemons"
        return self.daemons[0]

    @property
    def starts(self) -> list[float]:
        """Every start of every instance (wall clock), in order."""
        return sorted(t for d in self.daemons for t in d.starts)

    @property
    def killed(self) -> list[float]:
        """Every SIGKILL of every instance (wall clock), in order."""
        return sorted(t for d in self.daemons for t in d.killed)

    def close(self) -> None:
        """Stop the daemons, then the sandbox and the PostgreSQL server."""
        try:
            for daemon in self.daemons:
                daemon.stop()
        finally:
            self._resources.close()

    @property
    def poll_seconds(self) -> float:
        """The configured poll interval in seconds."""
        return float(self.tuning.poll.removesuffix("ms")) / 1000

    # --- people's sessions -------------------------------------------------------------------------

    def service_desk(self) -> requests.Session:
        """The ServiceNow admin, tagged as a person."""
        session = tag(self.world.snow())
        return session

    def engineer(self, site: str) -> JIRA:
        """Jane Doe at a supplier site (python-jira), tagged as a person."""
        agent = self.world.agent(site)
        tag(agent._session)
        return agent


def _postgres_database(resources: ExitStack) -> str:
    """Start a PostgreSQL server kept by ``resources``, create a database on it, return its URL."""
    admin_url = resources.enter_context(running_server())
    name = "gate"
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"
