"""Shared fields, last writer wins: every combination of who moved since the last agreement."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from connector.config.supplier_file import SharedField
from connector.core import shadows
from connector.core.plan import RecordShadow, UpdateIncident, UpdateIssue
from connector.mirror.shared import plan_shared
from connector.mirror.view import EntityView
from tests.factories import T0, incident, issue, link
from tests.unit.test_planner import view

KEY = shadows.shared("customfield_10062")


def shared_view(
    snow: str,
    jira: str,
    agreed: str | None,
    jira_later: bool = True,
    pending: str = "",
    **overrides: Any,
) -> EntityView:
    current = dataclasses.replace(
        issue(customfield_10062=jira), updated=T0 + timedelta(seconds=5 if jira_later else -5)
    )
    shadow = ({KEY: agreed} if agreed is not None else {}) | (
        {shadows.pending(KEY): pending} if pending else {}
    )
    values: dict[str, Any] = {"incident": incident(u_workaround=snow), "link": link(), "issue": current}
    return view(**{**values, "jira_shadow": shadow, **overrides})


@pytest.mark.parametrize(
    ("snow", "jira", "agreed", "jira_later", "expected", "conflicts"),
    [
        ("A", "A", "A", True, [], 0),
        ("A", "A", "old", True, [("shadow", "A")], 0),
        ("B", "A", "A", True, [("jira", "B")], 0),
        ("A", "B", "A", False, [("servicenow", "B"), ("shadow", "B")], 0),
        ("B", "C", "A", True, [("servicenow", "C"), ("shadow", "C")], 1),
        ("B", "C", "A", False, [("jira", "B")], 1),
        ("", "C", None, False, [("servicenow", "C"), ("shadow", "C")], 0),
        ("B", "C", None, True, [("jira", "B")], 0),
        ("", "C", "C", True, [("jira", None)], 0),
        ("B", "", "B", True, [("servicenow", ""), ("shadow", "")], 0),
    ],
    ids=[
        "in-step",
        "equal-shadow-behind",
        "servicenow-moved",
        "jira-moved",
        "both-jira-later",
        "both-servicenow-later",
        "first-sight-only-jira",
        "first-sight-servicenow-is-the-record",
        "cleared-in-servicenow-clears-jira",
        "cleared-in-jira-clears-servicenow",
    ],
)
def test_last_writer_wins(
    snow: str,
    jira: str,
    agreed: str | None,
    jira_later: bool,
    expected: list[tuple[str, str | None]],
    conflicts: int,
) -> None:
    found: list[str] = []
    changes, _pending = plan_shared(shared_view(snow, jira, agreed, jira_later), found)
    assert summarize(changes) == expected
    assert len(found) == conflicts


def summarize(changes: list[Any]) -> list[tuple[str, str | None]]:
    summary: list[tuple[str, str | None]] = []
    for change in changes:
        if isinstance(change, UpdateIssue):
            summary.append(("jira", change.fields["customfield_10062"]))
            assert change.after[KEY] == (change.fields["customfield_10062"] or "")
        elif isinstance(change, UpdateIncident):
            summary.append(("servicenow", change.fields["u_workaround"]))
        elif isinstance(change, RecordShadow):
            assert change.side == "jira"
            summary.append(("shadow", change.values.get(KEY)))
    return summary


@pytest.mark.parametrize(
    ("snow", "jira", "pending", "jira_later", "expected"),
    [
        ("Y", "Z", "out:Y", False, [("servicenow", "Z"), ("shadow", "Z")]),
        ("W", "Y", "out:Y", False, [("jira", "W")]),
        ("Y", "X", "out:Y", True, [("jira", "Y")]),
        ("Z", "V", "in:Z", False, [("servicenow", "V"), ("shadow", "V")]),
        ("W", "Z", "in:Z", True, [("jira", "W")]),
        ("X", "Z", "in:Z", False, [("servicenow", "Z"), ("shadow", "Z")]),
        ("Y", "Y", "out:Y", True, [("shadow", "Y")]),
    ],
    ids=[
        "sent-then-jira-moved",
        "sent-arrived-then-servicenow-moved",
        "sent-never-arrived",
        "taken-then-jira-moved",
        "taken-arrived-then-servicenow-moved",
        "taken-never-arrived",
        "sent-and-agreed",
    ],
)
def test_a_copy_whose_answer_was_lost_decides_without_the_clock(
    snow: str, jira: str, pending: str, jira_later: bool, expected: list[tuple[str, str | None]]
) -> None:
    """The agreed value is X; we were copying ``pending`` when the answer was lost; a person moved on."""
    found: list[str] = []
    changes, _ = plan_shared(shared_view(snow, jira, "X", jira_later, pending=pending), found)
    assert summarize(changes) == expected
    assert found == []
    cleared = [c for c in changes if shadows.pending(KEY) in getattr(c, "after", getattr(c, "values", {}))]
    assert cleared, "the pending copy is settled once the plan is done"


def test_a_copy_that_did_not_arrive_is_sent_again_while_the_other_side_is_unchanged() -> None:
    """Our copy of W to Jira landed, the engineer then wrote F; our copy of F to ServiceNow was
    lost (ServiceNow still holds W, as when we decided): F is sent again, not undone."""
    lost = {shadows.held(KEY): "W"}
    changes, pending = plan_shared(shared_view("W", "F", "P", jira_later=False, pending="in:F"), [])
    assert summarize(changes) == [("jira", "W")], "without knowing what ServiceNow held, W looks new"
    again, _ = plan_shared(
        shared_view(
            "W",
            "F",
            "P",
            jira_later=False,
            pending="in:F",
            jira_shadow={KEY: "P", shadows.pending(KEY): "in:F", **lost},
        ),
        [],
    )
    assert summarize(again) == [("servicenow", "F"), ("shadow", "F")]
    # The desk changed it since (ServiceNow no longer holds W): the desk's value wins.
    desk, _ = plan_shared(
        shared_view(
            "D", "F", "P", jira_later=False, jira_shadow={KEY: "P", shadows.pending(KEY): "in:F", **lost}
        ),
        [],
    )
    assert summarize(desk) == [("jira", "D")]
    assert pending == {shadows.pending(KEY): "out:W", shadows.held(KEY): "F"}


def test_every_copy_is_noted_as_pending_before_it_is_written() -> None:
    _, towards_jira = plan_shared(shared_view("B", "A", "A"), [])
    _, towards_servicenow = plan_shared(shared_view("A", "B", "A", jira_later=False), [])
    _, agreed = plan_shared(shared_view("A", "A", "A"), [])
    assert towards_jira == {shadows.pending(KEY): "out:B", shadows.held(KEY): "A"}, "and what Jira held then"
    assert towards_servicenow == {shadows.pending(KEY): "in:B", shadows.held(KEY): "A"}
    assert agreed == {}


def test_values_are_mapped_both_ways_and_redacted_on_the_way_out() -> None:
    base = view()
    impact = SharedField(servicenow="impact", jira="customfield_10062", values={"1": "High", "3": "Low"})
    mapped = base.mapping.model_copy(update={"shared": (impact,)})
    out, _ = plan_shared(shared_view("x", "Low", "High", mapping=mapped, incident=incident(impact="1")), [])
    assert [(type(c).__name__, dict(getattr(c, "fields", {}))) for c in out] == [
        ("UpdateIncident", {"impact": "3"}),
        ("RecordShadow", {}),
    ]
    secret, _ = plan_shared(shared_view("mail ops@corp.example.com", "", "", jira_later=False), [])
    (update,) = [c for c in secret if isinstance(c, UpdateIssue)]
    assert update.fields["customfield_10062"] == "mail [e-mail removed]"


def test_two_lost_answers_in_a_row_still_let_the_latest_edit_win() -> None:
    """W agreed; the engineer wrote F6, our copy arrived unacknowledged; then F7, whose copy never did."""
    changes, pending = plan_shared(shared_view("F6", "F7", "W", jira_later=False, pending="in:F6"), [])
    assert summarize(changes) == [("servicenow", "F7"), ("shadow", "F7")]
    assert pending == {KEY: "F6", shadows.pending(KEY): "in:F7", shadows.held(KEY): "F6"}, (
        "the first copy is the agreement now"
    )
    again, _ = plan_shared(shared_view("F6", "F7", "F6", jira_later=False, pending="in:F7"), [])
    assert summarize(again) == [("servicenow", "F7"), ("shadow", "F7")]
