"""The rules back-test on synthetic event logs: simulated time, clusters, guardrails, the P1 comparison, output."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import pytest

from connector.backtest import observations_from_events, observations_from_incidents, run_backtest
from connector.backtest_report import chart_html, chart_svg, render_text, to_json
from connector.backtest_summary import BacktestResult
from connector.config.rules_file import RulesFile
from connector.eventlog import IncidentEvent
from connector.models import Incident
from connector.rules import RuleBook

T0 = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)  # a Monday: ISO week 2024-W01
SVG = "{http://www.w3.org/2000/svg}"

P1_NOW = {
    "name": "p1",
    "description": "P1",
    "when": {"field": "priority", "equals": 1},
    "then": {"action": "propose"},
}
P1_UNASSIGNED = {
    "name": "p1-unassigned",
    "description": "P1 nobody picked up",
    "when": {"all": [{"field": "priority", "equals": 1, "for": "5m"}, {"unassigned_for": "15m"}]},
    "then": {"action": "propose"},
}


def rule(name: str, when: Any, action: str = "propose", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": name,
        "when": when,
        "then": {"action": action, **extra.pop("then", {})},
    } | extra


def book(*rules: dict[str, Any], **settings: Any) -> RuleBook:
    return RuleBook(
        RulesFile.model_validate({"settings": {"max_proposals_per_hour": 100, **settings}, "rules": rules})
    )


def history(*rows: tuple[str, float] | tuple[str, float, dict[str, str]]) -> list[IncidentEvent]:
    """Events from ``(number, minutes after T0, {field: value})``; opened at the number's first event."""
    opened: dict[str, datetime] = {}
    mods: dict[str, int] = {}
    state: dict[str, dict[str, str]] = {}
    events = []
    for row in rows:
        number, minutes = row[0], row[1]
        at = T0 + timedelta(minutes=minutes)
        values = state.setdefault(
            number, {"priority": "3", "state": "2", "assigned_to": "", "cmdb_ci": "", "group": "Service Desk"}
        )
        values.update(row[2] if len(row) == 3 else {})
        mods[number] = mods.get(number, -1) + 1
        events.append(
            IncidentEvent(
                number=number,
                updated_at=at,
                mod_count=mods[number],
                opened_at=opened.setdefault(number, at),
                fields=MappingProxyType(
                    {"state": values["state"], "impact": "2", "urgency": "2", "category": "software"}
                ),
                references=MappingProxyType(
                    {
                        "assigned_to": values["assigned_to"],
                        "cmdb_ci": values["cmdb_ci"],
                        "assignment_group": values["group"],
                        "caller_id": "Caller 1",
                    }
                ),
                priority=values["priority"],
            )
        )
    return events


def backtest(rules: RuleBook, *rows: tuple[str, float] | tuple[str, float, dict[str, str]]) -> BacktestResult:
    return run_backtest(observations_from_events(history(*rows)), rules, source="test")


def minutes(result: BacktestResult) -> list[tuple[str, float]]:
    return [(d.trigger, (d.at - T0).total_seconds() / 60) for d in result.decisions]


P1 = {"priority": "1"}


def test_a_p1_rule_fires_when_the_incident_reaches_p1() -> None:
    result = backtest(book(P1_NOW), ("INC1", 0), ("INC1", 10, P1), ("INC1", 30, {"state": "6"}))
    assert minutes(result) == [("INC1", 10)]
    only = result.rules[0]
    assert (only.proposals, only.promotions, only.time_to_decision.median) == (1, 0, 600.0)
    assert only.per_week == {"2024-W01": 1}
    assert only.top_groups == (("Service Desk", 1),)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [("INC1", 0, P1), ("INC1", 60, {"group": "Network"})], [("INC1", 15)], id="fires-between-events"
        ),
        pytest.param(
            [("INC1", 0, P1), ("INC1", 10, {"assigned_to": "Ann"}), ("INC1", 60)],
            [],
            id="assigned-in-between",
        ),
        pytest.param(
            [("INC1", 0, P1), ("INC1", 3, {"priority": "2"}), ("INC1", 20, P1), ("INC1", 90)],
            [("INC1", 25)],
            id="p1-broke-then-held-again",
        ),
        pytest.param([("INC1", 0, P1), ("INC1", 10)], [], id="log-ends-before-the-threshold"),
        pytest.param(
            [("INC1", 0), ("INC1", 12, P1), ("INC2", 120)], [("INC1", 17)], id="unassigned-since-open"
        ),
        pytest.param(
            [("INC1", 0, P1), ("INC1", 14, {"state": "6"}), ("INC2", 120)],
            [],
            id="resolved-before-the-threshold",
        ),
    ],
)
def test_time_conditions_fire_at_the_recheck_time(rows: list[Any], expected: list[tuple[str, float]]) -> None:
    result = backtest(book(P1_UNASSIGNED), *rows)
    assert minutes(result) == expected


