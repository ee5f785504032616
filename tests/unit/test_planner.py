"""Mirroring decisions for one incident x supplier: pure, from views built by hand."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.config.supplier_file import SupplierMapping
from connector.core.models import StatusChange
from connector.core.plan import (
    Blocked,
    CommentOnIssue,
    CreateIssue,
    MoveIssue,
    NoteOnIncident,
    RecordShadow,
    RemoteLinkOnIssue,
    UpdateIncident,
    UpdateIssue,
)
from connector.core.shadows import held, pending, shared
from connector.core.vocabulary import CORE_INCIDENT_STATES
from connector.mirror.outbound import outbound_values
from connector.mirror.planner import plan
from connector.mirror.statuses import find_path
from connector.mirror.view import (
    LABELS_OURS,
    REMOTE_LINK,
    STATE_DONE,
    STATE_PENDING,
    STATUS_CHANGE,
    SUPPLIER_STATUS,
    EntityView,
)
from tests.factories import comment, incident, issue, journal, link, mapping

INC = incident(state="2", cmdb_ci_name="", major_incident_state="")


def view(**overrides: Any) -> EntityView:
    base = EntityView(
        incident=INC,
        supplier="acme",
        mapping=mapping("acme"),
        states=CORE_INCIDENT_STATES,
        routed=True,
        link=None,
        issue=None,
        journal=(),
        jira_shadow={},
        snow_shadow={},
        mirrored_out=frozenset(),
        mirrored_in=frozenset(),
        created_in_jira=frozenset(),
        account_id="mim",
        integration_user="svc.mim-connector",
        incident_url="https://sn.example/nav_to.do?uri=incident.do?sys_id=x",
    )
    return dataclasses.replace(base, **overrides)


def synced(**overrides: Any) -> EntityView:
    """A linked entity whose both sides match the shadows exactly: nothing to do."""
    base = view(**{k: v for k, v in overrides.items() if k == "incident"})
    texts = {name: text for name, (_api, text) in outbound_values(base).items()}
    labels = "mim-connector servicenow"
    fields = {**texts, "labels": labels, "u_supplier_reference": "ACME-1"}
    current = issue(status="In Progress", **fields)
    defaults = {
        "link": link(),
        "issue": current,
        "jira_shadow": {
            **texts,
            "labels": labels,
            LABELS_OURS: labels,
            STATE_DONE: base.incident.get("state"),
            REMOTE_LINK: f"servicenow:incident:{base.incident.sys_id}",
        },
        "snow_shadow": {
            SUPPLIER_STATUS: "In Progress",
            "u_supplier_reference": "ACME-1",
            "u_supplier_eta": "",
        },
        "mirrored_in": frozenset({"link:ACME-1"}),
        "incident": dataclasses.replace(
            base.incident,
            fields={
                **base.incident.fields,
                "correlation_display": "ACME-1",
                "u_supplier_reference": "ACME-1",
            },
        ),
    }
    defaults.update(overrides)
    return view(**defaults)


def test_routed_and_unlinked_creates_one_stamped_issue_with_rendered_fields() -> None:
    result = plan(view())
    create, back = result.changes
    assert isinstance(create, CreateIssue)
    assert isinstance(back, RemoteLinkOnIssue) and back.global_id == f"servicenow:incident:{INC.sys_id}"
    assert (create.project, create.issue_type) == ("ACME", "Incident")
    assert create.fields["summary"] == "[INC0010001] Checkout fails"
    assert create.fields["priority"] == "Highest"
    assert create.fields["customfield_10050"] == "INC0010001"
    assert create.fields["labels"] == ["mim-connector", "servicenow"]
    assert "https://sn.example/nav_to.do" in create.fields["description"]
    assert create.shadow[LABELS_OURS] == "mim-connector servicenow"


def test_not_routed_not_linked_does_nothing_and_says_why() -> None:
    result = plan(view(routed=False))
    assert result.changes == () and result.describe() == ["nothing to do (not routed to acme)"]


def test_a_synced_entity_plans_nothing() -> None:
    assert plan(synced()).changes == ()


def test_servicenow_change_updates_only_that_field() -> None:
    changed = dataclasses.replace(INC, fields={**INC.fields, "short_description": "Checkout down"})
    before = synced()
    result = plan(
        dataclasses.replace(
            before,
            incident=dataclasses.replace(
                before.incident, fields={**before.incident.fields, "short_description": "Checkout down"}
            ),
        )
    )
    noted, update = result.changes
    assert noted == RecordShadow(
        "jira",
        {pending("summary"): "[INC0010001] Checkout down"},
        "values about to be written, noted in case the answer is lost",
    )
    assert isinstance(update, UpdateIssue)
    assert update.fields == {"summary": "[INC0010001] Checkout down"}
    assert update.before == {"summary": "[INC0010001] Checkout fails"}
    assert update.after[pending("summary")] == "", "a write that was answered settles its note"
    assert changed.number in update.reason


def test_supplier_edit_of_a_servicenow_owned_field_is_a_conflict_not_a_write() -> None:
    base = synced()
    edited = dataclasses.replace(base.issue, fields={**base.issue.fields, "summary": "ACME says: slow"})  # type: ignore[arg-type]
    result = plan(dataclasses.replace(base, issue=edited))
    assert [type(c) for c in result.changes] == [RecordShadow]
    assert result.conflicts == ("ACME-1 summary was changed in Jira; ServiceNow owns it, left as is",)
    noted = dataclasses.replace(
        base, issue=edited, jira_shadow={**base.jira_shadow, "@conflict:summary": "ACME says: slow"}
    )
    assert plan(noted).conflicts == (), "a conflict is reported once"


def _summary_write_answer_lost(shown: str) -> EntityView:
    """Synced at "Checkout fails"; our write of "Checkout down" lost its answer; the issue shows ``shown``."""
    base = synced()
    shows = dataclasses.replace(base.issue, fields={**base.issue.fields, "summary": shown})  # type: ignore[arg-type]
    noted = {**base.jira_shadow, pending("summary"): "[INC0010001] Checkout down"}
    return dataclasses.replace(base, issue=shows, jira_shadow=noted)


def test_a_write_whose_answer_was_lost_is_ours_when_servicenow_changes_back() -> None:
    # ServiceNow went back to the synced value; the issue shows our landed write, not a supplier edit.
    result = plan(_summary_write_answer_lost("[INC0010001] Checkout down"))
    assert result.conflicts == ()
    noted, update, settled = result.changes
    assert noted == RecordShadow(
        "jira",
        {"summary": "[INC0010001] Checkout down", pending("summary"): "[INC0010001] Checkout fails"},
        "values about to be written, noted in case the answer is lost",
    )
    assert isinstance(update, UpdateIssue) and update.fields == {"summary": "[INC0010001] Checkout fails"}
    assert isinstance(settled, RecordShadow)


def test_a_lost_write_that_never_landed_leaves_nothing_to_do_and_a_supplier_edit_stays_a_conflict() -> None:
    assert plan(_summary_write_answer_lost("[INC0010001] Checkout fails")).changes == ()
    edited = plan(_summary_write_answer_lost("ACME says: slow"))
    assert edited.conflicts == ("ACME-1 summary was changed in Jira; ServiceNow owns it, left as is",)
    assert not [c for c in edited.changes if isinstance(c, UpdateIssue)]


def test_mim_label_added_while_the_suppliers_own_labels_stay() -> None:
    base = synced()
    accepted = dataclasses.replace(
        base.incident, fields={**base.incident.fields, "major_incident_state": "accepted"}
    )
    with_theirs = dataclasses.replace(
        base.issue, fields={**base.issue.fields, "labels": "mim-connector servicenow vip-customer"}
    )  # type: ignore[arg-type]
    (update,) = plan(dataclasses.replace(base, incident=accepted, issue=with_theirs)).changes
    assert isinstance(update, UpdateIssue)
    assert update.fields == {"labels": ["mim-accepted", "mim-connector", "servicenow", "vip-customer"]}
    assert update.after[LABELS_OURS] == "mim-accepted mim-connector servicenow"


def test_resolving_the_incident_walks_the_workflow_with_the_required_resolution() -> None:
    base = synced()
    resolved = dataclasses.replace(base.incident, fields={**base.incident.fields, "state": "6"})
    pending, move = plan(dataclasses.replace(base, incident=resolved)).changes
    assert pending == RecordShadow("jira", {STATE_PENDING: "6"}, "moving ACME-1 for incident state Resolved")
    assert isinstance(move, MoveIssue)
    assert [(h.name, h.to, dict(h.fields)) for h in move.hops] == [
        ("Resolve", "Resolved", {"resolution": "Done"})
    ]
    assert move.state_shadow == "6"


def test_closing_goes_through_resolved_but_never_through_a_terminal_status() -> None:
    workflow = mapping("acme").jira.workflow
    assert [h.to for h in find_path(workflow, "Open", "Closed") or []] == ["Resolved", "Closed"]
    assert find_path(workflow, "Closed", "In Progress") is None, "Closed is terminal: nothing leads out of it"
    assert [h.to for h in find_path(workflow, "Resolved", "Waiting for Customer") or []] == [
        "In Progress",
        "Waiting for Customer",
    ]


def test_no_path_is_a_clear_blocked_change() -> None:
    base = synced()
    workflow = base.mapping.jira.workflow
    no_reopen = workflow.model_copy(
        update={"transitions": tuple(t for t in workflow.transitions if t.name != "Reopen")}
    )
    stuck = base.mapping.model_copy(
        update={"jira": base.mapping.jira.model_copy(update={"workflow": no_reopen})}
    )
    resolved = dataclasses.replace(base.issue, status="Resolved")  # type: ignore[arg-type]
    on_hold = dataclasses.replace(base.incident, fields={**base.incident.fields, "state": "3"})
    (blocked,) = [
        c
        for c in plan(dataclasses.replace(base, mapping=stuck, issue=resolved, incident=on_hold)).changes
        if isinstance(c, Blocked)
    ]
    assert (
        blocked.reason
        == "ACME-1: no transition path from 'Resolved' to 'Waiting for Customer' avoids a terminal status"
    )


def test_public_comments_go_out_redacted_work_notes_and_our_own_entries_do_not() -> None:
    entries = (
        journal("j1", "Please call bob@example.com about the outage", "comments"),
        journal("j2", "internal: vendor is slow", "work_notes"),
        journal(
            "j3",
            "[ACME-1] Jane:\nworking on it\n[mim-connector ref:iabc]",
            "work_notes",
            created_by="svc.mim-connector",
        ),
        journal("j4", "already sent", "comments"),
    )
    result = plan(synced(journal=entries, mirrored_out=frozenset({"j4"})))
    (out,) = result.changes
    assert isinstance(out, CommentOnIssue) and out.source_id == "j1"
    assert out.body.startswith("alice (service desk) wrote:\nPlease call [e-mail removed] about the outage")
    assert out.body.endswith(f"[mim-connector ref:{out.marker}]")
    assert "internal" not in out.body


def test_supplier_comments_come_in_once_as_attributed_work_notes() -> None:
    base = synced()
    comments = (
        comment("c1", "Root cause found: disk full"),
        comment("c2", "our own mirror [mim-connector ref:o123]", author="MIM Connector", author_id="mim"),
        comment("c3", "already mirrored"),
    )
    current = dataclasses.replace(base.issue, comments=comments)  # type: ignore[arg-type]
    (note,) = plan(dataclasses.replace(base, issue=current, mirrored_in=base.mirrored_in | {"c3"})).changes
    assert isinstance(note, NoteOnIncident)
    assert (note.source_id, note.element) == ("c1", "work_notes")
    assert note.text.startswith(
        "[ACME-1] Jane Doe (ACME Cloud Hosting):\nRoot cause found: disk full\n[mim-connector ref:"
    )


def test_a_supplier_reply_quoting_our_comment_comes_in_and_only_our_own_comments_stay_out() -> None:
    base = synced()
    ours = "alice (service desk) wrote:\nIs the pool rebuilt?\n\n[mim-connector ref:o0123456789]"
    comments = (
        comment("c1", f"{{quote}}{ours}{{quote}}\nYes, rebuilt at 10:02"),
        comment("c2", f"Yes, rebuilt at 10:02\n\n{{quote}}{ours}{{quote}}"),
        comment("c3", f"Pasted for the record:\n\n{ours}"),
        comment("c4", ours, author="Old Service Account", author_id="old-mim"),
        comment("c5", "written by our account", author="MIM Connector", author_id="mim"),
    )
    current = dataclasses.replace(base.issue, comments=comments)  # type: ignore[arg-type]
    changes = plan(dataclasses.replace(base, issue=current, created_in_jira=frozenset({"c4"}))).changes
    assert [c.source_id for c in changes if isinstance(c, NoteOnIncident)] == ["c1", "c2", "c3"]
    assert all("rebuilt at 10:02" in c.text for c in changes[:2] if isinstance(c, NoteOnIncident))


def test_a_desk_comment_quoting_a_mirrored_supplier_note_goes_out() -> None:
    note = "[ACME-1] Jane Doe (ACME Cloud Hosting):\nRoot cause: disk full\n[mim-connector ref:i0123456789]"
    entries = (
        journal(
            "j1", f"Thanks ACME, closing the bridge.\n> {note.replace(chr(10), chr(10) + '> ')}", "comments"
        ),
        journal("j2", f"{note}\n\nAgreed with the above.", "comments"),
        journal("j3", f"Forwarding this:\n\n{note}", "comments"),
        journal("j4", note, "comments", created_by="SVC.MIM-Connector"),
    )
    changes = plan(synced(journal=entries)).changes
    assert [c.source_id for c in changes if isinstance(c, CommentOnIssue)] == ["j1", "j2", "j3"]


def test_code_tags_from_a_supplier_are_inert_in_every_journal_entry() -> None:
    base = synced()
    resolved = dataclasses.replace(
        base.issue,
        status="Resolved",
        fields={**base.issue.fields, "resolution": "Fixed"},
        comments=(
            comment("c1", "[code]<img src=x onerror=alert(1)>[/code]", author="[CODE]<b>Eve</b>[/code]"),
        ),
    )  # type: ignore[arg-type]
    moved = StatusChange(
        "902",
        "eve-1",
        "[code]<i>Mallory</i>[/code]",
        "In Progress",
        "Resolved",
        datetime(2026, 1, 1, tzinfo=UTC),
    )
    current = dataclasses.replace(resolved, status_change=moved)
    notes = [
        c for c in plan(dataclasses.replace(base, issue=current)).changes if isinstance(c, NoteOnIncident)
    ]
    assert len(notes) == 2
    for note in notes:
        assert "[code]" not in note.text.lower() and "[/code]" not in note.text.lower(), note.text
    assert "(code)<img src=x onerror=alert(1)>(/code)" in notes[-1].text
    assert "(code)<i>Mallory</i>(/code)" in notes[0].text


def test_supplier_resolution_sets_the_state_with_the_mandatory_fields_in_the_same_write_as_its_note() -> None:
    base = synced()
    resolved = dataclasses.replace(
        base.issue, status="Resolved", fields={**base.issue.fields, "resolution": "Fixed"}
    )  # type: ignore[arg-type]
    note, record, mirrored = plan(dataclasses.replace(base, issue=resolved)).changes
    assert isinstance(note, NoteOnIncident) and "moved the issue from In Progress to Resolved" in note.text
    assert note.fields == {
        "state": "6",
        "close_code": "Solution provided",
        "close_notes": "Resolved by ACME in ACME-1: Fixed",
    }
    assert record == RecordShadow("servicenow", {SUPPLIER_STATUS: "Resolved"}, "ACME-1 is now Resolved")
    assert mirrored == RecordShadow(
        "jira", {STATE_DONE: "6", STATE_PENDING: "6"}, "incident state Resolved comes from ACME-1's status"
    )


def test_the_desk_reopening_after_a_supplier_resolution_moves_the_issue_back() -> None:
    """The supplier resolved (the state came from their status), then the desk reopened."""
    taken = _issue_resolved(synced(), done="6", pending="6")
    move = next(c for c in plan(taken).changes if isinstance(c, MoveIssue))
    assert move.target == "In Progress" and move.state_shadow == "2"


def test_a_moves_state_change_rides_with_its_own_note_even_behind_another_note() -> None:
    """Else a lost answer to the other note would hide whether the state was written."""
    base = synced()
    resolved = dataclasses.replace(base.issue, status="Resolved")  # type: ignore[arg-type]
    first_sync = dataclasses.replace(base, issue=resolved, mirrored_in=frozenset())
    notes = [c for c in plan(first_sync).changes if isinstance(c, NoteOnIncident)]
    assert [n.source_id.split(":")[0] for n in notes] == ["link", "status"]
    assert "state" not in notes[0].fields and notes[1].fields["state"] == "6"


def test_a_supplier_status_never_reopens_a_closed_incident() -> None:
    base = synced()
    closed = dataclasses.replace(base.incident, fields={**base.incident.fields, "state": "7"})
    resolved = dataclasses.replace(base.issue, status="Resolved")  # type: ignore[arg-type]
    changes = plan(
        dataclasses.replace(
            base, incident=closed, issue=resolved, jira_shadow={**base.jira_shadow, STATE_DONE: "7"}
        )
    ).changes
    assert [type(c) for c in changes] == [NoteOnIncident, RecordShadow]
    note = changes[0]
    assert isinstance(note, NoteOnIncident) and note.fields == {}


def test_an_issue_closed_for_good_at_the_supplier_is_left_there() -> None:
    base = synced()
    closed = dataclasses.replace(base.issue, status="Closed")  # type: ignore[arg-type]
    reopened = dataclasses.replace(base.incident, fields={**base.incident.fields, "state": "3"})
    view_ = dataclasses.replace(
        base, issue=closed, incident=reopened, snow_shadow={**base.snow_shadow, SUPPLIER_STATUS: "Closed"}
    )
    changes = [c for c in plan(view_).changes if not isinstance(c, NoteOnIncident)]
    assert changes == [
        RecordShadow(
            "jira",
            {STATE_DONE: "3", STATE_PENDING: "3"},
            "ACME-1 is Closed (final) at acme: incident state On Hold not mirrored",
        )
    ]


def test_status_not_in_the_allow_list_only_notes() -> None:
    base = synced()
    waiting = dataclasses.replace(base.issue, status="Waiting for Customer")  # type: ignore[arg-type]
    note, record = plan(dataclasses.replace(base, issue=waiting)).changes
    assert isinstance(note, NoteOnIncident) and isinstance(record, RecordShadow)


def test_first_sight_of_the_supplier_status_is_not_a_change() -> None:
    base = synced(snow_shadow={"u_supplier_reference": "ACME-1", "u_supplier_eta": ""})
    (record,) = plan(base).changes
    assert record == RecordShadow(
        "servicenow", {SUPPLIER_STATUS: "In Progress"}, "first sight of ACME-1's status"
    )


def test_supplier_owned_fields_and_link_back_after_create_share_one_write() -> None:
    fresh = view(link=link(), issue=issue(status="Open"), jira_shadow={}, incident=INC)
    changes = plan(fresh).changes
    assert any(
        isinstance(c, RemoteLinkOnIssue) and c.global_id == f"servicenow:incident:{INC.sys_id}"
        for c in changes
    )
    (note,) = [c for c in changes if isinstance(c, NoteOnIncident)]
    assert note.fields == {"correlation_display": "ACME-1", "u_supplier_reference": "ACME-1"}
    assert note.text.startswith(
        "Mirrored to ACME Cloud Hosting as ACME-1: https://acme.example/browse/ACME-1"
    )
    assert not [c for c in changes if isinstance(c, UpdateIncident)], "folded into the note's PATCH"


@pytest.mark.parametrize("field", ["work_notes", "comments_and_work_notes", "caller_id"])
def test_fields_outside_the_allow_list_never_reach_the_supplier(field: str) -> None:
    leaky: SupplierMapping = mapping("acme").model_copy(
        update={
            "outbound": mapping("acme").outbound.model_copy(update={"summary": f"{{number}} {{{field}}}"})
        }
    )
    secret = dataclasses.replace(INC, fields={**INC.fields, field: "CANARY-internal"})
    create, _back = plan(view(mapping=leaky, incident=secret)).changes
    assert isinstance(create, CreateIssue)
    assert "CANARY" not in repr(create)


def _issue_resolved(base: EntityView, *, done: str, pending: str) -> EntityView:
    """``base`` with the issue Resolved (as last seen) and the given mirrored and pending states."""
    return dataclasses.replace(
        base,
        issue=dataclasses.replace(base.issue, status="Resolved"),  # type: ignore[arg-type]
        jira_shadow={**base.jira_shadow, STATE_DONE: done, STATE_PENDING: pending},
        snow_shadow={**base.snow_shadow, SUPPLIER_STATUS: "Resolved"},
    )


def _recorded(base: EntityView, changes: tuple[Any, ...]) -> EntityView:
    """``base`` with every shadow ``changes`` record applied, as the executor would leave it."""
    sides = {"jira": dict(base.jira_shadow), "servicenow": dict(base.snow_shadow)}
    for change in changes:
        if isinstance(change, RecordShadow):
            sides[change.side].update(change.values)
    return dataclasses.replace(base, jira_shadow=sides["jira"], snow_shadow=sides["servicenow"])


def _moved(base: EntityView, to: str, change_id: str, author_id: str, was: str = "In Progress") -> EntityView:
    change = StatusChange(change_id, author_id, "Jane Doe", was, to, datetime(2026, 1, 1, tzinfo=UTC))
    moved = dataclasses.replace(base.issue, status=to, status_change=change)  # type: ignore[arg-type]
    return dataclasses.replace(base, issue=moved)


def test_our_own_move_read_back_after_a_lost_answer_is_not_news() -> None:
    base = synced()
    (record,) = plan(_moved(base, "Resolved", "900", author_id="mim")).changes
    assert record == RecordShadow(
        "servicenow", {SUPPLIER_STATUS: "Resolved", STATUS_CHANGE: "900"}, "our move of ACME-1"
    )


def test_a_move_back_to_the_status_last_seen_is_recognised_by_its_changelog_entry() -> None:
    base = synced()
    base = dataclasses.replace(
        base, snow_shadow={**base.snow_shadow, SUPPLIER_STATUS: "Resolved", STATUS_CHANGE: "900"}
    )
    # We moved it to In Progress (entry 901, never seen), then the engineer resolved it again (902).
    changes = plan(_moved(base, "Resolved", "902", author_id="jane")).changes
    note = next(c for c in changes if isinstance(c, NoteOnIncident))
    assert note.source_id == "status:ACME-1:902:Resolved"
    assert "Jane Doe (ACME Cloud Hosting) moved the issue from In Progress to Resolved" in note.text
    assert note.fields.get("state") == "6" or any(
        isinstance(c, UpdateIncident) and c.fields.get("state") == "6" for c in changes
    )
    # The same entry read again (the issue updated since by a comment) is not a second move.
    seen = dataclasses.replace(base, snow_shadow={**base.snow_shadow, STATUS_CHANGE: "902"})
    later = _moved(seen, "Resolved", "902", author_id="jane")
    assert not plan(later).changes


def test_a_move_made_before_our_first_read_is_news() -> None:
    """Say the answer to our create was lost, and the engineer resolved the issue before we found it."""
    base = synced()
    unseen = dataclasses.replace(base, snow_shadow={"u_supplier_reference": "ACME-1", "u_supplier_eta": ""})
    changes = plan(_moved(unseen, "Resolved", "901", author_id="jane", was="Open")).changes
    note = next(c for c in changes if isinstance(c, NoteOnIncident))
    assert "moved the issue from Open to Resolved" in note.text
    assert note.fields.get("state") == "6"


def test_the_incident_state_waits_while_a_supplier_move_is_taken_in() -> None:
    base = synced()
    resolved = dataclasses.replace(base.incident, fields={**base.incident.fields, "state": "6"})
    waiting = _moved(dataclasses.replace(base, incident=resolved), "Waiting for Customer", "901", "jane")
    changes = plan(waiting).changes
    assert not [c for c in changes if isinstance(c, MoveIssue)], "the supplier's move is not undone"
    assert any(isinstance(c, NoteOnIncident) and "to Waiting for Customer" in c.text for c in changes)
    # Once taken in, the state is mirrored as usual.
    taken = dataclasses.replace(
        waiting,
        snow_shadow={**waiting.snow_shadow, SUPPLIER_STATUS: "Waiting for Customer", STATUS_CHANGE: "901"},
    )
    assert any(isinstance(c, MoveIssue) for c in plan(taken).changes)


def test_a_state_the_suppliers_move_already_shows_is_mirrored_and_not_reasserted_later() -> None:
    """The desk set On Hold; before we looked, the engineer moved the issue to Waiting for Customer
    (On Hold's status) and later on to In Progress: the state must not pull the issue back."""
    base = synced()
    on_hold = dataclasses.replace(base.incident, fields={**base.incident.fields, "state": "3"})
    first = _moved(dataclasses.replace(base, incident=on_hold), "Waiting for Customer", "901", "jane")
    changes = plan(first).changes
    assert not [c for c in changes if isinstance(c, MoveIssue)]
    recorded = {
        key: value
        for change in changes
        if isinstance(change, RecordShadow) and change.side == "jira"
        for key, value in change.values.items()
    }
    assert recorded.get(STATE_DONE) and recorded.get(STATE_DONE) == recorded.get(STATE_PENDING)
    taken = dataclasses.replace(
        first,
        jira_shadow={**first.jira_shadow, **recorded},
        snow_shadow={**first.snow_shadow, SUPPLIER_STATUS: "Waiting for Customer", STATUS_CHANGE: "901"},
    )
    later = _moved(taken, "In Progress", "902", "jane", was="Waiting for Customer")
    later = dataclasses.replace(
        later, snow_shadow={**later.snow_shadow, SUPPLIER_STATUS: "In Progress", STATUS_CHANGE: "902"}
    )
    assert not [c for c in plan(later).changes if isinstance(c, MoveIssue)], "their later move stands"


def test_a_supplier_move_after_our_move_whose_answer_was_lost_stands() -> None:
    """We moved the issue for On Hold (answer lost), then the engineer moved it on: theirs is later."""
    base = synced()
    on_hold = dataclasses.replace(base.incident, fields={**base.incident.fields, "state": "3"})
    sent = dataclasses.replace(base, incident=on_hold, jira_shadow={**base.jira_shadow, STATE_PENDING: "3"})
    changes = plan(_moved(sent, "Waiting for Customer", "902", "jane", was="On Hold")).changes
    assert not [c for c in changes if isinstance(c, MoveIssue)]
    assert (
        RecordShadow("jira", {STATE_DONE: "3", STATE_PENDING: "3"}, "ACME-1 was moved by the supplier since")
        in changes
    )


def test_a_state_back_to_the_last_mirrored_one_is_mirrored_again_after_a_lost_move() -> None:
    """In Progress mirrored; our move for Resolved lost its answer (it landed); the desk reopened."""
    reopened = _issue_resolved(synced(), done="2", pending="6")
    pending, move = plan(reopened).changes
    assert isinstance(move, MoveIssue) and move.target == "In Progress"
    assert pending == RecordShadow(
        "jira", {STATE_PENDING: "2"}, "moving ACME-1 for incident state In Progress"
    )


def test_a_noted_move_whose_state_the_desk_changed_since_is_not_applied_again() -> None:
    """The note and the state went in one write whose answer was lost; the desk reopened since."""
    base = synced()
    noted = dataclasses.replace(base, mirrored_in=base.mirrored_in | {"status:ACME-1:902:Resolved"})
    changes = plan(_moved(noted, "Resolved", "902", author_id="jane")).changes
    assert not [c for c in changes if isinstance(c, NoteOnIncident | UpdateIncident)]
    assert (
        RecordShadow(
            "servicenow", {SUPPLIER_STATUS: "Resolved", STATUS_CHANGE: "902"}, "ACME-1 is now Resolved"
        )
        in changes
    )
    # The state that write set counts as mirrored, so the desk's later state moves the issue.
    assert changes[-1] == RecordShadow(
        "jira", {STATE_DONE: "6", STATE_PENDING: "6"}, "incident state Resolved comes from ACME-1's status"
    )
    assert any(
        isinstance(c, MoveIssue)
        for c in plan(_recorded(_moved(noted, "Resolved", "902", "jane"), changes)).changes
    )


def test_shared_values_are_recorded_as_agreed_only_after_the_write_that_carries_them() -> None:
    base = synced()
    key = shared("customfield_10062")
    edited = dataclasses.replace(
        base.issue,
        fields={**base.issue.fields, "customfield_10062": "restart the pool"},
        comments=(comment("10100", "Engineer note"),),
    )  # type: ignore[arg-type]
    changes = plan(dataclasses.replace(base, issue=edited, jira_shadow={**base.jira_shadow, key: ""})).changes
    kinds = [(type(c).__name__, getattr(c, "values", {})) for c in changes]
    assert kinds[0] == ("RecordShadow", {pending(key): "in:restart the pool", held(key): ""})
    written = next(i for i, c in enumerate(changes) if isinstance(c, NoteOnIncident))
    agreed = next(i for i, c in enumerate(changes) if key in getattr(c, "values", {}))
    note = changes[written]
    assert isinstance(note, NoteOnIncident) and note.fields["u_workaround"] == "restart the pool"
    assert written < agreed


def test_an_old_mim_label_goes_even_when_its_write_was_never_recorded() -> None:
    base = synced()
    canceled = dataclasses.replace(
        base.incident, fields={**base.incident.fields, "major_incident_state": "canceled"}
    )
    # "mim-accepted" reached Jira, but the answer was lost: the shadow still says no MIM label.
    stale = dataclasses.replace(
        base.issue, fields={**base.issue.fields, "labels": "mim-accepted mim-connector servicenow vip"}
    )  # type: ignore[arg-type]
    (update,) = plan(dataclasses.replace(base, incident=canceled, issue=stale)).changes
    assert isinstance(update, UpdateIssue)
    assert update.fields == {"labels": ["mim-canceled", "mim-connector", "servicenow", "vip"]}


def test_a_resolution_after_a_reopen_unseen_is_news_to_an_issue_the_supplier_moved_since() -> None:
    """Resolved (mirrored), reopened and resolved again while this link lagged; the engineer had
    reopened the issue in between: the new resolution moves it, the old one would not."""
    base = synced()
    again = dataclasses.replace(
        base.incident, fields={**base.incident.fields, "state": "6", "reopen_count": "1"}
    )
    moved = dataclasses.replace(
        base,
        incident=again,
        issue=dataclasses.replace(base.issue, status="Waiting for Customer"),  # type: ignore[arg-type]
        jira_shadow={**base.jira_shadow, STATE_DONE: "6#0", STATE_PENDING: "6#0"},
        snow_shadow={**base.snow_shadow, SUPPLIER_STATUS: "Waiting for Customer"},
    )
    move = next(c for c in plan(moved).changes if isinstance(c, MoveIssue))
    assert (move.target, move.state_shadow) == ("Resolved", "6#1")
    # The same resolution already mirrored: the engineer's later move stands.
    mirrored = dataclasses.replace(
        moved, jira_shadow={**moved.jira_shadow, STATE_DONE: "6#1", STATE_PENDING: "6#1"}
    )
    assert not [c for c in plan(mirrored).changes if isinstance(c, MoveIssue)]
    # A state recorded bare (from the supplier's own status) stands for any reopen of it.
    bare = dataclasses.replace(moved, jira_shadow={**moved.jira_shadow, STATE_DONE: "6", STATE_PENDING: "6"})
    assert not [c for c in plan(bare).changes if isinstance(c, MoveIssue)]
