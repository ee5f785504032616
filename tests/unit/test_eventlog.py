"""The audit-log reader: display values become stored ones, events come out in time order."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.rules.backtest.eventlog import BUILTIN, changed, parse_rows, read_events

HEADER = (
    "number,incident_state,active,reassignment_count,reopen_count,sys_mod_count,made_sla,caller_id,opened_by,"
    "opened_at,sys_created_by,sys_created_at,sys_updated_by,sys_updated_at,contact_type,location,category,"
    "subcategory,u_symptom,cmdb_ci,impact,urgency,priority,assignment_group,assigned_to,knowledge,"
    "u_priority_confirmation,notify,problem_id,rfc,vendor,caused_by,closed_code,resolved_by,resolved_at,closed_at"
)
ROWS = [
    "INC1,New,true,0,0,0,true,Caller 1,Opened by  8,29/2/2016 01:16,C,29/2/2016 01:23,U,29/2/2016 01:23,Phone,L,"
    "Category 55,Sub 1,?,?,2 - Medium,1 - High,2 - High,Group 56,?,true,false,Do Not Notify,?,?,?,?,code 5,R,?,?",
    "INC1,Awaiting Vendor,true,0,0,1,true,Caller 1,Opened by  8,29/2/2016 01:16,C,29/2/2016 01:23,U,29/2/2016 02:00,"
    "Phone,L,Category 55,Sub 1,?,?,1 - High,1 - High,1 - Critical,Group 57,?,true,false,Do Not Notify,Problem ID  2,"
    "?,?,?,code 5,R,?,?",
    "INC0,Resolved,true,0,0,3,true,Caller 2,Opened by  8,28/2/2016 01:16,C,28/2/2016 01:23,U,29/2/2016 01:30,Phone,L,"
    "Category 1,Sub 2,Symptom 4,?,3 - Low,3 - Low,4 - Low,Group 1,Agent 7,true,false,Do Not Notify,?,?,?,?,code 6,R,?,?",
]


def write(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n")
    return path


def test_events_in_time_order_with_stored_values(tmp_path: Path) -> None:
    events = read_events(write(tmp_path))
    assert [(e.number, e.mod_count) for e in events] == [("INC1", 0), ("INC0", 3), ("INC1", 1)]
    first, resolved, on_hold = events
    assert first.updated_at == datetime(2016, 2, 29, 1, 23, tzinfo=UTC)
    assert (first.fields["state"], first.fields["impact"], first.fields["urgency"], first.priority) == (
        "1",
        "2",
        "1",
        "2",
    )
    assert first.references["opened_by"] == "Opened by 8", "double spaces in names are folded"
    assert first.references["cmdb_ci"] == "" and first.fields["u_symptom"] == ""
    assert (on_hold.fields["state"], on_hold.fields["hold_reason"]) == ("3", "4")
    assert on_hold.references["problem_id"] == "Problem ID 2"
    assert (resolved.fields["state"], resolved.fields["close_code"]) == ("6", "Solution provided")


def test_changed_carries_only_differences(tmp_path: Path) -> None:
    first, _, second = read_events(write(tmp_path))
    fields, references = changed(first, second)
    assert fields == {"state": "3", "hold_reason": "4", "impact": "1"}
    assert references == {"assignment_group": "Group 57", "problem_id": "Problem ID 2"}
    initial, initial_refs = changed(None, first)
    assert "hold_reason" not in initial and initial_refs["assignment_group"] == "Group 56"


def test_bad_rows_name_their_line() -> None:
    rows = csv.DictReader(
        io.StringIO(HEADER + "\n" + ROWS[0].replace("29/2/2016 01:23,Phone", "yesterday,Phone"))
    )
    with pytest.raises(ValueError, match=r"^line 2: "):
        list(parse_rows(rows))


def test_builtin_slice_is_shipped() -> None:
    events = read_events(BUILTIN)
    assert len(events) == 1348
    assert len({e.number for e in events}) == 197
    assert sum(1 for n in {e.number for e in events if e.priority == "1"}) == 36