def test_an_incident_is_never_proposed_twice() -> None:
    result = backtest(
        book(P1_NOW), ("INC1", 0, P1), ("INC1", 5), ("INC1", 10, {"priority": "2"}), ("INC1", 20, P1)
    )
    assert minutes(result) == [("INC1", 0)]
    assert result.rules[0].proposals == 1


CLUSTER = {"cluster": {"by": "cmdb_ci", "at_least": 5, "within": "30m"}}


@pytest.mark.parametrize(
    ("mode", "major", "children", "new_parents"),
    [("promote-in-place", "INC1", 4, 0), ("create-parent", None, 5, 1)],
)
def test_a_cluster_of_five_on_one_ci_is_one_decision(
    mode: str, major: str | None, children: int, new_parents: int
) -> None:
    rows = [(f"INC{i}", i - 1, {"cmdb_ci": "db-01"}) for i in range(1, 6)]
    rows += [("INC6", 6, {"cmdb_ci": "db-01"}), ("INC7", 7, {"cmdb_ci": "web-01"})]
    result = backtest(book(rule("ci-cluster", CLUSTER, then={"mode": mode})), *rows)
    [decision] = result.decisions
    assert (decision.trigger, decision.major, decision.members) == (
        "INC5",
        major,
        ("INC1", "INC2", "INC3", "INC4", "INC5"),
    )
    summary = result.rules[0]
    assert (summary.proposals, summary.children, summary.new_parents) == (1, children, new_parents)
    assert summary.top_cis == (("db-01", 1),)


def test_members_outside_the_window_do_not_count() -> None:
    rows = [
        (f"INC{i}", (i - 1) * 10, {"cmdb_ci": "db-01"}) for i in range(1, 6)
    ]  # 40 minutes apart end to end
    assert backtest(book(rule("ci-cluster", CLUSTER)), *rows).decisions == ()


def test_caps_stop_a_runaway_rule_in_simulated_time() -> None:
    everything = rule("everything", {"field": "priority", "equals": 3}, max_per_hour=2)
    rows = [(f"INC{i}", i) for i in range(1, 6)] + [("INC9", 90)]
    result = backtest(book(everything), *rows)
    assert minutes(result) == [("INC1", 1), ("INC2", 2), ("INC9", 90)]
    assert result.rules[0].capped == 3


def test_the_global_cap_applies_across_rules() -> None:
    first = rule("first", {"field": "category", "equals": "software"})
    result = backtest(book(first, max_proposals_per_hour=1), ("INC1", 0), ("INC2", 1), ("INC3", 61))
    assert minutes(result) == [("INC1", 0), ("INC3", 61)]
    assert result.rules[0].capped == 1


@pytest.mark.parametrize(
    ("rule_dry_run", "book_dry_run", "expected"),
    [(True, False, 1), (None, True, 1), (False, True, 0), (None, False, 0)],
)
def test_dry_run_decisions_are_counted_as_such(
    rule_dry_run: bool | None, book_dry_run: bool, expected: int
) -> None:
    extra = {} if rule_dry_run is None else {"dry_run": rule_dry_run}
    p1 = rule("p1", {"field": "priority", "equals": 1}, "promote", **extra)
    result = backtest(book(p1, dry_run=book_dry_run), ("INC1", 0, P1), ("INC1", 5))
    summary = result.rules[0]
    assert (summary.promotions, summary.dry_run_decisions, summary.dry_run) == (1, expected, bool(expected))


