"""``rules test`` offline: from a JSON file (time conditions assumed from its timestamps) or from an
audit export (replayed up to the moment asked, agreeing with the back-test)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from connector.backtest import observations_from_events, run_backtest
from connector.commands.explain import history_subject, rules_test
from connector.eventlog import BUILTIN, read_events
from connector.rules import RuleBook, eligibility
from tests.factories import REPO, T0, demo_config

CONFIG = REPO / "config" / "demo.yaml"


@pytest.mark.parametrize(
    ("minutes", "decision"),
    [
        (10, "Decision: no rule matched"),
        (20, "Decision: propose by rule p1-unassigned (promote-in-place)"),
    ],
)
def test_time_conditions_from_a_file_run_from_its_timestamps(
    tmp_path: Path, minutes: int, decision: str
) -> None:
    opened = T0.strftime("%Y-%m-%d %H:%M:%S")
    record = tmp_path / "INC7.json"
    record.write_text(
        json.dumps(
            {"number": "INC7", "priority": "1", "state": "2", "opened_at": opened, "sys_updated_on": opened}
        )
    )
    out = io.StringIO()
    at: datetime = T0 + timedelta(minutes=minutes)
    assert rules_test(CONFIG, None, record, tree=False, at=at, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[-1] == decision
    assert (
        f"     {'✓' if minutes >= 15 else '✗'} unassigned for 15m — actual unassigned for {minutes}m" in lines
    )


def test_an_unreadable_file_is_exit_2(tmp_path: Path) -> None:
    record = tmp_path / "bad.json"
    record.write_text("[1, 2]")
    out = io.StringIO()
    assert rules_test(CONFIG, None, record, tree=False, out=out) == 2
    assert out.getvalue().startswith(f"cannot read {record}: ")


def test_explaining_from_an_export_agrees_with_the_back_test_on_every_decision() -> None:
    book = RuleBook(demo_config().rules)
    result = run_backtest(observations_from_events(read_events(BUILTIN)), book)
    assert result.decisions, "the shipped slice makes decisions with the shipped rules"
    for record in result.decisions:
        found = history_subject(book, BUILTIN, record.trigger, record.at)
        assert found is not None
        subject, context = found
        decision = book.decide(subject, context, eligibility(subject))
        assert decision.rule is not None and decision.rule.name == record.rule, record
        earlier = history_subject(book, BUILTIN, record.trigger, record.at - timedelta(minutes=1))
        assert earlier is not None
        before = book.decide(earlier[0], earlier[1], eligibility(earlier[0]))
        assert before.rule is None, f"{record.trigger} matched before the back-test decided"


def test_rules_test_from_an_export_says_as_of_when(tmp_path: Path) -> None:
    out = io.StringIO()
    assert rules_test(CONFIG, "INC0000045", None, tree=False, events=BUILTIN, out=out) == 0
    first, second = out.getvalue().splitlines()[:2]
    assert first.startswith("as of ") and first.endswith(" UTC in builtin")
    assert second.startswith("INC0000045 (")
    missing = io.StringIO()
    assert rules_test(CONFIG, "INC0000000", None, tree=False, events=BUILTIN, out=missing) == 2
    assert missing.getvalue() == "INC0000000: no update in builtin\n"
