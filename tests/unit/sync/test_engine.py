"""The engine's cycle over in-memory fakes: crashes, lost answers, held entities, races, sweeps, throttling.

Each test is the in-memory twin of an end-to-end scenario (tests/integration/test_faults.py,
test_lost_create.py, test_sync.py): the same logic, proved without HTTP, threads or sleeping.
"""

from __future__ import annotations

import pytest

from connector.core.models import Incident
from connector.sync.cycle import CycleReport
from tests.fakes import CRASH, LOST_ANSWER, OUTAGE, REFUSED, Crash, FakeJira, Fault, concurrent, rate_limited
from tests.fakes.jira import FakeIssue
from tests.unit.sync.conftest import World, converge

PUBLIC = "Customer: card payments fail"
LINK_NOTE = "Mirrored to ACME Cloud Hosting as"


def entity(sys_id: str, supplier: str = "acme") -> str:
    return f"{sys_id}:{supplier}"


def comment_count(site: FakeJira, text: str) -> int:
    return sum(text in comment.body for issue in site.issues_of() for comment in issue.comments)


def link_notes(world: World, sys_id: str) -> list[str]:
    return [note for note in world.snow.journal_values(sys_id, "work_notes") if note.startswith(LINK_NOTE)]


def changes_by(site: FakeJira, key: str, field_id: str, author: str) -> list[tuple[str, str]]:
    """(from, to) of every changelog item of ``field_id`` made by ``author`` on ``key``."""
    issue = site.issues[key]
    return [
        (old, new) for h in issue.history if h.author_id == author for f, old, new in h.items if f == field_id
    ]


def test_a_routed_incident_is_mirrored_once_and_idle_cycles_write_nothing(world: World) -> None:
    incident = world.incident_for_acme(comments=PUBLIC)
    engine = world.start()
    engine.cycle()
    (issue,) = world.acme.issues_of()
    assert issue.values["summary"] == f"[{incident.number}] Checkout fails for all customers"
    assert issue.stamp is not None and issue.stamp.incident_sys_id == incident.sys_id
    assert list(issue.remote_links) == [f"servicenow:incident:{incident.sys_id}"]
    assert comment_count(world.acme, PUBLIC) == 1
    assert len(link_notes(world, incident.sys_id)) == 1
    converge(engine)
    jira_writes, snow_writes = len(world.acme.writes()), len(world.snow.writes())
    for _ in range(5):
        world.clock.advance(seconds=30)
        engine.cycle(sweep=False)
    assert (len(world.acme.writes()), len(world.snow.writes())) == (jira_writes, snow_writes)


@pytest.mark.parametrize(
    ("system", "operation"),
    [
        ("jira", "create_issue"),
        ("jira", "upsert_remote_link"),
        ("jira", "add_comment"),
        ("servicenow", "update_incident"),
    ],
)
def test_a_crash_between_send_and_outcome_is_reconciled_after_restart(
    world: World, system: str, operation: str
) -> None:
    """The write lands, the process dies before recording it; the next process settles it, never repeats it."""
    incident = world.incident_for_acme(comments=PUBLIC)
    faults = world.acme.faults if system == "jira" else world.snow.faults
    faults.next(operation, CRASH)
    with pytest.raises(Crash):
        world.start().cycle()
    assert world.store.intents.unfinished(), "the crash left the write's intent open"

    engine = world.start()  # a new process over the same store and the same remote systems
    converge(engine)

    (issue,) = world.acme.issues_of()
    assert world.acme.writes().count("create_issue") == 1
    assert comment_count(world.acme, PUBLIC) == 1
    assert len(issue.remote_links) == 1
    assert len(link_notes(world, incident.sys_id)) == 1
    (link,) = world.store.links.for_incident(incident.sys_id)
    assert (link.state, link.jira_key) == ("linked", issue.key)
    assert world.store.intents.unfinished() == []
    assert world.store.comments.unfinished() == []


