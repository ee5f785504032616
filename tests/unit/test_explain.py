"""``rules test`` offline: from a JSON file (time conditions assumed from its timestamps) or from an
audit export (replayed up to the moment asked, agreeing with the back-test)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from connector.commands.explain import history_subject, rules_test
from connector.rules.backtest.eventlog import BUILTIN, read_events
from connector.rules.backtest.replay import observations_from_events, run_backtest
from connector.rules.book import RuleBook, eligibility
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
    unset = ("assigned_to", "cmdb_ci", "active", "parent_incident", "major_incident_state")
    dot_walks = {"business_service.name": "", "cmdb_ci.business_criticality": ""}
    timestamps = {"opened_at": opened, "sys_updated_on": opened}
    fields = {"number": "INC7", "priority": "1", "state": "2", **timestamps, **dict.fromkeys(unset, "")}
    record.write_text(json.dumps(fields | dot_walks))
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


# --- the forms an admin pastes -------------------------------------------------------------------------

SERVICE = "27d32778c0a8000b00db970eeaa60f16"
CI = "d6d60e3fbae9d4c282271475d06f1d45"
LINK = "https://example.service-now.com/api/now/table"
STORED = {
    "number": "INC0010001",
    "priority": "1",
    "state": "2",
    "active": "true",
    "assigned_to": "",
    "parent_incident": "",
    "major_incident_state": "",
    "opened_at": "2026-11-22 09:00:00",
    "sys_updated_on": "2026-11-22 09:00:00",
}
"""Every plain field the demo rules read, as stored: a file giving these and the dot-walks lacks nothing."""
LABELS = {"priority": "1 - Critical", "state": "In Progress", "active": "true"}
DOTS = {"business_service.name": "Payments", "cmdb_ci.business_criticality": "3 - less critical"}
PROMOTE = "Decision: promote by rule payments-outage (promote-in-place)"
AT = datetime(2026, 11, 22, 9, 30, tzinfo=T0.tzinfo)


def _all(values: dict[str, str]) -> dict[str, dict[str, str]]:
    return {k: {"display_value": LABELS.get(k, v), "value": v} for k, v in values.items()}


def _reference(table: str, sys_id: str, name: str, display: str) -> dict[str, str]:
    form = {"display_value": name, "link": f"{LINK}/{table}/{sys_id}", "value": sys_id}
    return {k: v for k, v in form.items() if display == "all" or k != "value"}


FLAT = {**STORED, "business_service": SERVICE, "cmdb_ci": CI, **DOTS}
FORMS = {
    "flat with dot-walked keys": FLAT,
    "nested objects": {
        **STORED,
        "business_service": {"sys_id": SERVICE, "name": "Payments"},
        "cmdb_ci": {"sys_id": CI, "business_criticality": "3 - less critical"},
    },
    "Table API, display_value=false": {
        "result": {
            **STORED,
            "business_service": {"link": f"{LINK}/cmdb_ci_service/{SERVICE}", "value": SERVICE},
            "cmdb_ci": {"link": f"{LINK}/cmdb_ci/{CI}", "value": CI},
            **DOTS,
        }
    },
    "Table API, display_value=all": {
        "result": {
            **_all(STORED),
            "business_service": _reference("cmdb_ci_service", SERVICE, "Payments", "all"),
            "cmdb_ci": _reference("cmdb_ci", CI, "web-lb-01", "all"),
            **_all({"cmdb_ci.business_criticality": "3 - less critical"}),
        }
    },
    "Table API query, display_value=all": {
        "result": [
            {
                **_all(STORED),
                "business_service": _reference("cmdb_ci_service", SERVICE, "Payments", "all"),
                "cmdb_ci": _reference("cmdb_ci", CI, "web-lb-01", "all"),
                **_all({"cmdb_ci.business_criticality": "3 - less critical"}),
            }
        ]
    },
    "Table API, display_value=true": {
        "result": {
            **STORED,
            **LABELS,
            "business_service": _reference("cmdb_ci_service", SERVICE, "Payments", "true"),
            "cmdb_ci": _reference("cmdb_ci", CI, "web-lb-01", "true"),
            "cmdb_ci.business_criticality": "3 - less critical",
        }
    },
    "Table API, display_value=true, links excluded": {
        "result": {
            **STORED,
            **LABELS,
            "business_service": "Payments",
            "cmdb_ci": "web-lb-01",
            "cmdb_ci.business_criticality": "3 - less critical",
        }
    },
}


def explain(tmp_path: Path, data: object, *, at: datetime = AT, name: str = "incident") -> list[str]:
    record = tmp_path / f"{name}.json"
    record.write_text(json.dumps(data))
    out = io.StringIO()
    assert rules_test(CONFIG, None, record, tree=False, at=at, out=out) == 0, out.getvalue()
    return out.getvalue().splitlines()


@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_of_a_pasted_incident_gets_the_live_decision(tmp_path: Path, form: str) -> None:
    lines = explain(tmp_path, FORMS[form])
    assert lines[0] == "INC0010001 (priority 1, state 2, major_incident_state -): eligible"
    assert "     ✓ business_service.name equals Payments — actual 'Payments'" in lines
    assert lines[-1] == PROMOTE
    assert not [line for line in lines if line.startswith("warning:")], "the file lacks nothing"


@pytest.mark.parametrize(
    ("data", "missing", "decision"),
    [
        pytest.param(
            {"number": "INC7", "priority": "1", "state": "2"},
            "business_service.name, cmdb_ci.business_criticality, assigned_to, opened_at, cmdb_ci, active, "
            "parent_incident, major_incident_state, sys_updated_on",
            "Decision: no rule matched",
            id="a-bare-file",
        ),
        pytest.param(
            {"result": {**_all(STORED), "cmdb_ci": _reference("cmdb_ci", CI, "web-lb-01", "all")}},
            "business_service.name, cmdb_ci.business_criticality",
            "Decision: propose by rule p1-unassigned (promote-in-place)",
            id="a-table-api-answer-without-the-dot-walks",
        ),
        pytest.param(
            {
                **STORED,
                "assigned_to": "Ann",
                "business_service": {"name": "Billing"},
                "cmdb_ci": {"name": "web-lb-01"},
            },
            "cmdb_ci.business_criticality, cmdb_ci",
            "Decision: no rule matched",
            id="nested-objects-without-their-sys_id",
        ),
        pytest.param(
            {
                "result": {
                    **_all(STORED),
                    "business_service": _reference("cmdb_ci_service", SERVICE, "Payments", "all"),
                }
            },
            "",
            PROMOTE,
            id="only-what-the-rules-up-to-the-decision-read",
        ),
        pytest.param(
            {**STORED, "business_service": "", "cmdb_ci": CI, "cmdb_ci.business_criticality": ""},
            "",
            "Decision: propose by rule p1-unassigned (promote-in-place)",
            id="an-empty-reference-walks-to-empty",
        ),
        pytest.param(
            {k: v for k, v in FLAT.items() if k != "sys_updated_on"},
            "",
            PROMOTE,
            id="for-conditions-fall-back-on-opened_at",
        ),
    ],
)
def test_fields_the_rules_read_and_the_file_lacks_are_named(
    tmp_path: Path, data: object, missing: str, decision: str
) -> None:
    lines = explain(tmp_path, data)
    warnings = [line for line in lines if line.startswith("warning:")]
    if not missing:
        assert warnings == [] and lines[-1] == decision
        return
    count = len(missing.split(", "))
    assert warnings == [f"warning: the file lacks {count} fields the rules read, taken as empty: {missing}"]
    assert lines[-1] == f"{decision}, made without {missing}"


@pytest.mark.parametrize(
    ("extra", "note"),
    [
        (
            {"priority": "Critical"},
            "note: priority 'Critical' is neither a value (1, 2, 3, 4, 5) nor a label of one: compared as written",
        ),
        ({"priority": "1 - critical"}, "note: priority '1 - critical' is a display value: read as 1"),
        (
            {"business_service.name": "Payments", "business_service": {"name": "Billing"}},
            "note: business_service.name is given twice ('Payments' and 'Billing'): 'Payments' is used",
        ),
        (
            {"business_service": {"name": "Billing"}, "business_service.name": "Payments"},
            "note: business_service.name is given twice ('Payments' and 'Billing'): 'Payments' is used",
        ),
        (
            {"business_service": {"display_value": "Payments", "link": f"{LINK}/cmdb_ci_service/{SERVICE}"}},
            "note: business_service.name 'Payments' is taken from the display value of business_service "
            "(a cmdb_ci_service record displays its name)",
        ),
        (
            {"opened_at": "2026-11-22T10:00:00+01:00"},
            "note: opened_at '2026-11-22T10:00:00+01:00' read as 2026-11-22 09:00:00 UTC",
        ),
        (
            {"opened_at": "22/11/2026 10:00"},
            "note: opened_at '22/11/2026 10:00' is not a date-time the rules can read "
            "(YYYY-MM-DD HH:MM:SS, UTC): time conditions that need it do not hold",
        ),
        (
            {"state": "In Progress"},
            "note: the file holds display values: if it was read with sysparm_display_value=true, opened_at, "
            "sys_updated_on are in the reading user's time zone, while the rules take them as UTC "
            "(sysparm_display_value=all gives both)",
        ),
    ],
)
def test_forms_that_need_a_reading_say_how_they_were_read(
    tmp_path: Path, extra: dict[str, object], note: str
) -> None:
    lines = explain(tmp_path, {**STORED, "cmdb_ci": CI, "cmdb_ci.business_criticality": "", **extra})
    assert note in lines


def test_an_iso_opening_time_drives_time_conditions(tmp_path: Path) -> None:
    data = {**STORED, "business_service": "", "cmdb_ci": "", **DOTS, "business_service.name": "Billing"}
    data |= {"opened_at": "2026-11-22T10:00:00+01:00", "sys_updated_on": "2026-11-22T09:00:00Z"}
    lines = explain(tmp_path, data, at=datetime(2026, 11, 22, 9, 20, tzinfo=T0.tzinfo))
    assert "     ✓ unassigned for 15m — actual unassigned for 20m" in lines
    assert lines[-1] == "Decision: propose by rule p1-unassigned (promote-in-place)"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ({"result": []}, "the answer's result holds 0 records; keep the one incident to test"),
        ({"result": [STORED, STORED]}, "the answer's result holds 2 records; keep the one incident to test"),
        (
            {"result": "INC1"},
            'expected a JSON object with the incident\'s fields, or a Table API answer {"result": …}',
        ),
    ],
)
def test_a_file_that_is_not_one_incident_is_exit_2(tmp_path: Path, data: object, reason: str) -> None:
    record = tmp_path / "bad.json"
    record.write_text(json.dumps(data))
    out = io.StringIO()
    assert rules_test(CONFIG, None, record, tree=False, out=out) == 2
    assert out.getvalue() == f"cannot read {record}: {reason}\n"
