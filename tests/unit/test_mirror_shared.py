"""Shared fields, last writer wins: every combination of who moved since the last agreement."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from connector.config.supplier_file import SharedField
from connector.entity import SHARED, EntityView
from connector.mirror_shared import plan_shared
from connector.plan import RecordShadow, UpdateIncident, UpdateIssue
from tests.factories import T0, incident, issue, link
from tests.unit.test_planner import view

KEY = SHARED + "customfield_10062"


def shared_view(
    snow: str, jira: str, agreed: str | None, jira_later: bool = True, **overrides: Any
) -> EntityView:
    current = dataclasses.replace(
        issue(customfield_10062=jira), updated=T0 + timedelta(seconds=5 if jira_later else -5)
    )
    shadow = {KEY: agreed} if agreed is not None else {}
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
    changes = plan_shared(shared_view(snow, jira, agreed, jira_later), found)
    summary: list[tuple[str, str | None]] = []
    for change in changes:
        if isinstance(change, UpdateIssue):
            summary.append(("jira", change.fields["customfield_10062"]))
            assert change.after[KEY] == (change.fields["customfield_10062"] or "")
        elif isinstance(change, UpdateIncident):
            summary.append(("servicenow", change.fields["u_workaround"]))
        elif isinstance(change, RecordShadow):
            assert change.side == "jira"
            summary.append(("shadow", change.values[KEY]))
    assert summary == expected
    assert len(found) == conflicts


def test_values_are_mapped_both_ways_and_redacted_on_the_way_out() -> None:
    base = view()
    impact = SharedField(servicenow="impact", jira="customfield_10062", values={"1": "High", "3": "Low"})
    mapped = base.mapping.model_copy(update={"shared": (impact,)})
    out = plan_shared(shared_view("x", "Low", "High", mapping=mapped, incident=incident(impact="1")), [])
    assert [(type(c).__name__, dict(getattr(c, "fields", {}))) for c in out] == [
        ("UpdateIncident", {"impact": "3"}),
        ("RecordShadow", {}),
    ]
    secret = plan_shared(shared_view("mail ops@corp.example.com", "", "", jira_later=False), [])
    (update,) = [c for c in secret if isinstance(c, UpdateIssue)]
    assert update.fields["customfield_10062"] == "mail [e-mail removed]"