def test_a_crashed_create_no_search_showed_is_found_by_the_lost_create_search(world: World) -> None:
    """With no supplier poll in the cycle (``sites=[]``), the pending create is settled by its stamp alone."""
    incident = world.incident_for_acme(comments=PUBLIC)
    world.acme.faults.next("create_issue", CRASH)
    with pytest.raises(Crash):
        world.start().cycle()
    engine = world.start()
    report = engine.cycle(sites=[])
    assert report.failed == {}
    assert world.acme.calls.count("created_by_me_since") == 1
    assert "issues_updated_since" not in world.acme.calls[world.acme.calls.index("create_issue") :]
    (issue,) = world.acme.issues_of()
    assert world.acme.writes().count("create_issue") == 1
    assert world.store.links.get(incident.sys_id, "acme").jira_key == issue.key  # type: ignore[union-attr]
    assert comment_count(world.acme, PUBLIC) == 1


def test_a_lost_create_is_found_by_its_stamp_not_sent_again(world: World) -> None:
    incident = world.incident_for_acme(comments=PUBLIC)
    world.acme.faults.next("create_issue", LOST_ANSWER)
    engine = world.start()
    report = engine.cycle()
    assert report.failed[entity(incident.sys_id)].startswith("UncertainOutcome")
    (created,) = world.acme.issues_of()  # it landed; only the answer was lost
    (link,) = world.store.links.for_incident(incident.sys_id)
    assert link.state == "creating"

    world.clock.advance(minutes=2)  # the dead letter's retry is due
    converge(engine)

    assert world.acme.writes().count("create_issue") == 1
    (link,) = world.store.links.for_incident(incident.sys_id)
    assert (link.state, link.jira_key) == ("linked", created.key)
    assert comment_count(world.acme, PUBLIC) == 1
    assert world.store.dlq.list() == []


def test_a_lost_create_waits_while_search_lags_and_is_found_once_indexed(world: World) -> None:
    incident = world.incident_for_acme()
    world.acme.index_live = False  # search does not show the new issue yet
    world.acme.faults.next("create_issue", LOST_ANSWER)
    engine = world.start()
    engine.cycle()
    world.clock.advance(minutes=2)  # retry due, still inside the search lag (10 minutes)
    report = engine.cycle()
    assert report.failed[entity(incident.sys_id)].startswith("UncertainOutcome"), (
        "not found: wait, not create"
    )
    assert world.acme.writes().count("create_issue") == 1
    assert "created_by_me_since" in world.acme.calls, "looked for by its stamp"

    world.acme.index_live = True
    world.acme.reindex()
    world.clock.advance(minutes=2)
    converge(engine)
    (issue,) = world.acme.issues_of()
    assert world.acme.writes().count("create_issue") == 1
    assert world.store.links.get(incident.sys_id, "acme").jira_key == issue.key  # type: ignore[union-attr]


def test_a_held_entity_waits_in_the_dead_letter_queue_others_carry_on_and_it_is_retried(world: World) -> None:
    world.acme.faults.next("create_issue", REFUSED)
    incident = world.incident_for_acme(**{"business_service": "svc-pay", "business_service.name": "Payments"})
    engine = world.start()
    report = engine.cycle()
    assert list(report.failed) == [entity(incident.sys_id)]
    assert report.failed[entity(incident.sys_id)].startswith("InvalidRequest")
    assert len(world.sites["initech"].issues_of()) == 1, "the other supplier was not delayed"

    world.snow.desk_update(incident.sys_id, comments="more news")
    report = engine.cycle()
    assert report.held == 1
    (letter,) = world.store.dlq.list()
    assert (letter.entity, letter.attempts, letter.held_events, letter.error_type) == (
        entity(incident.sys_id),
        1,
        1,
        "InvalidRequest",
    )
    assert world.acme.calls.count("create_issue") == 1, "held: nothing sent for it"
    assert comment_count(world.sites["initech"], "more news") == 1, "the sibling took the news"

    world.clock.advance(minutes=2)
    converge(engine)
    assert len(world.acme.issues_of()) == 1
    assert comment_count(world.acme, "more news") == 1
    assert world.store.dlq.list() == []


