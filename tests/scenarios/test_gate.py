"""The gate: the real daemon against the sandbox under 1,000+ injected faults and 20 SIGKILLs.

One scenario (:mod:`tests.scenarios.scenario`) with people working both sides while the nemesis
injects every fault kind; afterwards every required result of the proof is checked (see
:func:`tests.scenarios.report.verdicts`). The report is printed (``pytest -s`` shows it) and is
the failure message. ``MIM_SCENARIO_SEED`` replays a seed; ``make soak`` runs ten times the size.
The run's folder keeps both request journals, the daemon log, the store and the oracle's story
histories for a post-mortem (pytest keeps the folders of its last three sessions); the report
names the folder.

Field convergence has a test of its own: the contested fields (incident state vs. supplier
status, the shared workaround) are where lost answers, kills and clock skew bite hardest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.scenarios.report import render, verdicts
from tests.scenarios.scenario import Outcome, Scenario, Size

SEED = int(os.environ.get("MIM_SCENARIO_SEED", "20261123"))
FIELDS = "no lost field changes"


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    played = Scenario(tmp_path_factory.mktemp("gate"), SEED, Size(), keep_journals=True).play()
    print(render(played))
    yield played


def test_a_thousand_faults_and_twenty_kills_were_injected(outcome: Outcome) -> None:
    size = outcome.size
    assert outcome.injected >= size.faults, render(outcome)
    assert outcome.tally.kills >= size.kills, render(outcome)
    kinds = {kind for kind, n in outcome.faults.items() if n}
    assert {"5xx", "429-seconds", "429-http-date", "429-none", "drop", "reset"} <= kinds, render(outcome)


def test_nothing_is_duplicated_lost_leaked_or_sent_before_retry_after(outcome: Outcome) -> None:
    failed = [name for name, ok in verdicts(outcome).items() if not ok and name != FIELDS]
    assert not failed, render(outcome)


def test_every_field_ends_equal_on_both_sides(outcome: Outcome) -> None:
    assert verdicts(outcome)[FIELDS], render(outcome)
