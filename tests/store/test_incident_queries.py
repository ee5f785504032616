"""The read-only queries behind ``state show`` (one incident, and the totals), on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.commands.state import incident_state
from connector.mirror.view import SUPPLIER_STATUS
from connector.store import Store

SYS_ID = "a" * 32
OTHER = "a" * 31 + "b"


def test_one_incident_gathers_its_links_intents_letters_and_decisions_only(store: Store) -> None:
    store.incidents.remember(
        SYS_ID, "INC0010001", 3, datetime(2026, 11, 22, 10, tzinfo=UTC), {"priority": "1"}
    )
    store.incidents.remember(OTHER, "INC0010002", 1, datetime(2026, 11, 22, 10, tzinfo=UTC), {})
    acme, _ = store.links.claim(SYS_ID, "acme", "stamp-1")
    acme = store.links.confirm(acme.link_id, "10001", "ACME-1", "https://acme.example/browse/ACME-1")
    store.shadows.put(acme.link_id, "servicenow", {SUPPLIER_STATUS: "In Progress"})
    store.links.claim(SYS_ID, "globex", "stamp-2")
    store.links.claim(OTHER, "acme", "stamp-3")
    open_intent = store.intents.begin(f"{SYS_ID}:globex", "create_issue", "jira/NET", "stamp-2", {})
    done = store.intents.begin(f"{SYS_ID}:acme", "create_issue", "jira/ACME", "stamp-1", {})
    store.intents.finish(done.intent_id, "done")
    store.intents.begin(f"{OTHER}:acme", "create_issue", "jira/ACME", "stamp-3", {})
    store.dlq.fail(f"{SYS_ID}:globex", "InvalidRequest", "400")
    store.dlq.fail(f"{OTHER}:acme", "InvalidRequest", "400")
    store.decisions.record(SYS_ID, "critical-ci-p1", "propose", "promote-in-place", "proposed", {})
    store.decisions.record(OTHER, "critical-ci-p1", "propose", "promote-in-place", "proposed", {})

    found = incident_state(store, "INC0010001")
    assert found is not None and incident_state(store, SYS_ID) == found
    assert [(s.link.supplier, s.link.state, s.link.jira_key) for s in found.suppliers] == [
        ("acme", "linked", "ACME-1"),
        ("globex", "creating", None),
    ]
    status = found.suppliers[0].supplier_status
    assert status is not None and status[0] == "In Progress"
    assert found.suppliers[0].last_sync >= acme.updated_at
    assert [i.intent_id for i in found.open_intents] == [open_intent.intent_id]
    assert [letter.entity for letter in found.dead_letters] == [f"{SYS_ID}:globex"]
    assert [d.rule for d in found.decisions] == ["critical-ci-p1"]
    assert found.totals()["linked"] == ["acme"] and found.totals()["not_created"] == ["globex"]
    assert incident_state(store, "INC0019999") is None
    assert store.links.counts() == {"acme": {"linked": 1, "creating": 1}, "globex": {"creating": 1}}