def test_a_supplier_reaching_our_target_first_is_taken_as_done(world: World) -> None:
    """Between our read and our transition the supplier resolves the issue: nothing to do, no failure."""
    incident = world.incident_for_acme()
    engine = world.start()
    converge(engine)
    (issue,) = world.acme.issues_of()
    world.snow.desk_update(
        incident.sys_id, state="6", close_code="Solution provided", close_notes="Restarted"
    )
    world.acme.faults.next("transition", concurrent(lambda: world.acme.agent_move(issue.key, "Resolved")))
    report = engine.cycle()
    assert report.failed == {}
    assert issue.status == "Resolved"
    assert changes_by(world.acme, issue.key, "status", "jdoe") == [("In Progress", "Resolved")]
    assert ("In Progress", "Resolved") not in changes_by(world.acme, issue.key, "status", "mim-connector")
    converge(engine)
    assert world.snow.record(incident.sys_id).values["state"] == "6"


def test_a_supplier_moving_elsewhere_meanwhile_is_re_read_and_re_planned_in_the_same_cycle(
    world: World,
) -> None:
    """Our move to Waiting for Customer meets the supplier's Resolve: re-read, and the supplier's move stands."""
    incident = world.incident_for_acme()
    engine = world.start()
    converge(engine)
    (issue,) = world.acme.issues_of()
    world.snow.desk_update(incident.sys_id, state="3")  # On Hold -> Waiting for Customer
    world.acme.faults.next("transition", concurrent(lambda: world.acme.agent_move(issue.key, "Resolved")))
    report = engine.cycle()
    assert report.failed == {}, "a concurrent change is re-planned, not dead-lettered"
    assert world.store.dlq.list() == []
    assert issue.status == "Resolved", "the supplier's move stands"
    assert world.snow.record(incident.sys_id).values["state"] == "6", "and reached the incident"
    notes = [n for n in world.snow.journal_values(incident.sys_id, "work_notes") if "to Resolved" in n]
    assert len(notes) == 1
    converge(engine)


def test_the_sweep_walks_every_page_of_open_links(world: World) -> None:
    """Five linked incidents, two per sweep page: a comment only a direct read shows reaches each one."""
    incidents = [world.incident_for_acme(short_description=f"Outage {n}") for n in range(5)]
    engine = world.start(sweep_page=2)
    converge(engine, sweep=False)
    world.acme.index_live = False  # search will not show what happens next
    for issue in world.acme.issues_of():
        world.acme.agent_comment(issue.key, f"Seen only by a direct read on {issue.key}")
    world.clock.advance(minutes=1)
    engine.cycle(sweep=False)
    assert all(not any("direct read" in n for n in world.snow.journal_values(i.sys_id)) for i in incidents)

    engine.cycle(sweep=True)
    for incident in incidents:
        notes = [n for n in world.snow.journal_values(incident.sys_id) if "Seen only by a direct read" in n]
        assert len(notes) == 1, incident.number


@pytest.mark.parametrize(
    ("operation", "fault", "error"),
    [
        ("update_issue", rate_limited(7.0), "RateLimited"),
        ("update_issue", OUTAGE, "Unavailable"),
        ("add_comment", rate_limited(7.0), "RateLimited"),
        ("add_comment", OUTAGE, "Unavailable"),
    ],
    ids=["update-429", "update-outage", "comment-429", "comment-outage"],
)
def test_a_throttled_or_failing_write_is_classified_and_sent_once_when_retried(
    world: World, operation: str, fault: Fault, error: str
) -> None:
    incident = world.incident_for_acme()
    engine = world.start()
    converge(engine)
    (issue,) = world.acme.issues_of()
    world.snow.desk_update(incident.sys_id, short_description="Checkout down everywhere")
    world.snow.desk_update(incident.sys_id, comments="Update: failover started")
    world.acme.faults.next(operation, fault)
    world.clock.advance(seconds=10)
    report = engine.cycle()
    assert report.failed[entity(incident.sys_id)].startswith(error)
    (letter,) = world.store.dlq.list()
    assert letter.error_type == error
    assert world.store.intents.counts().get("uncertain", 0) == 0, "nothing was applied: not uncertain"
    assert world.store.intents.unfinished() == []

    world.clock.advance(minutes=2)
    converge(engine)
    summary = f"[{incident.number}] Checkout down everywhere"
    assert issue.values["summary"] == summary
    assert [new for _old, new in changes_by(world.acme, issue.key, "summary", "mim-connector")] == [summary]
    assert comment_count(world.acme, "Update: failover started") == 1
    assert world.store.dlq.list() == []


