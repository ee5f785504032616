"""The encoded query language: parsing, operators, dropped conditions, time semantics."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from connector.sandbox.servicenow.dates import QueryContext
from connector.sandbox.servicenow.predicates import FieldAccess, compile_query, sort_records
from connector.sandbox.servicenow.query import Condition, OrderTerm, parse

KINDS = {
    "number": "string",
    "short_description": "string",
    "state": "integer",
    "priority": "integer",
    "active": "boolean",
    "sys_updated_on": "datetime",
    "opened_at": "datetime",
    "assigned_to": "reference",
    "sys_id": "string",
}
NOW = datetime(2024, 3, 10, 12, 30, 45, tzinfo=UTC)
UTC_CONTEXT = QueryContext(NOW, UTC, user_sys_id="u-1", user_name="svc")
BERLIN = QueryContext(NOW, ZoneInfo("Europe/Berlin"), user_sys_id="u-1", user_name="svc")


def resolve(path: str) -> FieldAccess | None:
    kind = KINDS.get(path)
    if kind is None:
        return None
    return FieldAccess(kind, lambda record: record.get(path, ""), path)


def matching(query: str, records: list[dict[str, str]], context: QueryContext = UTC_CONTEXT) -> list[str]:
    compiled = compile_query(parse(query), resolve, context)
    return [r["number"] for r in records if compiled.matches(r)]


RECORDS = [
    {
        "number": "A",
        "state": "1",
        "priority": "10",
        "active": "true",
        "short_description": "Disk full on web-lb-01",
    },
    {"number": "B", "state": "2", "priority": "2", "active": "true", "assigned_to": "u-1"},
    {"number": "C", "state": "6", "priority": "3", "active": "false", "short_description": "WAN down"},
    {"number": "D", "state": "7", "priority": "1", "sys_updated_on": "2024-03-10 09:00:00"},
]


def test_or_binds_to_the_previous_condition_and_nq_unions_blocks() -> None:
    parsed = parse("active=true^state=1^ORstate=6^NQnumber=D^ORDERBYDESCpriority^ORDERBYnumber")
    assert [[len(clause) for clause in block] for block in parsed.blocks] == [[1, 2], [1]]
    assert parsed.blocks[0][1][1] == Condition("state", "=", "6", "state=6")
    assert parsed.order == (OrderTerm("priority", True), OrderTerm("number", False))
    assert matching("active=true^state=1^ORstate=6^NQnumber=D", RECORDS) == ["A", "D"]


def test_caret_escape_eq_terminator_and_empty_query() -> None:
    assert parse("short_descriptionLIKEa^^b").blocks[0][0][0].value == "a^b"
    assert matching("number=A^EQ^number=B", RECORDS) == ["A"]
    assert matching("", RECORDS) == ["A", "B", "C", "D"]
    assert parse("ORDERBYnumber").blocks == ()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("priority<3", ["B", "D"]),
        ("priority<=3", ["B", "C", "D"]),
        ("priority>2", ["A", "C"]),
        ("priority>=10", ["A"]),
        ("priority!=10", ["B", "C", "D"]),
        ("stateIN1,6", ["A", "C"]),
        ("stateNOT IN1,6", ["B", "D"]),
        ("short_descriptionLIKEdisk", ["A"]),
        ("short_descriptionNOT LIKEdisk", ["B", "C", "D"]),
        ("short_descriptionSTARTSWITHwan", ["C"]),
        ("short_descriptionENDSWITHlb-01", ["A"]),
        ("short_descriptionISEMPTY", ["B", "D"]),
        ("short_descriptionISNOTEMPTY", ["A", "C"]),
        ("assigned_toANYTHING", ["A", "B", "C", "D"]),
        ("priorityBETWEEN2@3", ["B", "C"]),
        ("active=true", ["A", "B"]),
        ("assigned_to=javascript:gs.getUserID()", ["B"]),
        ("sys_updated_onBETWEEN2024-03-10 08:00:00@2024-03-10 09:00:00", ["D"]),
        ("sys_updated_onRELATIVEGT@hour@ago@4", ["D"]),
        ("sys_updated_onRELATIVELT@hour@ago@4", []),
        ("sys_updated_onONToday@javascript:gs.beginningOfToday()@javascript:gs.endOfToday()", ["D"]),
        ("numberSAMEASnumber", ["A", "B", "C", "D"]),
    ],
)
def test_operators(query: str, expected: list[str]) -> None:
    assert matching(query, RECORDS) == expected


def test_integer_columns_compare_as_numbers_not_text() -> None:
    assert matching("priority>9", RECORDS) == ["A"], "'10' > '9' numerically, not as text"


def test_invalid_field_drops_only_that_condition() -> None:
    compiled = compile_query(parse("stat=1^priority<3^ORnope=1"), resolve, UTC_CONTEXT)
    assert compiled.dropped == ("stat=1", "nope=1")
    assert [r["number"] for r in RECORDS if compiled.matches(r)] == ["B", "D"]


@pytest.mark.parametrize(
    "query",
    [
        "stateDATEPART1",
        "state~1",
        "sys_updated_on>javascript:gs.evil()",
        "opened_at>javascript:new GlideDateTime()",
    ],
)
def test_unsupported_operators_and_scripts_are_dropped(query: str) -> None:
    compiled = compile_query(parse(query), resolve, UTC_CONTEXT)
    assert compiled.dropped == (query,)
    assert compiled.matches(RECORDS[0])


def test_plain_literal_is_utc_but_date_generate_is_the_users_time_zone() -> None:
    record = [{"number": "D", "sys_updated_on": "2024-03-10 09:00:00"}]
    assert matching("sys_updated_on>=2024-03-10 09:00:00", record, BERLIN) == ["D"]
    # 10:00 in Berlin (CET, UTC+1) is 09:00 UTC
    assert matching(
        "sys_updated_on>=javascript:gs.dateGenerate('2024-03-10','10:00:00')", record, BERLIN
    ) == ["D"]
    assert (
        matching("sys_updated_on>javascript:gs.dateGenerate('2024-03-10','10:00:00')", record, BERLIN) == []
    )
    assert matching('sys_updated_on>=javascript:gs.dateGenerate("2024-03-10 10:00:01")', record, BERLIN) == []
    assert (
        matching('sys_updated_on>=javascript:gs.dateGenerate("2024-03-10 10:00:00")', record, UTC_CONTEXT)
        == []
    )
    assert matching("sys_updated_on<=javascript:gs.dateGenerate('2024-03-10','start')", record, BERLIN) == []


@pytest.mark.parametrize(
    ("macro", "utc"),
    [
        ("gs.beginningOfToday()", "2024-03-09 23:00:00"),
        ("gs.endOfToday()", "2024-03-10 22:59:59"),
        ("gs.hoursAgoStart(2)", "2024-03-10 10:00:00"),
        ("gs.minutesAgo(30)", "2024-03-10 12:00:45"),
        ("gs.daysAgoStart(1)", "2024-03-08 23:00:00"),
        ("gs.beginningOfLast15Minutes()", "2024-03-10 12:15:00"),
        ("gs.nowDateTime()", "2024-03-10 12:30:45"),
    ],
)
def test_relative_macros_are_computed_in_the_users_time_zone(macro: str, utc: str) -> None:
    record = [{"number": "X", "sys_updated_on": utc}]
    assert matching(f"sys_updated_on=javascript:{macro}", record, BERLIN) == ["X"]


def test_sort_several_keys_mixed_directions_numbers_numerically() -> None:
    compiled = compile_query(parse("ORDERBYactive^ORDERBYDESCpriority"), resolve, UTC_CONTEXT)
    assert [r["number"] for r in sort_records(RECORDS, compiled.order)] == ["D", "C", "A", "B"]


def test_order_by_an_unknown_field_is_ignored() -> None:
    compiled = compile_query(parse("ORDERBYnope^ORDERBYnumber"), resolve, UTC_CONTEXT)
    assert [key.path for key in compiled.order] == ["number"]
