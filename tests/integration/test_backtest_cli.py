"""``mim-connector rules backtest`` as an admin runs it: the shipped rules over the shipped event-log slice."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connector.commands.backtest import run_backtest
from tests.integration.world import World

REPO = Path(__file__).parent.parent.parent
SCRIPT = str(Path(sys.executable).parent / "mim-connector")
CONFIG = REPO / "config" / "connector.yaml"


def backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, "rules", "backtest", "-c", str(CONFIG), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_the_report_has_a_section_per_shipped_rule() -> None:
    result = backtest("--events", "builtin", "--no-progress")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Replayed 1,348 events of 197 incidents" in out
    for index, name in enumerate(
        ("payments-outage", "critical-ci-p1", "p1-unassigned", "ci-cluster"), start=1
    ):
        assert f"Rule {index}: {name} - " in out
    assert "Comparison with history (priority 1 as recorded)" in out
    assert re.search(r"incidents that reached P1 +36\n", out)


def test_json_and_chart(tmp_path: Path) -> None:
    chart = tmp_path / "out.html"
    result = backtest("--events", "builtin", "--json", "--chart", str(chart))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [rule["name"] for rule in data["rules"]] == [
        "payments-outage",
        "critical-ci-p1",
        "p1-unassigned",
        "ci-cluster",
        "security-breach",
    ]
    assert [rule["enabled"] for rule in data["rules"]] == [True, True, True, True, False]
    assert data["events"] == 1348 and data["p1"]["reached"] == 36
    caught, missed = data["p1"]["caught_incidents"], data["p1"]["missed_incidents"]
    assert (len(caught), len(missed)) == (data["p1"]["caught"], data["p1"]["missed"]) == (6, 30)
    assert {c["rule"] for c in caught} == {"p1-unassigned"}
    assert {n["rule"] for m in missed for n in m["nearest_rules"]} >= {"payments-outage", "p1-unassigned"}
    page = chart.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count('class="week"') == len(data["period"]["weeks"])
    assert page.count('class="p1"') == len(data["period"]["weeks"])
    assert all(m["number"] in page for m in missed), "the page lists every missed P1"


def test_the_text_report_lists_the_missed_p1s() -> None:
    result = backtest("--events", "builtin", "--no-progress")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "P1 incidents caught (6), in the order they reached P1 (vs P1: + before, - after)" in lines
    start = lines.index("P1 incidents missed (30), in the order they reached P1")
    rows = [line for line in lines[start + 2 : start + 32] if re.match(r"  INC\d{7}  ", line)]
    assert len(rows) == 30
    assert "      payments-outage  ✗ business_service.name equals Payments — actual ''" in lines


@pytest.mark.parametrize(
    ("events", "since", "chart", "message"),
    [
        (None, None, None, "error: give either --events EVENTS.csv"),
        ("builtin", "30d", None, "error: give either --events EVENTS.csv"),
        (None, "thirty days", None, "error: --since: 'thirty days' is not a duration"),
        ("missing.csv", None, None, "error: --events: missing.csv is not a file"),
        ("builtin", None, Path("chart.png"), "error: --chart: chart.png must end in .html or .svg"),
        ("builtin", None, Path("no/such/dir/c.svg"), "error: --chart: the folder no/such/dir does not exist"),
    ],
)
def test_invalid_arguments_exit_2_with_a_reason(
    events: str | None,
    since: str | None,
    chart: Path | None,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = io.StringIO()
    assert run_backtest(CONFIG, events, since, False, chart, False, out) == 2
    assert capsys.readouterr().err.startswith(message)
    assert out.getvalue() == ""


def test_an_unreadable_events_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "events.csv"
    broken.write_text("number,incident_state\nINC1,New\n")
    assert run_backtest(CONFIG, str(broken), None, False, None, False, io.StringIO()) == 2
    assert f"error: cannot read the events file {broken}: line 2:" in capsys.readouterr().err


def test_mutually_exclusive_history_sources_on_the_command_line() -> None:
    result = backtest("--events", "builtin", "--since", "30d")
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr


def test_since_reads_the_live_instance_and_says_it_is_current_state(tmp_path: Path) -> None:
    world = World.create(tmp_path)
    try:
        payments = world.lookup("cmdb_ci_service", "name=Payments")
        database = world.lookup("cmdb_ci", "name=db-cluster-01")
        world.create_incident(business_service=payments)
        world.create_incident(cmdb_ci=database)
        world.create_incident(impact="3", urgency="3")
        out = io.StringIO()
        assert run_backtest(world.config, None, "1d", True, None, False, out) == 0
    finally:
        world.close()
    data = json.loads(out.getvalue())
    assert data["note"].startswith("live data: 3 incidents changed since")
    assert (data["incidents"], data["p1"]["reached"]) == (3, 2)
    decided = {rule["name"]: (rule["proposals"], rule["promotions"]) for rule in data["rules"]}
    assert decided["payments-outage"] == (0, 1) and decided["critical-ci-p1"] == (1, 0)