def test_a_failing_supplier_search_is_counted_and_the_rest_of_the_cycle_goes_on(world: World) -> None:
    world.acme.faults.next("issues_updated_since", OUTAGE)
    incident = world.incident_for_acme()
    engine = world.start()
    report = engine.cycle()
    assert engine.poll_failures["jira:acme"][0] == 1
    assert engine.poll_failures["jira:acme"][1].startswith("Unavailable")
    assert world.store.watermarks.get("jira:acme") is None, "a failed poll does not move its watermark"
    assert report.failed == {} and len(world.acme.issues_of()) == 1, "ServiceNow's news still went out"
    assert world.store.links.get(incident.sys_id, "acme") is not None
    engine.cycle()
    assert "jira:acme" not in engine.poll_failures
    assert world.store.watermarks.get("jira:acme") is not None


def test_a_refused_write_leaves_the_plans_earlier_writes_recorded(world: World) -> None:
    """The link note is refused: the create, remote link and comment before it keep their records."""
    incident = world.incident_for_acme(comments=PUBLIC)
    world.snow.faults.next("update_incident", REFUSED)
    report = world.start().cycle()
    assert report.failed[entity(incident.sys_id)].startswith("InvalidRequest")
    store = world.store
    (link,) = store.links.for_incident(incident.sys_id)
    (issue,) = world.acme.issues_of()
    assert (link.state, link.jira_key) == ("linked", issue.key)
    audited = {(e.operation, e.outcome) for e in store.audit.entries(limit=50)}
    assert {("create_issue", "done"), ("remote_link", "done"), ("add_comment", "done")} <= audited
    assert ("add_journal", "failed") in audited
    assert store.comments.settled_both(link.link_id)["out"], "the mirrored comment is settled"
    assert store.intents.unfinished() == [] and store.comments.unfinished() == []


def test_a_lost_create_found_after_both_sides_moved_mirrors_the_desks_later_state(world: World) -> None:
    """The create's answer is lost; the engineer starts work, the desk resolves; after a restart the
    supplier's search shows the stamped issue first: it is that create, so the resolution reaches it."""
    incident = world.incident_for_acme()
    world.acme.faults.next("create_issue", LOST_ANSWER)
    assert world.start().cycle().failed
    (issue,) = world.acme.issues_of()
    world.acme.agent_move(issue.key, "In Progress")
    world.snow.desk_update(incident.sys_id, state="6", close_code="Solution provided", close_notes="Fixed")
    world.clock.advance(minutes=2)

    engine = world.start()
    engine.cycle(servicenow=False, sites=["acme"])
    converge(engine)
    assert issue.status == "Resolved"
    assert world.acme.writes().count("create_issue") == 1


def test_an_issue_of_a_lost_store_is_adopted_by_its_stamp_not_created_again(world: World) -> None:
    incident = world.incident_for_acme(comments=PUBLIC)
    converge(world.start())
    world.store.close()
    (world.root / "state.db").unlink()  # the store is lost; both remote systems are as they were

    engine = world.start()
    converge(engine)
    (issue,) = world.acme.issues_of()
    assert world.acme.writes().count("create_issue") == 1
    assert world.store.links.get(incident.sys_id, "acme").jira_key == issue.key  # type: ignore[union-attr]
    assert comment_count(world.acme, PUBLIC) == 1, "what already landed is recognised, not sent again"
    assert len(link_notes(world, incident.sys_id)) == 1


