"""The summary's counts over the store: the major incidents, their rule, children and issue keys."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.store import Store
from connector.store.stats import MajorIncident, major_incidents


def remember(store: Store, sys_id: str, number: str, **fields: str) -> None:
    snapshot = {"number": number, "short_description": f"{number} is down", **fields}
    store.incidents.remember(sys_id, number, 1, datetime(2026, 11, 22, 10, tzinfo=UTC), snapshot)


def link(store: Store, sys_id: str, supplier: str, jira_key: str) -> None:
    claimed, _new = store.links.claim(sys_id, supplier, f"{sys_id}@test")
    store.links.confirm(claimed.link_id, f"id-{jira_key}", jira_key, f"https://jira/browse/{jira_key}")


def decide(store: Store, sys_id: str, rule: str, action: str, state: str, parent: str | None = None) -> None:
    record = store.decisions.record(sys_id, rule, action, "promote-in-place", "pending", {})
    store.decisions.settle(record.decision_id, state, parent)


def test_major_incidents_with_their_rule_children_and_every_issue_key(store: Store) -> None:
    remember(store, "cluster-head", "INC0000116", major_incident_state="accepted")
    for child in ("INC0000125", "INC0000132"):
        remember(store, f"sys-{child}", child, parent_incident="cluster-head")
        store.audit.record(
            "servicenow", "link_child", child, reason="x", after={"parent_incident": "cluster-head"}
        )
    # Linked by the rules, unlinked by the desk since: no longer a child of the major incident.
    remember(store, "sys-INC0000140", "INC0000140", parent_incident="")
    store.audit.record(
        "servicenow", "link_child", "INC0000140", reason="x", after={"parent_incident": "cluster-head"}
    )
    link(store, "sys-INC0000140", "acme", "ACME-7")
    link(store, "cluster-head", "acme", "ACME-2")
    link(store, "sys-INC0000132", "initech", "PAY-9")
    decide(store, "cluster-head", "ci-cluster", "propose", "proposed")
    store.decisions.implicate("cluster-head", "sys-INC0000132", ["initech"])  # not a decision of a rule

    remember(store, "payments", "INC0000517", major_incident_state="accepted")
    link(store, "payments", "initech", "PAY-2")
    link(store, "payments", "globex", "NET-1")
    decide(store, "payments", "payments-outage", "promote", "promoted")

    decide(store, "capped-one", "critical-ci-p1", "propose", "capped")
    decide(store, "failed-one", "critical-ci-p1", "propose", "failed")
    # create-parent: the decision is the child's, the major incident the parent the rule created
    remember(store, "web-child", "INC0000433")
    decide(store, "web-child", "critical-ci-p1", "promote", "promoted", parent="new-parent")
    store.audit.record(
        "servicenow", "link_child", "INC0000433", reason="x", after={"parent_incident": "new-parent"}
    )
    store.audit.record(
        "servicenow",
        "link_child",
        "INC0000999",
        reason="x",
        after={"parent_incident": "new-parent"},
        outcome="failed",
    )

    found = major_incidents(store.engine)
    assert found.total == 3
    assert found.listed == (
        MajorIncident(
            "cluster-head",
            "INC0000116",
            "INC0000116 is down",
            "ci-cluster",
            "proposed",
            "accepted",
            ("INC0000125", "INC0000132"),
            (("acme", "ACME-2"),),
            (("INC0000132", "initech", "PAY-9"),),
        ),
        MajorIncident(
            "payments",
            "INC0000517",
            "INC0000517 is down",
            "payments-outage",
            "promoted",
            "accepted",
            (),
            (("globex", "NET-1"), ("initech", "PAY-2")),
            (),
        ),
        MajorIncident(
            "new-parent", "new-parent", "", "critical-ci-p1", "promoted", "", ("INC0000433",), (), ()
        ),
    )
    newest = major_incidents(store.engine, limit=1)
    assert (newest.total, [m.sys_id for m in newest.listed]) == (3, ["new-parent"])
