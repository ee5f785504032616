"""The rules back-test on synthetic event logs: simulated time, clusters, guardrails, the P1 comparison, output."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Any

import pytest

from connector.config.rules_file import RulesFile
from connector.core.models import Incident
from connector.rules.backtest.chart import chart_html, chart_svg
from connector.rules.backtest.eventlog import IncidentEvent
from connector.rules.backtest.replay import (
    observations_from_events,
    observations_from_incidents,
    run_backtest,
)
from connector.rules.backtest.report import render_text, to_json
from connector.rules.backtest.summary import BacktestResult
from connector.rules.book import RuleBook

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
                    | {k: v for k, v in values.items() if k == "short_description"}
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
        "caught_incidents": [
            {
                "number": "INC1", "short_description": "", "opened_at": "2024-01-01T09:00:00Z",
                "p1_at": "2024-01-01T09:10:00Z", "decided_at": "2024-01-01T09:10:00Z", "seconds_from_open": 600.0,
                "lead_time_seconds": 0.0, "rule": "p1", "action": "propose", "major": "INC1", "as_child": False,
            }
        ],
        "missed_incidents": [],
    }  # fmt: skip
    assert data["decisions"][0]["at"] == "2024-01-01T09:10:00Z"


def test_the_chart_is_svg_with_one_bar_group_per_week() -> None:
    rows = [("INC1", 0, P1), ("INC2", 60 * 24 * 9, P1), ("INC3", 60 * 24 * 20)]  # weeks 1, 2 and 3
    result = backtest(book(P1_NOW, rule("never", {"field": "category", "equals": "x"})), *rows)
    root = ET.fromstring(chart_svg(result))
    weeks = [g for g in root.iter(f"{SVG}g") if g.get("class") == "week"]
    assert [g.get("data-week") for g in weeks] == ["2024-W01", "2024-W02", "2024-W03"]
    assert [len(g.findall(f"{SVG}rect")) for g in weeks] == [1, 1, 0]
    legend = [g.get("data-series") for g in root.iter(f"{SVG}g") if g.get("class") == "legend"]
    assert legend == ["rule", "rule", "p1-caught", "p1-missed"]
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
        datetime(2024, 1, 5, 10, tzinfo=UTC),
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


ON_CI = rule("on-ci", {"field": "cmdb_ci", "equals": "db-01"}, max_per_hour=1)
P1_LOG = (
    ("INC1", 0, {"cmdb_ci": "db-01", "short_description": "Database slow"}),  # decided at once, P1 later
    (
        "INC2",
        10,
        {"priority": "1", "assigned_to": "Ann", "cmdb_ci": "web-01", "short_description": "Web down"},
    ),
    ("INC3", 20, {"priority": "1", "state": "6"}),  # P1 and resolved in one update
    ("INC1", 30, P1),
    ("INC4", 40, {"priority": "1", "cmdb_ci": "db-01", "assigned_to": "Bob"}),  # on-ci matches, capped
    ("INC4", 50, {"state": "6"}),
    ("INC5", 60, {"priority": "1", "cmdb_ci": "web-01"}),  # unassigned since 60: p1-unassigned at 75
    ("INC9", 60 * 24 * 8),  # the log goes on into the next week
)


def cells(lines: list[str]) -> list[list[str]]:
    """Rows of an aligned text table, split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def test_the_p1_lists_name_the_caught_and_say_why_the_missed_were_missed() -> None:
    result = backtest(book(ON_CI, P1_UNASSIGNED), *P1_LOG)
    text = render_text(result).splitlines()
    caught = text.index("P1 incidents caught (2), in the order they reached P1 (vs P1: + before, - after)")
    assert cells(text[caught + 1 : caught + 4]) == [
        ["incident", "opened", "reached P1", "decided", "after open", "vs P1", "rule", "as"],
        ["INC1", "2024-01-01 09:00", "2024-01-01 09:30", "2024-01-01 09:00", "0s", "+30m",
         "on-ci (propose)", "major incident"],
        ["INC5", "2024-01-01 10:00", "2024-01-01 10:00", "2024-01-01 10:15", "15m", "-15m",
         "p1-unassigned (propose)", "major incident"],
    ]  # fmt: skip
    missed = text.index("P1 incidents missed (3), in the order they reached P1")
    assert cells(text[missed + 1 : missed + 5]) == [
        ["incident", "opened", "reached P1", "last check at P1", "why not", "short description"],
        ["INC2", "2024-01-01 09:10", "2024-01-01 09:10", "2024-01-01 09:25",
         "(1) on-ci, p1-unassigned: 1 condition short", "Web down"],
        ["INC3", "2024-01-01 09:20", "2024-01-01 09:20", "-",
         "never evaluated at P1: is resolved, closed or canceled"],
        ["INC4", "2024-01-01 09:40", "2024-01-01 09:40", "-",
         "rule on-ci matched at 2024-01-01 09:45; a cap held it back"],
    ]  # fmt: skip
    assert text[missed + 5 : missed + 9] == [
        "  Why not: the rules fewest conditions away at the incident's last check at P1",
        "  (1) 1 incident: INC2",
        "      on-ci          ✗ cmdb_ci equals db-01 — actual 'web-01'",
        "      p1-unassigned  ✗ unassigned for 15m — actual assigned",
    ]
    data = json.loads(json.dumps(to_json(result)))["p1"]
    assert (data["reached"], data["caught"], data["missed"]) == (5, 2, 3)
    assert [
        (c["number"], c["rule"], c["seconds_from_open"], c["lead_time_seconds"])
        for c in data["caught_incidents"]
    ] == [
        ("INC1", "on-ci", 0.0, 1800.0),
        ("INC5", "p1-unassigned", 900.0, -900.0),
    ]
    assert data["caught_incidents"][0]["short_description"] == "Database slow"
    inc2, inc3, inc4 = data["missed_incidents"]
    assert inc2 == {
        "number": "INC2", "short_description": "Web down", "opened_at": "2024-01-01T09:10:00Z",
        "p1_at": "2024-01-01T09:10:00Z", "reason": "no_rule_matched", "detail": "no rule matched",
        "evaluated_at": "2024-01-01T09:25:00Z",
        "nearest_rules": [
            {"rule": "on-ci", "failed": [{"condition": "cmdb_ci equals db-01", "actual": "'web-01'"}]},
            {"rule": "p1-unassigned", "failed": [{"condition": "unassigned for 15m", "actual": "assigned"}]},
        ],
    }  # fmt: skip
    assert (inc3["number"], inc3["reason"], inc3["nearest_rules"]) == ("INC3", "not_evaluated", [])
    assert (inc4["number"], inc4["reason"]) == ("INC4", "capped")