def test_a_worker_whose_claim_was_taken_while_it_stalled_writes_no_more(world: World) -> None:
    """A worker stalls past its claim (here: inside the create) and another worker takes the incident:
    the stalled one sends nothing after that, leaves the items to the new holder, and the incident
    ends mirrored once."""
    world.incident_for_acme(comments=PUBLIC)
    engine = world.start()
    taken: list[str] = []

    def another_worker_takes_the_incident() -> None:
        world.clock.advance(seconds=engine.claim_ttl.total_seconds() + 1)
        claim = engine.store.queue.claim("another-instance", world.clock(), engine.claim_ttl)
        assert claim is not None
        taken.append(claim.token)

    world.acme.faults.next("create_issue", concurrent(another_worker_takes_the_incident))
    engine.enqueue(engine.observe())
    assert engine.work(engine.instance_id, CycleReport())
    assert taken, "the other worker took the claim during the create"
    (issue,) = world.acme.issues_of()
    assert comment_count(world.acme, PUBLIC) == 0, "nothing was sent after the claim was lost"
    assert engine.store.queue.size() == 1, "the items are left to the new holder"
    world.clock.advance(seconds=engine.claim_ttl.total_seconds() + 1)
    converge(engine)
    assert [i.key for i in world.acme.issues_of()] == [issue.key]
    assert comment_count(world.acme, PUBLIC) == 1


def workaround_changed_by_the_supplier(world: World) -> tuple[Incident, FakeIssue]:
    """A mirrored incident whose workaround ACME changed, and whose description the desk changed since."""
    incident = world.incident_for_acme(u_workaround="Restart the pods")
    converge(world.start())
    (issue,) = world.acme.issues_of()
    world.clock.advance(seconds=30)
    world.acme.agent_edit(issue.key, customfield_10062="Fail over to region B")
    world.snow.desk_update(incident.sys_id, description="Payment page times out, card and wallet")
    return incident, issue


def test_after_a_worker_dies_mid_claim_the_next_plans_from_the_incident_as_it_is_now(world: World) -> None:
    """A worker copies the supplier's workaround to ServiceNow and dies before completing its claim;
    the desk then sets another workaround. The next worker must not plan from the version the poll
    had read (from before the copy): that would copy the supplier's value back over the desk's."""
    incident, issue = workaround_changed_by_the_supplier(world)
    world.snow.faults.next("update_incident", CRASH)
    engine = world.start()
    engine.enqueue(engine.observe())  # the poll reads the desk's version: the item names it
    with pytest.raises(Crash):
        engine.work(engine.instance_id, CycleReport())
    assert world.snow.record(incident.sys_id).values["u_workaround"] == "Fail over to region B"

    world.snow.desk_update(incident.sys_id, u_workaround="Drain the queue first")
    engine = world.start()  # a new process; it works before its first poll
    assert engine.work(engine.instance_id, CycleReport())
    converge(engine)
    assert world.snow.record(incident.sys_id).values["u_workaround"] == "Drain the queue first"
    assert world.acme.issues[issue.key].values["customfield_10062"] == "Drain the queue first"


def test_a_worker_plans_from_the_version_the_poll_read_without_reading_it_again(world: World) -> None:
    incident = world.incident_for_acme()
    engine = world.start()
    engine.enqueue(engine.observe())
    world.snow.calls.clear()
    assert engine.work(engine.instance_id, CycleReport())
    assert world.acme.issues_of(), "mirrored"
    assert "incident" not in world.snow.calls, "the poll's version was planned from"
    assert world.store.incidents.get(incident.sys_id) is not None


def test_a_version_polled_while_a_worker_wrote_is_not_planned_from(world: World) -> None:
    """The poll reads the incident, a worker copies the supplier's workaround to it, then the poll
    commits: the version it read lacks that copy. Planning from it would take the copy for the
    desk's old value and write that value back to the supplier."""
    incident, issue = workaround_changed_by_the_supplier(world)
    engine = world.start()
    engine.enqueue(engine.observe())
    world.snow.desk_update(incident.sys_id, comments="Bridge call at 10:30")
    late = engine.observe()  # reads the desk's comment; commits after the worker below
    assert engine.work(engine.instance_id, CycleReport())
    assert world.snow.record(incident.sys_id).values["u_workaround"] == "Fail over to region B"
    engine.enqueue(late)
    world.snow.calls.clear()
    assert engine.work(engine.instance_id, CycleReport())  # before the next poll
    converge(engine)
    assert world.acme.issues[issue.key].values["customfield_10062"] == "Fail over to region B"
    assert changes_by(world.acme, issue.key, "customfield_10062", world.acme.myself().account_id) == [], (
        "the supplier's workaround was never overwritten"
    )
    assert "incident" in world.snow.calls, "read afresh"
