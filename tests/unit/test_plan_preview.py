"""What ``sync --dry-run`` shows of a plan: each change, its reason and the values it would write."""

from __future__ import annotations

from connector.core.plan import (
    Blocked,
    CommentOnIssue,
    CreateIssue,
    Hop,
    MoveIssue,
    NoteOnIncident,
    Plan,
    RecordShadow,
    RemoteLinkOnIssue,
    UpdateIncident,
    UpdateIssue,
)
from tests.factories import incident, issue

LONG = "Customers cannot pay. " * 10


def test_a_plan_reads_like_terraform_plan_with_old_and_new_values() -> None:
    plan = Plan(
        "e:acme",
        (
            RecordShadow("jira", {"@pending:summary": "x"}, "values about to be written"),
            UpdateIssue(
                {"summary": "[INC0010001] Checkout down"},
                {"summary": "[INC0010001] Checkout fails"},
                {"summary": "[INC0010001] Checkout down"},
                "ServiceNow changed summary of INC0010001",
            ),
            MoveIssue(
                (Hop("Start Progress", "In Progress"), Hop("Resolve", "Resolved", {"resolution": "Done"})),
                "Resolved",
                "6",
                "incident INC0010001 is Resolved",
            ),
            CommentOnIssue("j1", f"alice wrote:\n{LONG}", "o1", "comments j1 of INC0010001"),
            UpdateIncident({"u_supplier_reference": "ACME-1"}, {}, "record the supplier issue"),
            NoteOnIncident(
                "c1", "work_notes", "[ACME-1] Jane: on it", "i1", "comment c1 on ACME-1", {"state": "2"}
            ),
            Blocked("ACME-1: no transition path from 'Closed' to 'In Progress'"),
        ),
        conflicts=("u_workaround: edited on both sides",),
    )
    current = incident(u_supplier_reference="", state="1")
    assert plan.describe(current, issue(status="Open")) == [
        "~ update issue ACME-1",
        "    # ServiceNow changed summary of INC0010001",
        '    summary: "[INC0010001] Checkout fails" → "[INC0010001] Checkout down"',
        "~ move issue ACME-1: Open → In Progress → Resolved (transitions Start Progress, Resolve)",
        "    # incident INC0010001 is Resolved",
        '    Resolve.resolution: "Done"',
        "+ comment on issue ACME-1",
        "    # comments j1 of INC0010001",
        '    text: "alice wrote:\\nCustomers cannot pay. Customers cannot pay. Customers cannot pay. '
        'Customers cannot pay. Customers cannot pay. Customers cannot pay. Customers canno"… '
        "(+73 characters)",
        "~ update incident INC0010001",
        "    # record the supplier issue",
        '    u_supplier_reference: "" → "ACME-1"',
        "+ work note on incident INC0010001",
        "    # comment c1 on ACME-1",
        '    text:  "[ACME-1] Jane: on it"',
        '    state: "1" → "2"',
        "! blocked",
        "    # ACME-1: no transition path from 'Closed' to 'In Progress'",
        "! conflict: u_workaround: edited on both sides",
    ]


def test_a_create_shows_the_fields_it_sends_and_the_link_back() -> None:
    plan = Plan(
        "e:acme",
        (
            CreateIssue(
                "ACME",
                "Incident",
                {"summary": "[INC0010001] Checkout fails", "labels": ["servicenow"]},
                {"summary": "[INC0010001] Checkout fails", "customfield_10081": "", "labels": "servicenow"},
                "INC0010001 is routed to ACME Cloud Hosting and has no issue there yet",
            ),
            RemoteLinkOnIssue(
                "servicenow:incident:1", "https://sn.example/x", "ServiceNow INC0010001", "link back"
            ),
        ),
    )
    assert plan.describe(incident()) == [
        "+ create issue in ACME (Incident)",
        "    # INC0010001 is routed to ACME Cloud Hosting and has no issue there yet",
        '    summary: "[INC0010001] Checkout fails"',
        '    labels:  "servicenow"',
        "+ remote link on issue (the new issue)",
        "    # link back",
        '    title: "ServiceNow INC0010001"',
        '    url:   "https://sn.example/x"',
    ]
    data = plan.preview(incident()).as_json()
    assert data["changes"][0]["values"][0] == {
        "name": "summary",
        "new": "[INC0010001] Checkout fails",
        "old": None,
    }


def test_an_empty_plan_says_why() -> None:
    assert Plan("e:acme", notes=("not routed to acme",)).describe() == ["nothing to do (not routed to acme)"]
    remembered = Plan("e:acme", (RecordShadow("jira", {"summary": "x"}, "already equal in Jira"),))
    assert remembered.describe() == ["nothing to do (in sync)"]
    assert remembered.preview().as_json()["changes"][0]["symbol"] == "="