def test_a_cluster_child_at_p1_is_caught_as_a_child() -> None:
    rows = [(f"INC{i}", i - 1, {"cmdb_ci": "db-01"}) for i in range(1, 5)] + [
        ("INC5", 4, {"cmdb_ci": "db-01", "priority": "1"})
    ]
    result = backtest(book(rule("ci-cluster", CLUSTER)), *rows)
    [caught] = result.p1.caught_incidents
    assert (caught.number, caught.rule, caught.major, caught.as_child) == ("INC5", "ci-cluster", "INC1", True)
    assert "child of INC1" in render_text(result)


def test_the_nearest_rule_counts_an_any_by_its_easiest_branch() -> None:
    either = rule(
        "either",
        {"any": [{"all": [{"field": "category", "equals": "x"}, {"field": "impact", "equals": "1"}]},
                 {"field": "cmdb_ci", "equals": "db-01"}]},
    )  # fmt: skip
    two = rule("two", {"all": [{"field": "category", "equals": "x"}, {"field": "urgency", "equals": "1"}]})
    result = backtest(book(two, either), ("INC1", 0, P1))
    [missed] = result.p1.missed_incidents
    [nearest] = missed.nearest
    assert nearest.rule == "either"
    assert [check.description for check in nearest.failed] == ["cmdb_ci equals db-01"]


class _Tables(HTMLParser):
    """The text of every cell of the page's tables, by the table's class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.table = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.table = dict(attrs).get("class") or ""
            self.tables[self.table] = []
        elif tag == "tr":
            self.tables[self.table].append([])
        elif tag == "td":
            self.tables[self.table][-1].append("")

    def handle_data(self, data: str) -> None:
        rows = self.tables.get(self.table)
        if rows and rows[-1]:
            rows[-1][-1] += data


def test_the_chart_draws_p1_incidents_per_week_beside_the_decisions() -> None:
    result = backtest(book(ON_CI, P1_UNASSIGNED), *P1_LOG, ("INC10", 60 * 24 * 8 + 5, P1))
    root = ET.fromstring(chart_svg(result))
    groups = list(root.iter(f"{SVG}g"))
    p1 = [g for g in groups if g.get("class") == "p1"]
    assert [(g.get("data-week"), g.get("data-caught"), g.get("data-missed")) for g in p1] == [
        ("2024-W01", "2", "3"),
        ("2024-W02", "0", "1"),
    ]
    first = p1[0]
    assert [rect.get("class") for rect in first.findall(f"{SVG}rect")] == ["p1-caught", "p1-missed"]
    title = first.findtext(f"{SVG}title")
    assert title == "2024-W01: 5 P1 incidents; caught INC1, INC5; missed INC2, INC3, INC4"
    decisions = next(g for g in groups if g.get("class") == "week").findall(f"{SVG}rect")
    assert len(decisions) == 2, "on-ci and p1-unassigned decided once each in the first week"
    decided = decisions[0]
    caught_bar, missed_bar = first.findall(f"{SVG}rect")
    assert float(caught_bar.get("x", 0)) >= max(
        float(r.get("x", 0)) + float(r.get("width", 0)) for r in decisions
    )
    heights = [float(r.get("height", 0)) for r in (decided, caught_bar, missed_bar)]
    assert heights[1] == 2 * heights[0] and heights[2] == 3 * heights[0], "one scale for both series"
    legend = {g.get("data-series"): g.findtext(f"{SVG}text") for g in groups if g.get("class") == "legend"}
    assert legend["p1-caught"] == "P1 incidents caught by a decision (2), right of the decisions"
    assert legend["p1-missed"] == "P1 incidents missed (4), on top of the caught ones"
    page = _Tables()
    page.feed(chart_html(result))
    caught, missed = page.tables["p1-caught"], page.tables["p1-missed"]
    assert [row[0] for row in caught if row] == ["INC1", "INC5"]
    assert [row[0] for row in missed if row] == ["INC2", "INC3", "INC4", "INC10"]
    assert missed[1][4].startswith("on-ci: ✗ cmdb_ci equals db-01 — actual 'web-01'")
