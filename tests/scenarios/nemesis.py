"""The nemesis: faults, clock skew, search-index lag and SIGKILLs, in the background, by a schedule.

Time is cut into *epochs* of 0.7-1.5 s. Each epoch replaces the fault rules of both sandboxes
with a few random ones (:mod:`tests.scenarios.faults`), may shift a server clock by ±90 s or back,
may set a Jira site's search-index lag (always below the configured ``search_lag``), and, when a
kill is due, SIGKILLs the daemon - at a random moment, or while one of its writes is held at the
server (before it applies or after it did) - and restarts it. With several instances each kill
hits one of them, drawn at random; the held write may then be the other instance's (the server
cannot tell which process sent it), which that one sees as a lost answer while its peer dies. :class:`Tally` keeps what was done;
request faults are counted afterwards from the journals (a rule only counts where it fired).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.control import SandboxControl
from tests.scenarios import faults
from tests.scenarios.control import install, robust, settle_post
from tests.scenarios.stage import Stage

log = logging.getLogger(__name__)
SKEWS = (90.0, -90.0, 0.0)
INDEX_LAGS = (0.0, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Installed:
    """A fault rule the nemesis installed: its kind and the headers its answers carry."""

    kind: str
    headers: dict[str, str]


@dataclass
class Tally:
    """What the nemesis did."""

    rules: dict[tuple[str, int], Installed] = field(default_factory=dict)
    """(system, rule id) -> what the rule was, for every rule installed."""
    events: Counter[str] = field(default_factory=Counter)
    """Non-request faults: ``skew``, ``index-lag``, ``kill:random``, ``kill:before``, ``kill:after_commit``."""
    epochs: int = 0

    @property
    def kills(self) -> int:
        """SIGKILLs of the daemon."""
        return sum(n for name, n in self.events.items() if name.startswith("kill:"))


@dataclass(frozen=True)
class Schedule:
    """How hard the nemesis pushes."""

    kill_every: tuple[float, float] = (1.5, 3.5)
    """Seconds between two kills (uniform)."""
    epoch: tuple[float, float] = (0.5, 1.0)
    """Seconds one set of fault rules stays installed (uniform)."""
    rules_per_epoch: tuple[int, int] = (4, 8)
    probability: tuple[float, float] = (0.3, 0.9)
    count: tuple[int, int] = (4, 16)
    skew_chance: float = 0.12
    lag_chance: float = 0.15
    kinds: tuple[str, ...] = faults.KINDS


class Nemesis:
    """Runs the schedule in a background thread until stopped or ``kills`` SIGKILLs are done."""

    def __init__(
        self,
        stage: Stage,
        rng: random.Random,
        *,
        kills: int,
        schedule: Schedule | None = None,
    ) -> None:
        self.stage = stage
        self.rng = rng
        self.kill_target = kills
        self.schedule = schedule or Schedule()
        self.tally = Tally()
        self.controls: dict[str, SandboxControl] = {
            "servicenow": robust(stage.world.sandbox.servicenow_url),
            "jira": robust(stage.world.sandbox.jira_url),
        }
        self.sites = sorted(stage.world.loaded.suppliers)
        self.targets = faults.targets(self.sites)
        self.skew = {"servicenow": 0.0, "jira": 0.0}
        self.timeout_ms = int(float(stage.tuning.timeout.removesuffix("s")) * 1000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def start(self) -> None:
        """Begin (the daemon must be running)."""
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the schedule; faults stay until :meth:`heal`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self.error is not None:
            raise self.error

    def heal(self) -> None:
        """Remove every fault: rules, skew, index lag; make sure the daemon runs."""
        for control in self.controls.values():
            control.clear_faults()
        for system in self.controls:
            self._set_skew(system, 0.0)
        for site in self.sites:
            settle_post(self.controls["jira"], f"sites/{site}/settings", {"index_lag_seconds": 0})
        for daemon in self.stage.daemons:
            if not daemon.alive():
                daemon.start()

    def _run(self) -> None:
        try:
            next_kill = time.monotonic() + self.rng.uniform(*self.schedule.kill_every)
            while not self._stop.is_set():
                self._epoch()
                if time.monotonic() >= next_kill and self.tally.kills < self.kill_target:
                    self._kill()
                    next_kill = time.monotonic() + self.rng.uniform(*self.schedule.kill_every)
                self._stop.wait(self.rng.uniform(*self.schedule.epoch))
        except BaseException as exc:  # reported by stop(); the scenario must not run on blind
            log.exception("nemesis failed")
            self.error = exc

    def _epoch(self) -> None:
        self.tally.epochs += 1
        # Old rules go first and the clock moves before new rules are made: an HTTP-date
        # Retry-After is written from the server clock it will be answered under.
        for control in self.controls.values():
            control.clear_faults()
        if self.rng.random() < self.schedule.skew_chance:
            system = self.rng.choice(("servicenow", "jira"))
            skew = self.rng.choice([s for s in SKEWS if s != self.skew[system]])
            self._set_skew(system, skew)
            self.tally.events["skew"] += 1
        if self.rng.random() < self.schedule.lag_chance:
            site = self.rng.choice(self.sites)
            lag = self.rng.choice(INDEX_LAGS)
            settle_post(self.controls["jira"], f"sites/{site}/settings", {"index_lag_seconds": lag})
            self.tally.events["index-lag"] += 1
        rules: dict[str, list[dict[str, Any]]] = {"servicenow": [], "jira": []}
        kinds: dict[str, list[str]] = {"servicenow": [], "jira": []}
        for _ in range(self.rng.randint(*self.schedule.rules_per_epoch)):
            # Reads are most of the connector's requests; weighting them keeps the fault rate up.
            target = self.rng.choices(self.targets, weights=[1 if t.write else 3 for t in self.targets])[0]
            allowed = [k for k in self.schedule.kinds if target.write or k in faults.READ_KINDS]
            kind = self.rng.choices(allowed, weights=[faults.WEIGHTS[k] for k in allowed])[0]
            count = 1 if kind == "429-none" else self.rng.randint(*self.schedule.count)
            rules[target.system].append(
                faults.rule(
                    kind,
                    target,
                    self.rng,
                    server_now=faults.server_time(self.skew[target.system]),
                    timeout_ms=self.timeout_ms,
                    probability=round(self.rng.uniform(*self.schedule.probability), 2),
                    count=count,
                )
            )
            kinds[target.system].append(kind)
        for system, control in self.controls.items():
            if rules[system]:
                installed = install(control, rules[system])
                for rule, kind in zip(installed, kinds[system], strict=True):
                    self.tally.rules[(system, rule["id"])] = Installed(kind, dict(rule["headers"]))

    def _set_skew(self, system: str, skew: float) -> None:
        settle_post(self.controls[system], "clock", {"skew_seconds": skew})
        self.skew[system] = skew

    def _kill(self) -> None:
        """SIGKILL the daemon (one instance), half the time while a write is held at the server."""
        daemons = self.stage.daemons
        # One daemon draws nothing, so that a seed replays today's single-daemon runs exactly.
        daemon = daemons[0] if len(daemons) == 1 else self.rng.choice(daemons)
        mode = "random"
        if self.rng.random() < 0.5:
            target = self.rng.choice([t for t in self.targets if t.write])
            when = self.rng.choice(("before", "after_commit"))
            control = self.controls[target.system]
            (held,) = install(control, [faults.boundary_rule(target, when)])
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                fired = next((r["fired"] for r in control.faults() if r["id"] == held["id"]), 0)
                if fired:
                    mode = when
                    break
                time.sleep(0.02)
            self.tally.rules[(target.system, held["id"])] = Installed(f"kill:{when}", {})
            if mode == "after_commit":
                time.sleep(0.1)  # the write has landed; its answer is held back
        daemon.kill()
        self.tally.events[f"kill:{mode}"] += 1
        time.sleep(self.rng.uniform(0.0, 0.3))
        daemon.start()
