"""The executor's write protocol over in-memory fakes: intent, send, outcome, and settling what was left open.

The executor is built as the engine builds it for a supplier; plans are written out by hand (the
planner has its own tests), so each test states exactly which write meets which fault.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.core.errors import ConcurrentChange, RateLimited, Unavailable, UncertainOutcome
from connector.core.links import Link, entity_key
from connector.core.markers import stamp_line
from connector.core.models import Incident, servicenow_identity
from connector.core.plan import CommentOnIssue, CreateIssue, Hop, MoveIssue, NoteOnIncident, Plan, UpdateIssue
from connector.core.secrets import interpolate
from connector.store import Store
from connector.sync.executor import Executor
from connector.sync.supplier import Supplier
from tests.fakes import CRASH, LOST_ANSWER, OUTAGE, Crash, concurrent, rate_limited
from tests.unit.sync.conftest import World

SUMMARY = "[INC0010001] Checkout fails"
CREATE = CreateIssue("ACME", "Incident", {"summary": SUMMARY}, {"summary": SUMMARY}, "routed to ACME")


def executor(world: World, store: Store) -> Executor:
    """The acme executor, made as :class:`connector.sync.engine.Engine` makes it."""
    loaded = world.loaded
    polling = loaded.connector.polling
    site = loaded.connector.suppliers["acme"].jira
    supplier = Supplier(
        "acme", world.acme, site.url, loaded.suppliers["acme"].jira.project, polling.search_lag
    )
    servicenow = servicenow_identity(interpolate(loaded.connector.servicenow.instance_url))
    return Executor(
        store, world.snow, supplier, loaded.connector.instance_name, servicenow, known_as={servicenow}
    )


def plan(incident: Incident, *changes: object) -> Plan:
    return Plan(entity_key(incident.sys_id, "acme"), tuple(changes))  # type: ignore[arg-type]


def linked(world: World, acting: Executor, incident: Incident) -> Link:
    link, _ = acting.apply(plan(incident, CREATE), incident, None)
    assert link is not None and link.state == "linked"
    return link


def comment(text: str, ref: str = "o0000000001") -> CommentOnIssue:
    return CommentOnIssue("journal-1", f"{text}\n\n{stamp_line(ref)}", ref, "a public comment")


@pytest.fixture
def store(world: World) -> Store:
    return world.open_store()


@pytest.fixture
def incident(world: World) -> Incident:
    return world.incident_for_acme()


def test_a_create_whose_answer_was_lost_is_confirmed_by_its_stamp(
    world: World, store: Store, incident: Incident
) -> None:
    acting = executor(world, store)
    world.acme.faults.next("create_issue", LOST_ANSWER)
    with pytest.raises(UncertainOutcome):
        acting.apply(plan(incident, CREATE), incident, None)
    link = store.links.get(incident.sys_id, "acme")
    assert link is not None and link.state == "creating"
    assert [i.state for i in store.intents.unfinished()] == ["uncertain"]

    settled = acting.reconcile(incident, link, world.clock())

    (issue,) = world.acme.issues_of()
    assert settled is not None and (settled.state, settled.jira_key) == ("linked", issue.key)
    assert world.acme.calls.count("created_by_me_since") == 1, "one search page, not a read per issue"
    assert world.acme.writes() == ["create_issue"]
    assert store.intents.unfinished() == []


def test_a_create_cut_short_by_a_crash_is_confirmed_by_the_next_process(
    world: World, incident: Incident
) -> None:
    first = world.open_store()
    world.acme.faults.next("create_issue", CRASH)
    with pytest.raises(Crash):
        executor(world, first).apply(plan(incident, CREATE), incident, None)
    first.close()

    store = world.open_store()  # a restart: a new store handle and a new executor
    (pending,) = store.intents.unfinished()
    assert (pending.operation, pending.state) == ("create_issue", "pending")
    link = store.links.get(incident.sys_id, "acme")
    settled = executor(world, store).reconcile(incident, link, world.clock())

    (issue,) = world.acme.issues_of()
    assert settled is not None and (settled.state, settled.jira_key) == ("linked", issue.key)
    assert world.acme.writes() == ["create_issue"]


def test_a_lost_create_search_cannot_see_waits_for_the_search_lag_then_is_given_up(
    world: World, store: Store, incident: Incident
) -> None:
    acting = executor(world, store)
    world.acme.index_live = False
    world.acme.faults.next("create_issue", LOST_ANSWER)
    with pytest.raises(UncertainOutcome):
        acting.apply(plan(incident, CREATE), incident, None)
    link = store.links.get(incident.sys_id, "acme")
    assert link is not None

    with pytest.raises(UncertainOutcome, match="search may lag"):
        acting.reconcile(incident, link, world.clock())
    assert store.intents.unfinished(), "kept open while search may lag"

    later = world.clock() + world.loaded.connector.polling.search_lag + timedelta(minutes=1)
    after = acting.reconcile(incident, link, later)
    assert after is not None and after.state == "creating"
    assert store.intents.unfinished() == [], "given up: the create may be sent again"


def test_a_comment_whose_answer_was_lost_is_settled_by_its_marker_and_never_sent_twice(
    world: World, store: Store, incident: Incident
) -> None:
    acting = executor(world, store)
    link = linked(world, acting, incident)
    world.acme.faults.next("add_comment", LOST_ANSWER)
    with pytest.raises(UncertainOutcome):
        acting.apply(plan(incident, comment("Customer: card payments fail")), incident, link)
    assert [e.state for e in store.comments.unfinished(link.link_id)] == ["uncertain"]

    acting.reconcile(incident, link, world.clock())
    assert store.comments.unfinished(link.link_id) == []
    acting.apply(plan(incident, comment("Customer: card payments fail")), incident, link)

    (issue,) = world.acme.issues_of()
    assert len(issue.comments) == 1
    assert world.acme.writes().count("add_comment") == 1


def test_a_comment_refused_by_an_outage_is_sent_again_exactly_once(
    world: World, store: Store, incident: Incident
) -> None:
    acting = executor(world, store)
    link = linked(world, acting, incident)
    world.acme.faults.next("add_comment", OUTAGE)
    with pytest.raises(Unavailable):
        acting.apply(plan(incident, comment("Customer: card payments fail")), incident, link)
    assert store.comments.unfinished(link.link_id) == [], "not applied: nothing to settle"
    assert store.intents.counts().get("failed") == 1

    acting.apply(plan(incident, comment("Customer: card payments fail")), incident, link)
    (issue,) = world.acme.issues_of()
    assert len(issue.comments) == 1


def test_a_work_note_whose_answer_was_lost_is_found_in_the_journal(
    world: World, store: Store, incident: Incident
) -> None:
    acting = executor(world, store)
    link = linked(world, acting, incident)
    note = NoteOnIncident(
        "10001",
        "work_notes",
        f"[ACME-1] Jane Doe:\nDisk full\n{stamp_line('i0000000001')}",
        "i0000000001",
        "a supplier comment",
    )
    world.snow.faults.next("update_incident", LOST_ANSWER)
    with pytest.raises(UncertainOutcome):
        acting.apply(plan(incident, note), incident, link)
    acting.reconcile(incident, link, world.clock())
    acting.apply(plan(incident, note), incident, link)
    assert sum("Disk full" in text for text in world.snow.journal_values(incident.sys_id)) == 1
    assert world.snow.writes().count("update_incident") == 1


def test_a_throttled_update_is_classified_not_applied_and_leaves_the_shadow(
    world: World, store: Store, incident: Incident
) -> None:
    acting = executor(world, store)
    link = linked(world, acting, incident)
    update = UpdateIssue({"summary": "Down"}, {"summary": SUMMARY}, {"summary": "Down"}, "summary changed")
    world.acme.faults.next("update_issue", rate_limited(7.0))
    with pytest.raises(RateLimited) as raised:
        acting.apply(plan(incident, update), incident, link)
    assert raised.value.retry_after == 7.0
    assert world.acme.issues_of()[0].values["summary"] == SUMMARY
    assert store.shadows.get(link.link_id, "jira")["summary"] == SUMMARY
    assert store.intents.unfinished() == [] and store.intents.counts().get("failed") == 1


RESOLVE = MoveIssue(
    (Hop("Resolve", "Resolved", {"resolution": "Done"}),), "Resolved", "6", "resolved by the desk"
)


def test_a_move_the_supplier_made_first_is_done(world: World, store: Store, incident: Incident) -> None:
    acting = executor(world, store)
    link = linked(world, acting, incident)
    key = link.jira_key or ""
    world.acme.faults.next("transition", concurrent(lambda: world.acme.agent_move(key, "Resolved")))
    acting.apply(plan(incident, RESOLVE), incident, link)
    assert world.acme.issues[key].status == "Resolved"
    assert [h.author_id for h in world.acme.issues[key].history] == ["jdoe"], "only the supplier moved it"


def test_a_move_the_supplier_overtook_elsewhere_is_a_concurrent_change(
    world: World, store: Store, incident: Incident
) -> None:
    acting = executor(world, store)
    link = linked(world, acting, incident)
    key = link.jira_key or ""
    move = MoveIssue(
        (Hop("Wait for Customer", "Waiting for Customer"),), "Waiting for Customer", "3", "on hold"
    )
    # Read in Open; resolved by the supplier before our move: Wait for Customer is not offered from there.
    world.acme.faults.next("transitions", concurrent(lambda: world.acme.agent_move(key, "Resolved")))
    with pytest.raises(ConcurrentChange):
        acting.apply(plan(incident, move), incident, link)
    assert world.acme.issues[key].status == "Resolved"


def test_a_desk_edit_racing_our_patch_keeps_the_incident_version_unprocessed(
    world: World, store: Store, incident: Incident
) -> None:
    """Only our own +1 on ``sys_mod_count`` lets the engine skip re-reading its echo."""
    acting = executor(world, store)
    link = linked(world, acting, incident)
    note = NoteOnIncident("n1", "work_notes", f"note\n{stamp_line('i0000000002')}", "i0000000002", "a note")
    _, alone = acting.apply(plan(incident, note), incident, link)
    assert alone.mod_count == incident.mod_count + 1

    current = world.snow.incident(incident.sys_id, []) or incident
    racing = NoteOnIncident(
        "n2", "work_notes", f"again\n{stamp_line('i0000000003')}", "i0000000003", "a note"
    )
    world.snow.faults.next(
        "update_incident",
        concurrent(lambda: world.snow.desk_update(incident.sys_id, short_description="Down")),
    )
    _, after = acting.apply(plan(current, racing), current, link)
    assert after.mod_count == current.mod_count, "someone else wrote: that version must still be processed"
