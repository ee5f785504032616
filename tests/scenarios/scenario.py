"""One scenario run: people at work, the daemon under a nemesis, then heal, settle and check.

:meth:`Scenario.play` runs until the nemesis has injected ``Size.faults`` request faults (counted
where they fired, in the journals) and ``Size.kills`` SIGKILLs, then heals every fault, measures
convergence (:mod:`tests.scenarios.settle`), reads both sides (:mod:`tests.scenarios.snapshot`)
and checks them (:mod:`tests.scenarios.checker`, :mod:`tests.scenarios.throttle`).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.scenarios import checker, settle, snapshot
from tests.scenarios.control import robust
from tests.scenarios.journal import JournalCollector, Request
from tests.scenarios.model import Ledger
from tests.scenarios.nemesis import Nemesis, Tally
from tests.scenarios.people import People
from tests.scenarios.stage import JIRA_USER, SN_USER, Stage
from tests.scenarios.throttle import ThrottleReport, check_throttling
from tests.scenarios.workload import Workload

HEAL_DRAIN = 1.6
"""Seconds for requests held by the last faults (client timeout + 0.3 s) to finish."""


@dataclass(frozen=True)
class Size:
    """How much a run does; ``scaled(10)`` is the soak."""

    faults: int = 1000
    kills: int = 20
    incidents: int = 16
    max_seconds: float = 480.0
    instances: int = 1
    """Daemons sharing the store: one on SQLite, or several instances on PostgreSQL; the kills
    hit them all (see :class:`tests.scenarios.nemesis.Nemesis`)."""

    @classmethod
    def scaled(cls, scale: float, *, instances: int = 1) -> Size:
        """The gate's size times ``scale``."""
        base = cls()
        return cls(
            int(base.faults * scale),
            int(base.kills * scale),
            max(4, int(base.incidents * scale)),
            base.max_seconds * max(1.0, scale),
            instances,
        )


@dataclass
class Outcome:
    """Everything a run measured."""

    seed: int
    size: Size
    seconds: float = 0.0
    store: str = "SQLite"
    kills_by_instance: list[int] = field(default_factory=list)
    faults: Counter[str] = field(default_factory=Counter)
    tally: Tally = field(default_factory=Tally)
    actions: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    requests: Counter[str] = field(default_factory=Counter)
    incidents: int = 0
    issues: int = 0
    findings: checker.Findings = field(default_factory=checker.Findings)
    throttle: ThrottleReport = field(default_factory=ThrottleReport)
    convergence: settle.Convergence | None = None
    idle_writes: list[Request] = field(default_factory=list)
    kept: Path | None = None
    """The folder holding the request journals, daemon log, store and stories, when they were kept."""

    @property
    def injected(self) -> int:
        """Request faults that fired (kills and held writes not included)."""
        return sum(self.faults.values())


class Scenario:
    """A run in ``root`` with ``seed``."""

    def __init__(self, root: Path, seed: int, size: Size, *, keep_journals: bool = False) -> None:
        self.root = root
        self.seed = seed
        self.size = size
        self.keep_journals = keep_journals

    def play(self) -> Outcome:
        """Run, heal, settle, check; the outcome holds the verdicts (nothing is asserted here)."""
        outcome = Outcome(self.seed, self.size, kept=self.root if self.keep_journals else None)
        rng = random.Random(self.seed)
        stage = Stage.create(self.root, instances=self.size.instances)
        outcome.store = stage.store
        try:
            ledger = Ledger()
            people = People(stage, ledger, random.Random(rng.random()))
            journal = JournalCollector(
                {
                    "servicenow": robust(stage.world.sandbox.servicenow_url),
                    "jira": robust(stage.world.sandbox.jira_url),
                },
                sink=self.root if self.keep_journals else None,
            )
            journal.start()
            for daemon in stage.daemons:
                daemon.start()
            nemesis = Nemesis(stage, random.Random(rng.random()), kills=self.size.kills)
            workload = Workload(people, random.Random(rng.random()), self.size.incidents)
            started = time.monotonic()
            nemesis.start()
            try:
                self._work(workload, nemesis, journal, started)
            finally:
                nemesis.stop()
            nemesis.heal()
            time.sleep(HEAL_DRAIN)
            outcome.convergence = settle.converge(journal, time.time())
            seen = self._read(stage, people)
            outcome.findings = checker.check(
                seen,
                ledger,
                checker.Context(people.mappings, people.instance_url),
                journal.leaks,
            )
            outcome.idle_writes = settle.idle_writes(journal)
            if self.keep_journals:
                _write_stories(self.root / "stories.txt", ledger)
            journal.stop()
            outcome.seconds = time.monotonic() - started
            keys = {f"{i.supplier}/{i.issue_id}": i.key for i in seen.issues}
            # One list of starts and kills for all instances: the journals cannot tell which process
            # sent a request, so a restart or kill of any of them is taken as the one that matters.
            outcome.throttle = check_throttling(
                journal.requests, nemesis.tally.rules, keys, stage.starts, stage.killed
            )
            outcome.kills_by_instance = [d.kills for d in stage.daemons]
            outcome.faults = _faults(journal.requests, nemesis.tally)
            outcome.tally = nemesis.tally
            outcome.actions = ledger.actions
            outcome.refused = workload.refused
            outcome.requests = Counter(r.system for r in journal.requests if r.user in (SN_USER, JIRA_USER))
            outcome.incidents, outcome.issues = len(ledger.stories), len(seen.issues)
        finally:
            stage.close()
        return outcome

    def _work(self, workload: Workload, nemesis: Nemesis, journal: JournalCollector, started: float) -> None:
        while True:
            workload.step()
            time.sleep(0.05)
            if nemesis.error is not None:
                return
            # Held writes of kills count in `faulted`; the exact tally by kind comes at the end.
            faulted = journal.faulted - nemesis.tally.kills
            if nemesis.tally.kills >= self.size.kills and faulted >= self.size.faults:
                return
            if time.monotonic() - started > self.size.max_seconds:
                raise AssertionError(
                    f"targets not reached in {self.size.max_seconds:.0f}s: "
                    f"{faulted} faults, {nemesis.tally.kills} kills"
                )

    @staticmethod
    def _read(stage: Stage, people: People) -> snapshot.Snapshot:
        seen = snapshot.read_servicenow(people.desk, people.instance_url, people.fields)
        snapshot.read_jira(seen, people.engineers, people.mappings, people.connector_names)
        return seen


def _write_stories(path: Path, ledger: Ledger) -> None:
    """Each story's history (the oracle's side of a post-mortem), incident by incident."""
    with path.open("w") as out:
        for story in ledger.stories.values():
            out.write(f"{story.number} {story.sys_id}\n")
            out.writelines(f"  {line}\n" for line in story.history)


def _faults(requests: list[Request], tally: Tally) -> Counter[str]:
    """Request faults that fired, by kind (the journals say which rule hit which request)."""
    counts: Counter[str] = Counter()
    for request in list(requests):
        if request.fault is None:
            continue
        installed = tally.rules.get((request.system, request.fault))
        if installed is not None and not installed.kind.startswith("kill:"):
            counts[installed.kind] += 1
    return counts
