"""Problem management decisions: links, root cause write-back, problem creation. Pure."""

from __future__ import annotations

from typing import Any

from connector.core.models import LinkedIssue
from connector.core.plan import CommentOnIssue, CreateProblem, RemoteLinkOnIssue, UpdateProblem
from connector.mirror.problem import plan_problem, problem_stamp, root_cause_of
from connector.mirror.view import CAUSE_NOTES, PROBLEM_LINK, ROOT_CAUSE, EntityView
from tests.factories import incident, issue, link, mapping
from tests.unit.test_planner import view

PRB = "prb00000000000000000000000000001"


def linked(supplier: str = "acme", snow_shadow: dict[str, str] | None = None, **fields: str) -> EntityView:
    issue_fields = {k: v for k, v in fields.items() if k.startswith("customfield_")}
    incident_fields = {k: v for k, v in fields.items() if not k.startswith("customfield_")}
    values: dict[str, Any] = {
        "supplier": supplier,
        "mapping": mapping(supplier),
        "incident": incident(**incident_fields),
        "link": link(supplier=supplier),
        "issue": issue(**issue_fields),
        "snow_shadow": snow_shadow or {},
        "instance_url": "https://sn.example",
    }
    return view(**values)


def test_a_problem_gets_a_remote_link_and_one_comment_then_nothing() -> None:
    first = plan_problem(linked(problem_id=PRB, **{"problem_id.number": "PRB0040001"}))
    assert [type(c) for c in first] == [RemoteLinkOnIssue, CommentOnIssue]
    remote, comment = first
    assert isinstance(remote, RemoteLinkOnIssue) and isinstance(comment, CommentOnIssue)
    assert (remote.global_id, remote.shadow_key) == (f"servicenow:problem:{PRB}", PROBLEM_LINK)
    assert remote.url == f"https://sn.example/nav_to.do?uri=problem.do?sys_id={PRB}"
    assert "problem PRB0040001" in comment.body and comment.source_id == f"problem:{PRB}"
    done = linked(problem_id=PRB)
    done = view(
        **{
            **done.__dict__,
            "jira_shadow": {PROBLEM_LINK: remote.global_id},
            "mirrored_out": frozenset({comment.source_id}),
        }
    )
    assert plan_problem(done) == []


def test_a_root_cause_without_a_problem_opens_one_stamped_for_the_incident() -> None:
    (change,) = plan_problem(linked(customfield_10070="Expired certificate"))
    assert isinstance(change, CreateProblem)
    assert change.stamp == problem_stamp(incident().sys_id) == change.fields["correlation_id"]
    assert change.fields["cause_notes"] == "[ACME-1] ACME Cloud Hosting root cause:\nExpired certificate"
    assert change.fields["first_reported_by_task"] == incident().sys_id
    assert set(change.shadow) == {ROOT_CAUSE, CAUSE_NOTES}
    assert "{problem}" in change.note


def test_a_root_cause_fills_free_cause_notes_else_becomes_a_work_note_once() -> None:
    (free,) = [
        c
        for c in plan_problem(linked(customfield_10070="Disk full", problem_id=PRB))
        if isinstance(c, UpdateProblem)
    ]
    assert isinstance(free, UpdateProblem) and free.fields == {
        "cause_notes": "[ACME-1] ACME Cloud Hosting root cause:\nDisk full"
    }
    taken = linked(
        customfield_10070="Disk full", problem_id=PRB, **{"problem_id.cause_notes": "Analysis by PM"}
    )
    (note,) = [c for c in plan_problem(taken) if isinstance(c, UpdateProblem)]
    assert note.fields == {} and note.note.startswith("[ACME-1] ACME Cloud Hosting root cause:\nDisk full")
    assert note.source_id.startswith(f"problem:{PRB}:rc:") and len(note.source_id) <= 64
    ours = linked(
        customfield_10070="Disk full again",
        problem_id=PRB,
        snow_shadow={CAUSE_NOTES: free.shadow[CAUSE_NOTES], ROOT_CAUSE: free.shadow[ROOT_CAUSE]},
        **{"problem_id.cause_notes": free.fields["cause_notes"]},
    )
    (rewrite,) = [c for c in plan_problem(ours) if isinstance(c, UpdateProblem)]
    assert rewrite.fields["cause_notes"].endswith("Disk full again"), (
        "our own earlier text is ours to replace"
    )
    settled = linked(
        customfield_10070="Disk full", problem_id=PRB, snow_shadow={ROOT_CAUSE: free.shadow[ROOT_CAUSE]}
    )
    assert [c for c in plan_problem(settled) if isinstance(c, UpdateProblem)] == []


def test_a_root_cause_can_be_a_linked_issue_of_the_configured_kind() -> None:
    links = (
        LinkedIssue("Problem/Incident", "is caused by", "NET-3", "Fibre cut at FRA-2", "Done"),
        LinkedIssue("Relates", "relates to", "NET-9", "Unrelated", "Open"),
    )
    base = linked("globex", problem_id=PRB)
    current = issue("NET-1")
    with_links = view(**{**base.__dict__, "issue": type(current)(**{**current.__dict__, "links": links})})
    assert root_cause_of(with_links) == "NET-3: Fibre cut at FRA-2 (Done)"
    (note,) = [c for c in plan_problem(with_links) if isinstance(c, UpdateProblem)]
    assert note.note.startswith("[NET-1] Globex Networks root cause:\nNET-3: Fibre cut at FRA-2 (Done)")


def test_without_a_problem_and_without_create_the_root_cause_waits() -> None:
    assert plan_problem(linked("initech")) == []
    assert [c for c in plan_problem(linked("globex")) if isinstance(c, CreateProblem)] == []


def test_a_resolved_major_incident_opens_its_rca_problem_when_the_mapping_says_so() -> None:
    resolved = linked("globex", state="6", major_incident_state="accepted")
    (change,) = plan_problem(resolved)
    assert isinstance(change, CreateProblem) and "cause_notes" not in change.fields
    assert plan_problem(linked("globex", state="6", major_incident_state="")) == []
    assert plan_problem(linked("globex", state="2", major_incident_state="accepted")) == []
