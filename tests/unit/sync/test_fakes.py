"""The fakes keep the ports' contracts: ordering, paging, what each call returns and raises, the fault switches."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from connector.config import LoadedConfig
from connector.core.errors import (
    InvalidRequest,
    RateLimited,
    TicketNotAccessible,
    Unavailable,
    UncertainOutcome,
)
from tests.fakes import LOST_ANSWER, OUTAGE, Clock, FakeJira, FakeServiceNow, rate_limited

FIELDS = ["short_description", "state"]


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 12, 7, 14, 1, 10, tzinfo=UTC))


@pytest.fixture
def snow(clock: Clock) -> FakeServiceNow:
    return FakeServiceNow(clock)


@pytest.fixture
def acme(loaded: LoadedConfig, clock: Clock) -> FakeJira:
    return FakeJira.for_mapping("acme", loaded.suppliers["acme"], clock)


def test_servicenow_pages_by_keyset_and_a_row_changed_while_paging_is_read_again(
    snow: FakeServiceNow, clock: Clock
) -> None:
    created = [snow.desk_create(short_description=f"n{n}") for n in range(5)]  # all in one second
    since = clock()
    pages = snow.incidents_changed(since, FIELDS, 2)
    first = list(islice(pages, 2))
    clock.advance(seconds=1)
    snow.desk_update(created[0].sys_id, short_description="edited")
    rest = list(pages)
    assert [i.sys_id for i in first] == [c.sys_id for c in created[:2]]
    assert [i.sys_id for i in rest] == [c.sys_id for c in created[2:]] + [created[0].sys_id]
    assert rest[-1].mod_count == 1 and rest[-1].fields["short_description"] == "edited"
    assert snow.calls.count("incidents_changed") == 4, "three full pages, then an empty one"
    with pytest.raises(InvalidRequest):
        list(snow.incidents_changed(datetime(2026, 12, 1), FIELDS, 2))  # noqa: DTZ001 - a naive watermark is refused


def test_servicenow_journal_fields_append_entries_and_count_one_write(snow: FakeServiceNow) -> None:
    incident = snow.desk_create(short_description="x", comments="public")
    assert snow.update_incident(incident.sys_id, {"work_notes": "internal", "state": "2"}) == 1
    assert snow.update_incident(incident.sys_id, {}) is None, "nothing to send"
    assert [(e.element, e.value, e.created_by) for e in snow.journal_of(incident.sys_id)] == [
        ("comments", "public", "admin"),
        ("work_notes", "internal", "svc.mim-connector"),
    ]
    read = snow.incident(incident.sys_id, ["state", "work_notes"])
    assert read is not None and dict(read.fields) == {"state": "2"}
    assert snow.incident("missing", FIELDS) is None
    with pytest.raises(TicketNotAccessible):
        snow.update_incident("missing", {"state": "2"})


def test_servicenow_faults_lost_answer_applies_throttle_and_outage_do_not(snow: FakeServiceNow) -> None:
    incident = snow.desk_create(short_description="x")
    snow.faults.next("update_incident", LOST_ANSWER)
    with pytest.raises(UncertainOutcome):
        snow.update_incident(incident.sys_id, {"state": "6"})
    assert snow.record(incident.sys_id).values["state"] == "6"
    snow.faults.next("update_incident", rate_limited(4.0))
    snow.faults.next("update_incident", OUTAGE)
    with pytest.raises(RateLimited) as throttled:
        snow.update_incident(incident.sys_id, {"state": "7"})
    assert throttled.value.retry_after == 4.0
    with pytest.raises(Unavailable):
        snow.update_incident(incident.sys_id, {"state": "7"})
    assert snow.record(incident.sys_id).values["state"] == "6"
    assert snow.record(incident.sys_id).mod_count == 1
    snow.faults.next("incident", LOST_ANSWER)
    with pytest.raises(Unavailable):
        snow.incident(incident.sys_id, FIELDS)


def test_jira_workflow_changelog_and_comments(acme: FakeJira) -> None:
    ref = acme.create_issue("ACME", "Incident", {"summary": "s", "labels": ["b", "a"]}, {})
    assert [t.name for t in acme.transitions(ref.key)] == ["Start Progress", "Wait for Customer", "Resolve"]
    resolve = next(t for t in acme.transitions(ref.key) if t.name == "Resolve")
    with pytest.raises(InvalidRequest):
        acme.transition(ref.key, resolve.transition_id, {})  # its screen requires a resolution
    acme.agent_move(ref.key, "In Progress")
    acme.transition(ref.key, resolve.transition_id, {"resolution": "Done"})
    with pytest.raises(InvalidRequest):
        acme.transition(ref.key, resolve.transition_id, {"resolution": "Done"})  # not offered from Resolved
    acme.agent_comment(ref.key, "theirs")
    acme.add_comment(ref.key, "ours")
    issue = acme.issue(ref.key, ["summary", "labels", "resolution"])
    assert issue is not None
    assert (issue.status, issue.status_category) == ("Resolved", "done")
    assert dict(issue.fields) == {"summary": "s", "labels": "a b", "resolution": "Done"}
    assert issue.status_change is not None
    assert (issue.status_change.author_id, issue.status_change.from_status) == (
        "mim-connector",
        "In Progress",
    )
    assert issue.field_authors["status"] == "mim-connector"
    assert [(c.author_id, c.body) for c in issue.comments] == [("jdoe", "theirs"), ("mim-connector", "ours")]
    assert acme.issue("ACME-99", []) is None
    with pytest.raises(TicketNotAccessible):
        acme.add_comment("ACME-99", "x")


def test_jira_search_lags_while_the_index_is_paused_and_lost_create_pages_stop_early(
    acme: FakeJira, clock: Clock
) -> None:
    stamp = {"mim-connector": {"stamp": "s1", "incident_sys_id": "inc1"}}
    first = acme.create_issue("ACME", "Incident", {"summary": "first"}, stamp)
    acme.index_live = False
    later = acme.create_issue("ACME", "Incident", {"summary": "later"}, {})
    assert [r.key for r in acme.issues_updated_since("ACME", clock(), 50)] == [first.key]
    assert acme.issue(later.key, []) is not None, "a direct read is never stale"
    acme.reindex()
    hits = acme.created_by_me_since("ACME", clock())
    newest = next(hits)
    assert newest.key == later.key and newest.identity is None
    assert acme.calls.count("created_by_me_since") == 1
    assert next(hits).identity is not None and next(hits, None) is None
    clock.advance(seconds=45)  # 14:01:55, the issues' 14:01:10 is in the same minute
    assert [r.key for r in acme.issues_updated_since("ACME", clock(), 50)] == [first.key, later.key], (
        "JQL bounds are floored to the minute"
    )