def test_the_p1_comparison() -> None:
    on_ci = rule("on-ci", {"field": "cmdb_ci", "equals": "db-01"})
    result = backtest(
        book(on_ci),
        ("INC1", 0, {"cmdb_ci": "db-01"}),
        ("INC1", 30, P1),  # caught 30 minutes before it reached P1
        ("INC2", 10, P1),  # reached P1, no rule matched
        ("INC3", 20, {"cmdb_ci": "db-01"}),  # decided, never P1
    )
    p1 = result.p1
    assert (p1.reached, p1.caught, p1.caught_before, p1.missed) == (2, 1, 1, 1)
    assert (p1.decisions, p1.decisions_not_p1, p1.lead_time.median) == (2, 1, 1800.0)
    assert (result.rules[0].on_p1, result.rules[0].not_p1) == (1, 1)


def test_the_report_has_a_section_per_rule_and_the_p1_comparison() -> None:
    result = backtest(book(P1_NOW, P1_UNASSIGNED), ("INC1", 0, P1), ("INC2", 100))
    text = render_text(result)
    assert "Rule 1: p1 - P1" in text and "Rule 2: p1-unassigned" in text
    assert "incidents that reached P1" in text and "How to read this" in text


def test_json_shape() -> None:
    result = backtest(book(P1_NOW), ("INC1", 0), ("INC1", 10, P1), ("INC2", 8 * 24 * 60))
    data = json.loads(json.dumps(to_json(result)))
    assert set(data) == {
        "schema_version", "source", "note", "period", "incidents", "events", "evaluations", "rechecks",
        "settings", "rules", "p1", "decisions",
    }  # fmt: skip
    assert data["period"] == {
        "start": "2024-01-01T09:00:00Z",
        "end": "2024-01-09T09:00:00Z",
        "weeks": ["2024-W01", "2024-W02"],
    }
    assert (data["incidents"], data["events"]) == (2, 3)
    [only] = data["rules"]
    assert (
        only["name"] == "p1"
        and only["proposals"] == 1
        and only["time_to_decision_seconds"]["median"] == 600.0
    )
    assert only["per_week"] == {"2024-W01": 1} and only["top_groups"] == [
        {"name": "Service Desk", "count": 1}
    ]
    assert data["p1"] == {
        "reached": 1, "caught": 1, "caught_as_child": 0, "caught_before": 0, "missed": 0, "decisions": 1,
        "decisions_not_p1": 0, "lead_time_seconds": {"count": 1, "median": 0.0, "p90": 0.0, "max": 0.0},
    }  # fmt: skip
    assert data["decisions"][0]["at"] == "2024-01-01T09:10:00Z"


def test_the_chart_is_svg_with_one_bar_group_per_week() -> None:
    rows = [("INC1", 0, P1), ("INC2", 60 * 24 * 9, P1), ("INC3", 60 * 24 * 20)]  # weeks 1, 2 and 3
    result = backtest(book(P1_NOW, rule("never", {"field": "category", "equals": "x"})), *rows)
    root = ET.fromstring(chart_svg(result))
    weeks = [g for g in root.iter(f"{SVG}g") if g.get("class") == "week"]
    assert [g.get("data-week") for g in weeks] == ["2024-W01", "2024-W02", "2024-W03"]
    assert [len(g.findall(f"{SVG}rect")) for g in weeks] == [1, 1, 0]
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "legend"]) == 2
    page = chart_html(result)
    assert (
        page.startswith("<!DOCTYPE html>")
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    ET.fromstring(page[page.index("<svg") : page.index("</svg>") + 6])


def test_live_incidents_are_replayed_once_at_their_opening_as_open() -> None:
    closed = Incident(
        "sys1",
        "INC1",
        9,
        "2024-01-05 10:00:00",
        MappingProxyType(
            {
                "opened_at": "2024-01-01 09:00:00",
                "state": "7",
                "priority": "1",
                "major_incident_state": "accepted",
            }
        ),
    )
    [observation] = observations_from_incidents([closed])
    assert observation.at == T0
    assert (observation.incident.get("state"), observation.incident.get("major_incident_state")) == ("2", "")
    result = run_backtest([observation], book(P1_NOW))
    assert minutes(result) == [("INC1", 0)]
