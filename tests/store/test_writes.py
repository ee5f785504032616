"""The one write protocol (:mod:`connector.sync.writes`) on a real store: intent, send, outcome."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection

from connector.core.errors import InvalidRequest, UncertainOutcome
from connector.core.plan import Operation
from connector.core.ports import Write, Written
from connector.store import Store
from connector.sync.writes import Writes

WRITE = Write(
    "inc1:rules", Operation.LINK_CHILD, "servicenow", "INC0010001", "child of INC0010000", "ref-1", {"n": 1}
)


def _claim(store: Store) -> int:
    link, _ = store.links.claim("inc1", "acme", "stamp-1")
    return link.link_id


def test_the_intent_is_committed_before_the_send_and_the_outcome_lands_with_its_audit_and_effects(
    store: Store,
) -> None:
    link_id = _claim(store)
    seen_while_sending: list[list[str]] = []

    def send() -> str:
        seen_while_sending.append([w.stamp for w in Writes(store).open_writes("rules")])
        return "CHILD"

    writes = Writes(store)
    answer = writes.send(
        writes.begin(WRITE),
        WRITE,
        send,
        lambda got: Written({"answer": got}, after={"parent": got}),
        effects=lambda conn, got: store.shadows.put(link_id, "jira", {"parent": got}, conn=conn),
    )
    assert answer == "CHILD"
    assert seen_while_sending == [["ref-1"]], "the send sees its own intent recorded"
    assert store.intents.unfinished() == [] and store.intents.counts() == {"done": 1}
    (entry,) = store.audit.entries()
    assert (entry.operation, entry.target, entry.outcome, entry.after) == (
        "link_child",
        "INC0010001",
        "done",
        {"parent": "CHILD"},
    )
    assert entry.intent_id is not None
    assert store.shadows.get(link_id, "jira") == {"parent": "CHILD"}


def test_an_outcome_whose_effects_fail_is_not_recorded_either(store: Store) -> None:
    """One transaction: the outcome, its audit entry and its effects land together or not at all."""

    def broken(conn: Connection, answer: None) -> None:
        raise RuntimeError("the store failed mid-way")

    writes = Writes(store)
    with pytest.raises(RuntimeError):
        writes.send(writes.begin(WRITE), WRITE, lambda: None, effects=broken)
    assert [w.stamp for w in writes.open_writes("rules")] == ["ref-1"], "left open, to be settled"
    assert store.audit.entries() == []


def test_a_deferred_outcome_waits_for_the_next_intent_or_the_end_of_the_run(store: Store) -> None:
    writes = Writes(store, deferred=True)
    writes.write(WRITE, lambda: None)
    assert store.intents.counts() == {"pending": 1}, "a crash here leaves the intent open"
    second = Write(WRITE.entity, Operation.PROPOSE, "servicenow", "INC0010001", "rule r matched", "ref-2")
    writes.begin(second)
    assert store.intents.counts() == {"done": 1, "pending": 1}, "landed with the next intent"
    writes.land()
    assert store.intents.counts() == {"done": 1, "pending": 1}, "nothing else was waiting"


def test_a_lost_answer_leaves_the_write_open_with_its_failure_effect_and_is_settled_by_its_stamp(
    store: Store,
) -> None:
    link_id = _claim(store)
    writes = Writes(store, deferred=True)

    def lost() -> None:
        raise UncertainOutcome("connection reset after the request was sent")

    with pytest.raises(UncertainOutcome):
        writes.send(
            writes.begin(WRITE),
            WRITE,
            lost,
            failed=lambda conn, exc: store.shadows.put(link_id, "jira", {"left": "uncertain"}, conn=conn),
        )
    assert store.shadows.get(link_id, "jira") == {"left": "uncertain"}, "landed with the failure, not later"
    (open_write,) = writes.open_writes("rules")
    assert (open_write.operation, open_write.stamp) == ("link_child", "ref-1")
    assert [e.outcome for e in store.audit.entries()] == ["uncertain"]
    writes.settle(open_write.intent_id, "done", {"reconciled": True})
    assert writes.open_writes("rules") == [] and store.intents.counts() == {"done": 1}


def test_a_refused_write_is_recorded_failed_and_not_left_open(store: Store) -> None:
    writes = Writes(store)

    def refused() -> None:
        raise InvalidRequest("400: field not writable")

    with pytest.raises(InvalidRequest):
        writes.write(WRITE, refused)
    assert writes.open_writes("rules") == [] and store.intents.counts() == {"failed": 1}
    (entry,) = store.audit.entries()
    assert (entry.outcome, entry.after) == ("failed", {"error": "400: field not writable"})


def test_open_writes_are_found_by_scope_only(store: Store) -> None:
    writes = Writes(store)
    writes.begin(WRITE)
    writes.begin(Write("inc1:acme", Operation.UPDATE_ISSUE, "jira:acme", "ACME-1", "sync", "s-2"))
    writes.begin(Write("inc2:myrules", Operation.PROPOSE, "servicenow", "INC2", "r", "s-3"))
    assert [w.stamp for w in writes.open_writes("rules")] == ["ref-1"]
    assert [w.stamp for w in writes.open_writes_of("inc1:acme")] == ["s-2"]
