"""Recognising our own issues, comments and notes without the store (pure, no HTTP)."""

from __future__ import annotations

import dataclasses

import pytest

from connector.core.models import IssueStamp, StatusChange, servicenow_identity
from connector.core.plan import CommentOnIssue, MoveIssue, NoteOnIncident, UpdateIssue
from connector.core.shadows import shared
from connector.mirror.outbound import outbound_values
from connector.mirror.planner import plan
from connector.mirror.recognition import Landed, already_landed, candidate_keys, rebuilt_shadow
from connector.mirror.view import STATE_DONE, STATE_PENDING
from tests.factories import T0, comment, incident, issue, journal, link
from tests.unit.test_planner import view


@pytest.mark.parametrize(
    ("listed", "project", "keys"),
    [
        ("ACME-3, NET-2, PAY-12", "ACME", ["ACME-3"]),
        ("ACME-3, ACME-7", "ACME", ["ACME-3", "ACME-7"]),
        ("acme-3 ACME-3", "ACME", ["ACME-3"]),
        ("XACME-1, ACME-, ACME-x", "ACME", []),
        ("", "ACME", []),
        ("NET-2", "net", ["NET-2"]),
    ],
)
def test_the_keys_an_incident_lists_are_the_candidates_of_their_project(
    listed: str, project: str, keys: list[str]
) -> None:
    assert candidate_keys(listed, project) == keys


def test_a_stamp_belongs_to_one_incident_of_one_servicenow_instance() -> None:
    stamp = IssueStamp("ab12", "sys1", "INC0010001", "mim-connector", "acme.service-now.com")
    assert stamp.belongs_to("sys1", {"acme.service-now.com"}, "mim-connector")
    assert not stamp.belongs_to("sys2", {"acme.service-now.com"}, "mim-connector"), "another incident"
    assert not stamp.belongs_to("sys1", {"acmedev.service-now.com"}, "mim-connector"), "a clone's incident"
    assert stamp.belongs_to("sys1", {"itsm.acme.example", "acme.service-now.com"}, "x"), "a former URL"
    older = IssueStamp("ab12", "sys1", "INC0010001", "mim-connector")
    assert older.belongs_to("sys1", {"acme.service-now.com"}, "mim-connector"), "stamped before `servicenow`"
    assert not older.belongs_to("sys1", {"acme.service-now.com"}, "mim-connector-test")


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://Acme.service-now.com/", "acme.service-now.com"),
        ("http://acme.service-now.com", "acme.service-now.com"),
        ("http://127.0.0.1:8090", "127.0.0.1:8090"),
    ],
)
def test_an_instance_is_named_by_its_host(url: str, name: str) -> None:
    assert servicenow_identity(url) == name


def test_appends_already_on_their_target_are_found_by_their_markers() -> None:
    entry = journal("j1", "Customer: card payments fail")
    linked = view(link=link(), issue=issue(), journal=(entry,))
    changes = plan(linked).changes
    out = next(c for c in changes if isinstance(c, CommentOnIssue))
    note = next(c for c in changes if isinstance(c, NoteOnIncident) and c.source_id == "link:ACME-1")
    landed_issue = issue(comments=(comment("c7", out.body, author="MIM", author_id="mim"),))
    landed_journal = (entry, journal("j2", note.text, element="work_notes"))

    assert already_landed(changes, landed_issue, landed_journal) == [
        Landed("out", "j1", out.marker, "c7"),
        Landed("in", "link:ACME-1", note.marker, note.marker),
    ]
    assert already_landed(changes, landed_issue, None) == [Landed("out", "j1", out.marker, "c7")], (
        "a partial journal proves nothing"
    )
    assert already_landed(changes, issue(), (entry,)) == []
    quoted = issue(comments=(comment("c8", f"{{quote}}{out.body}{{quote}}\nThanks, on it"),))
    assert already_landed(changes, quoted, (entry,)) == [], "a supplier's quote of ours is not ours landing"


def _moved(author_id: str) -> StatusChange:
    return StatusChange("10010", author_id, author_id, "In Progress", "Waiting for Customer", T0)


def test_a_rebuilt_shadow_lets_nothing_the_supplier_changed_be_fought() -> None:
    base = view(link=link())
    wanted = {name: text for name, (_api, text) in outbound_values(base).items()}
    current = issue(
        status="Waiting for Customer",
        **{
            **wanted,
            "summary": "[INC0010001] Their summary",
            "priority": "Low",
            "customfield_10062": "theirs",
        },
    )
    current = dataclasses.replace(
        current,
        status_change=_moved("jane"),
        field_authors={"summary": "jane", "customfield_10062": "jane"},
    )
    adopted = dataclasses.replace(base, issue=current, incident=incident(state="2", u_workaround="ours"))
    shadow = rebuilt_shadow(adopted)
    assert shadow["summary"] == wanted["summary"], "their edit: conflict noted, not fought"
    assert shadow["priority"] == "Low", "unchanged by them: ServiceNow's value is written"
    assert shadow[shared("customfield_10062")] == "ours", "their shared edit is the later word"
    assert shadow[STATE_DONE] == shadow[STATE_PENDING] == "2"

    decided = plan(dataclasses.replace(adopted, jira_shadow=shadow))
    assert not any(isinstance(c, MoveIssue) for c in decided.changes), "their status stands"
    (update,) = [c for c in decided.changes if isinstance(c, UpdateIssue)]
    assert "summary" not in update.fields and update.fields["priority"] == "Highest"
    assert any("summary was changed in Jira" in conflict for conflict in decided.conflicts)


def test_after_our_own_move_a_rebuilt_shadow_leaves_the_state_to_be_mirrored() -> None:
    current = dataclasses.replace(issue(status="Open"), status_change=_moved("mim"))
    shadow = rebuilt_shadow(view(link=link(), issue=current))
    assert STATE_DONE not in shadow and STATE_PENDING not in shadow
    assert STATE_DONE not in rebuilt_shadow(view(link=link(), issue=issue(status="Open")))
