"""Random interleavings of the scenario's actions, found and shrunk by Hypothesis.

A stateful test: each step is a person's action (the same :class:`~tests.scenarios.people.People`
as the gate), one sync cycle of an in-process connector, a fault rule armed for the connector's
next matching request, or a restart (the runtime is dropped mid-flight and built again from the
store). At the end the faults are cleared, the connector syncs until it writes nothing for three
cycles, and the checker must find nothing: the same properties as the gate, on orders of events
a timed run rarely produces, and with a minimal failing sequence when one breaks.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from connector.core.errors import ConnectorError
from connector.runtime.assembly import Runtime
from connector.store.queue import BULK, NEW
from tests.scenarios import checker, faults, snapshot
from tests.scenarios.control import robust
from tests.scenarios.journal import JournalCollector
from tests.scenarios.model import Ledger
from tests.scenarios.people import People
from tests.scenarios.stage import Stage, Tuning
from tests.scenarios.workload import ACTIONS, Workload

QUIET_CYCLES = 3
SETTLE_LIMIT = 80
"""Cycles (0.25 s apart) the connector gets to settle: a lost create is re-sent after the 3 s search lag.
Settled means three cycles in a row that wrote nothing, with nothing new or bulk left in the queue."""
TUNING = Tuning(attempts=2, timeout="1s")


class Interleavings(RuleBasedStateMachine):
    """One world per example; rules are the actions, the sync, faults and restarts."""

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="mim-interleavings-"))
        self.stage = Stage.create(self.root, TUNING)
        self.ledger = Ledger()
        self.people = People(self.stage, self.ledger, random.Random(0))
        self.workload = Workload(self.people, random.Random(0), incidents=4)
        self.runtime: Runtime = self.stage.world.runtime()
        self.controls = {
            "servicenow": robust(self.stage.world.sandbox.servicenow_url),
            "jira": robust(self.stage.world.sandbox.jira_url),
        }
        self.targets = faults.targets(sorted(self.stage.world.loaded.suppliers))
        self.journal = JournalCollector(self.controls)
        self.people.open_incident()

    @rule(action=st.sampled_from(ACTIONS))
    def act(self, action: str) -> None:
        if action == "open_incident" and len(self.ledger.stories) >= self.workload.incidents:
            action = "comment"
        self.workload.run(action)

    @rule()
    def sync(self) -> None:
        # A cycle whose poll fails every try (faults armed on it) fails as a whole; the daemon logs
        # it and tries again at the next tick, and so do we: what must hold is checked at the end.
        with contextlib.suppress(ConnectorError):
            self.runtime.engine.cycle()

    @rule(
        target_index=st.integers(min_value=0, max_value=10_000),
        kind=st.sampled_from(
            ("5xx", "drop", "reset", "drop-applied", "reset-applied", "502-applied", "429-seconds")
        ),
        count=st.integers(min_value=1, max_value=3),
    )
    def arm_fault(self, target_index: int, kind: str, count: int) -> None:
        target = self.targets[target_index % len(self.targets)]
        if not target.write and kind not in faults.READ_KINDS:
            kind = {"drop-applied": "drop", "reset-applied": "reset"}.get(kind, "5xx")
        rule_ = faults.rule(
            kind,
            target,
            random.Random(target_index),
            server_now=faults.server_time(0.0),
            timeout_ms=1000,
            probability=1.0,
            count=count,
        )
        self.controls[target.system].post("faults", [rule_])

    @precondition(lambda self: self.ledger.stories)
    @rule()
    def restart(self) -> None:
        self.runtime.close()
        self.runtime = self.stage.world.runtime()

    def _waiting(self) -> bool:
        """Work still queued for later (a lost create waits out the search lag): not settled yet."""
        depth = self.runtime.store.queue.depth(self.runtime.engine.clock())
        return any(depth[lane].due or depth[lane].later for lane in (NEW, BULK))

    def teardown(self) -> None:
        try:
            for control in self.controls.values():
                control.clear_faults()
            quiet = 0
            for _ in range(SETTLE_LIMIT):
                try:
                    report = self.runtime.engine.cycle()
                except ConnectorError:
                    # As in the daemon: a poll refused while a breaker cools down (the last fault
                    # just fired) fails this cycle, and the next one tries again.
                    quiet = 0
                    time.sleep(0.25)
                    continue
                idle = report.writes == 0 and not report.failed and not report.held and not self._waiting()
                quiet = quiet + 1 if idle else 0
                if quiet >= QUIET_CYCLES:
                    break
                time.sleep(0.25)
            assert quiet >= QUIET_CYCLES, f"no quiet after {SETTLE_LIMIT} cycles"
            self.journal.collect()
            seen = snapshot.read_servicenow(self.people.desk, self.people.instance_url, self.people.fields)
            snapshot.read_jira(seen, self.people.engineers, self.people.mappings, self.people.connector_names)
            found = checker.check(
                seen,
                self.ledger,
                checker.Context(self.people.mappings, self.people.instance_url),
                self.journal.leaks,
            )
            assert not found.failed, "\n".join(found.details)
        finally:
            self.runtime.close()
            self.stage.close()
            shutil.rmtree(self.root, ignore_errors=True)


# Shrinking a failure can take minutes; `make test` stays bounded, MIM_HYPOTHESIS_SHRINK=1 shrinks.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("MIM_HYPOTHESIS_SHRINK") else []
)
Interleavings.TestCase.settings = settings(
    max_examples=int(os.environ.get("MIM_HYPOTHESIS_EXAMPLES", "12")),
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    phases=PHASES,
)
TestInterleavings = Interleavings.TestCase
