"""``rules test --file``: a file carries no history, so time conditions are assumed from its timestamps."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from connector.commands.explain import rules_test
from tests.factories import REPO, T0

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
