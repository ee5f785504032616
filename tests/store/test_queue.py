"""The work queue's contract (connector.store.queue), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event

from connector.core.models import JournalEntry
from connector.store import Store
from connector.store.queue import (
    BULK,
    DEAD,
    MAX_JOURNAL_CHARS,
    MAX_REASONS,
    NEW,
    PENDING,
    RECONCILE,
    Claim,
    Enqueue,
    LaneDepth,
    WorkQueue,
)

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
TTL = timedelta(minutes=5)
BASE, MOST = timedelta(seconds=30), timedelta(hours=1)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def note(sys_id: str, value: str = "text", incident_sys_id: str = "inc1") -> JournalEntry:
    return JournalEntry(sys_id, incident_sys_id, "comments", value, T0, "alice")


def entities(claim: Claim | None) -> list[str]:
    return [item.entity for item in claim.items] if claim else []


# --- coalescing --------------------------------------------------------------------------------


def test_two_enqueues_of_one_entity_make_one_item_with_the_union(store: Store) -> None:
    queue = store.queue
    queue.enqueue(
        [Enqueue("inc1", "acme", "reconcile", RECONCILE, later(60), journal=[note("j1")], stamped=["A-1"])],
        T0,
    )
    queue.enqueue(
        [
            Enqueue(
                "inc1",
                "acme",
                "servicenow",
                NEW,
                later(10),
                polled=3,
                journal=[note("j1", "same entry read again"), note("j2")],
                stamped=["A-1", "A-2"],
            )
        ],
        later(1),
    )
    item = queue.pending("inc1:acme")
    assert item is not None and queue.size() == 1
    assert (item.state, item.lane, item.due_at, item.version) == (PENDING, NEW, later(10), 2)
    assert item.reasons == ("reconcile", "servicenow")
    assert [(entry.sys_id, entry.value) for entry in item.journal] == [("j1", "text"), ("j2", "text")]
    assert item.journal[0] == note("j1"), "entries come back as they went in"
    assert item.stamped == ("A-1", "A-2") and item.polled == 3 and not item.full_journal
    assert item.enqueued_at == T0
    # A later, less urgent reason does not push the item back.
    queue.enqueue([Enqueue("inc1", "acme", "bulk", BULK, later(600))], later(2))
    item = queue.pending("inc1:acme")
    assert item is not None and (item.lane, item.due_at, item.version) == (NEW, later(10), 3)


def test_an_item_keeps_the_newest_polled_version_and_the_earliest_read_of_it(store: Store) -> None:
    queue = store.queue
    queue.enqueue([Enqueue("inc1", "acme", "servicenow", polled=3, polled_at=later(5))], T0)
    queue.enqueue([Enqueue("inc1", "initech", "servicenow", polled=3, polled_at=later(5))], T0)
    queue.enqueue([Enqueue("inc1", "acme", "journal", polled=3, polled_at=later(2))], T0)
    queue.enqueue([Enqueue("inc1", "acme", "jira")], T0)
    item = queue.pending("inc1:acme")
    assert item is not None and (item.polled, item.polled_at) == (3, later(2))
    queue.enqueue([Enqueue("inc1", "acme", "servicenow", polled=4, polled_at=later(9))], T0)
    queue.enqueue([Enqueue("inc1", "acme", "servicenow", polled=2, polled_at=later(1))], T0)
    item = queue.pending("inc1:acme")
    assert item is not None and (item.polled, item.polled_at) == (4, later(9))


def test_reasons_are_capped_and_one_call_coalesces_its_own_duplicates(store: Store) -> None:
    reasons = [Enqueue("inc1", "acme", f"reason{n}", BULK, later(n)) for n in range(MAX_REASONS + 3)]
    assert store.queue.enqueue([*reasons, reasons[0]], T0) == 1
    item = store.queue.pending("inc1:acme")
    assert item is not None
    assert item.reasons == tuple(f"reason{n}" for n in range(MAX_REASONS))
    assert (item.due_at, item.lane, item.version) == (T0, BULK, 1)


def test_too_much_journal_text_makes_the_item_ask_for_the_whole_journal(store: Store) -> None:
    half = MAX_JOURNAL_CHARS // 2 + 1
    store.queue.enqueue([Enqueue("inc1", "acme", "journal", journal=[note("j1", "x" * half)])], T0)
    item = store.queue.pending("inc1:acme")
    assert item is not None and len(item.journal) == 1 and not item.full_journal
    store.queue.enqueue([Enqueue("inc1", "acme", "journal", journal=[note("j2", "y" * half)])], T0)
    item = store.queue.pending("inc1:acme")
    assert item is not None and item.full_journal and item.journal == ()
    # Once it reads the whole journal, further entries are not carried either.
    store.queue.enqueue([Enqueue("inc1", "acme", "journal", journal=[note("j3")])], T0)
    item = store.queue.pending("inc1:acme")
    assert item is not None and item.full_journal and item.journal == ()


def test_an_enqueue_of_many_entities_lands_them_all(store: Store) -> None:
    first = [Enqueue(f"inc{n}", "acme", "backfill", BULK) for n in range(700)]
    assert store.queue.enqueue(first, T0) == 700
    # 1,200 entities, 700 of them already waiting: both the lookup and the inserts cross a chunk.
    every = [Enqueue(f"inc{n}", "acme", "servicenow") for n in range(1200)]
    assert store.queue.enqueue(every, later(1)) == 1200
    assert store.queue.size() == 1200
    assert store.queue.depth(later(1))[NEW] == LaneDepth(1200, 0, 1.0)
    versions = Counter(item.version for item in _all_items(store.queue, 1200))
    assert versions == {2: 700, 1: 500}


def _all_items(queue: WorkQueue, count: int) -> list[Any]:
    items = [queue.pending(f"inc{n}:acme") for n in range(count)]
    assert all(item is not None for item in items)
    return items


# --- claims ------------------------------------------------------------------------------------


def test_a_claim_takes_the_earliest_incident_and_all_its_due_items(store: Store) -> None:
    queue = store.queue
    queue.enqueue(
        [
            Enqueue("inc2", "acme", "servicenow", due_at=later(5)),
            Enqueue("inc1", "acme", "servicenow", due_at=later(10)),
            Enqueue("inc2", "globex", "jira", due_at=later(20)),
            Enqueue("inc2", "initech", "followup", due_at=later(120)),
        ],
        T0,
    )
    assert queue.claim("w1", T0, TTL) is None, "nothing is due yet"
    claim = queue.claim("w1", later(30), TTL)
    assert claim is not None and claim.incident_sys_id == "inc2"
    assert entities(claim) == ["inc2:acme", "inc2:globex"], "every due item, not the one due later"
    # Another worker gets the other incident, and then nothing while the claim lives.
    other = queue.claim("w2", later(30), TTL)
    assert other is not None and entities(other) == ["inc1:acme"]
    assert queue.claim("w2", later(200), TTL) is None
    # Once the claim expires, another instance takes the incident with what is due by then.
    taken = queue.claim("w2", later(30) + TTL, TTL)
    assert taken is not None and taken.incident_sys_id == "inc2" and taken.token != claim.token
    assert entities(taken) == ["inc2:acme", "inc2:globex", "inc2:initech"]


def test_a_claim_in_a_lane_takes_only_that_lanes_incidents(store: Store) -> None:
    store.queue.enqueue(
        [
            Enqueue("inc1", "acme", "reconcile", RECONCILE),
            Enqueue("inc2", "acme", "backfill", BULK, due_at=later(1)),
            Enqueue("inc3", "acme", "servicenow", NEW, due_at=later(2)),
        ],
        T0,
    )
    assert entities(store.queue.claim("w1", later(5), TTL, lanes=(NEW,))) == ["inc3:acme"]
    assert entities(store.queue.claim("w1", later(5), TTL, lanes=(NEW,))) == []
    assert entities(store.queue.claim("w1", later(5), TTL, lanes=(BULK,))) == ["inc2:acme"]
    assert entities(store.queue.claim("w1", later(5), TTL)) == ["inc1:acme"]


def test_complete_keeps_an_item_that_changed_while_it_was_claimed(store: Store) -> None:
    queue = store.queue
    queue.enqueue([Enqueue("inc1", "acme", "servicenow"), Enqueue("inc1", "globex", "servicenow")], T0)
    claim = queue.claim("w1", T0, TTL)
    assert claim is not None and len(claim.items) == 2
    queue.enqueue([Enqueue("inc1", "globex", "jira", journal=[note("j9")])], later(1))
    assert queue.complete(claim, claim.items, now=later(2))
    assert queue.pending("inc1:acme") is None
    kept = queue.pending("inc1:globex")
    assert kept is not None and (kept.state, kept.version) == (PENDING, 2)
    again = queue.claim("w2", later(2), TTL)
    assert again is not None and entities(again) == ["inc1:globex"]
    assert [entry.sys_id for entry in again.items[0].journal] == ["j9"]
    assert queue.complete(again, again.items, now=later(3)) and queue.size() == 0


def test_complete_of_only_some_items_leaves_the_others_claimable(store: Store) -> None:
    store.queue.enqueue([Enqueue("inc1", "acme", "servicenow"), Enqueue("inc1", "globex", "jira")], T0)
    claim = store.queue.claim("w1", T0, TTL)
    assert claim is not None and store.queue.complete(claim, claim.items[:1], now=T0)
    assert entities(store.queue.claim("w1", T0, TTL)) == ["inc1:globex"]


def test_complete_with_a_stale_claim_changes_nothing(store: Store) -> None:
    queue = store.queue
    queue.enqueue([Enqueue("inc1", "acme", "servicenow")], T0)
    stale = queue.claim("w1", T0, TTL)
    taken = queue.claim("w2", T0 + TTL, TTL)
    assert stale is not None and taken is not None and taken.incident_sys_id == "inc1"
    assert not queue.complete(stale, stale.items, now=T0 + TTL)
    assert queue.size() == 1, "the item stays for the claim that holds it"
    assert queue.claim("w3", T0 + TTL, TTL) is None, "and that claim still holds the incident"
    assert queue.complete(taken, taken.items, now=T0 + TTL) and queue.size() == 0


def test_release_extend_and_release_all(store: Store) -> None:
    queue = store.queue
    queue.enqueue([Enqueue(f"inc{n}", "acme", "servicenow") for n in range(3)], T0)
    first, second = queue.claim("w1", T0, TTL), queue.claim("w1", T0, TTL)
    third = queue.claim("w2", T0, TTL)
    assert first is not None and second is not None and third is not None
    queue.release(first)
    assert entities(queue.claim("w3", T0, TTL)) == ["inc0:acme"], "released: free at once"
    assert queue.extend("w1", T0 + 3 * TTL) == 1
    assert queue.extend("nobody", T0 + 3 * TTL) == 0
    # Ten minutes on, w2's and w3's claims expired; w1's lives on.
    expired = {queue.claim("w4", T0 + 2 * TTL, TTL) for _ in range(2)}
    assert {claim.incident_sys_id for claim in expired if claim} == {"inc0", "inc2"}
    assert queue.claim("w4", T0 + 2 * TTL, TTL) is None
    queue.release(first)  # its incident is w3's now: nothing to do
    queue.release_all("w1")
    assert entities(queue.claim("w5", T0 + 2 * TTL, TTL)) == entities(second)
    assert queue.size() == 3


def test_a_claim_on_postgresql_skips_locked_rows(store: Store) -> None:
    if store.dialect != "postgresql":
        pytest.skip("SQLite has no row locks: one writer at a time")
    store.queue.enqueue([Enqueue("inc1", "acme", "servicenow")], T0)
    with _statements(store) as statements:
        assert store.queue.claim("w1", T0, TTL) is not None
    assert any("FOR UPDATE OF work SKIP LOCKED" in statement for statement in statements)


@contextmanager
def _statements(store: Store) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(store.engine, "before_cursor_execute", record)


# --- races -------------------------------------------------------------------------------------


def test_workers_in_threads_process_every_item_exactly_once(store: Store) -> None:
    incidents, suppliers, workers = 300, ("acme", "globex"), 6
    store.queue.enqueue(
        [Enqueue(f"inc{n}", supplier, "servicenow") for n in range(incidents) for supplier in suppliers],
        T0,
    )
    guard = threading.Lock()
    holders: Counter[str] = Counter()
    overlaps: list[str] = []
    processed: list[tuple[str, int, int]] = []

    def work(instance_id: str) -> None:
        queue = WorkQueue(store.engine)
        while queue.size():
            claim = queue.claim(instance_id, later(1), TTL)
            if claim is None:
                continue
            with guard:
                holders[claim.incident_sys_id] += 1
                if holders[claim.incident_sys_id] > 1:
                    overlaps.append(claim.incident_sys_id)
                processed.extend((i.incident_sys_id, i.item_id, i.version) for i in claim.items)
            assert queue.pending(claim.items[0].entity) is not None, "still there while claimed"
            with guard:  # still held: nobody else may have it until complete lets it go
                holders[claim.incident_sys_id] -= 1
            assert queue.complete(claim, claim.items, now=later(1))

    _run([lambda n=n: work(f"w{n}") for n in range(workers)])
    assert overlaps == []
    assert len(processed) == incidents * len(suppliers) == len(set(processed))
    assert {incident for incident, _, _ in processed} == {f"inc{n}" for n in range(incidents)}
    assert store.queue.size() == 0


def test_workers_claiming_at_once_each_get_an_incident_while_enough_are_free(store: Store) -> None:
    store.queue.enqueue([Enqueue(f"inc{n:02}", "acme", "servicenow") for n in range(40)], T0)
    workers = 12
    barrier = threading.Barrier(workers)
    claimed: list[Claim | None] = []

    def claim() -> None:
        barrier.wait()
        got = store.queue.claim(f"w{len(claimed)}", later(1), TTL)
        claimed.append(got)

    _run([claim] * workers)
    assert None not in claimed, "a worker came away with nothing while 28 incidents were free"
    assert len({c.incident_sys_id for c in claimed if c is not None}) == workers


def _run(targets: list[Callable[[], object]]) -> None:
    """Run each target in a thread of its own; re-raise the first exception one of them raised."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]


def test_concurrent_enqueues_of_a_new_entity_fold_into_one_item(store: Store) -> None:
    for round_ in range(10):
        barrier = threading.Barrier(2)

        def enqueue(reason: str, round_: int = round_, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            WorkQueue(store.engine).enqueue([Enqueue(f"inc{round_}", "acme", reason)], T0)

        _run([lambda: enqueue("servicenow"), lambda: enqueue("jira")])
        item = store.queue.pending(f"inc{round_}:acme")
        assert item is not None and item.version == 2
        assert sorted(item.reasons) == ["jira", "servicenow"]
    assert store.queue.size() == 10


def test_an_enqueue_racing_a_complete_is_not_lost(store: Store) -> None:
    """The enqueue reads the item, the worker completes it, then the enqueue writes: the work stays."""
    store.queue.enqueue([Enqueue("inc1", "acme", "servicenow")], T0)
    claim = store.queue.claim("w1", T0, TTL)
    assert claim is not None
    with _before_first_write(store, lambda: store.queue.complete(claim, claim.items, now=T0)):
        store.queue.enqueue([Enqueue("inc1", "acme", "jira", journal=[note("j1")])], later(1))
    item = store.queue.pending("inc1:acme")
    assert item is not None and item.state == PENDING and item.reasons == ("jira",)
    assert [entry.sys_id for entry in item.journal] == ["j1"]
    assert entities(store.queue.claim("w1", later(1), TTL)) == ["inc1:acme"]


def test_a_stale_complete_racing_a_new_claim_never_lets_both_win(store: Store) -> None:
    """The late worker starts completing, a survivor claims the incident, then the late one writes.

    SQLite: the survivor gets in first, so the late complete must change nothing. PostgreSQL: the
    late complete holds the rows, so the survivor finds nothing claimable and the complete wins.
    """
    store.queue.enqueue([Enqueue("inc1", "acme", "servicenow")], T0)
    stale = store.queue.claim("w1", T0, TTL)
    assert stale is not None
    taken: list[Claim | None] = []
    with _before_first_write(store, lambda: taken.append(store.queue.claim("w2", T0 + TTL, TTL))):
        completed = store.queue.complete(stale, stale.items, now=T0 + TTL)
    assert completed != (taken[0] is not None)
    if completed:
        assert store.queue.size() == 0
    else:
        assert store.queue.size() == 1
        assert store.queue.claim("w3", T0 + TTL, TTL) is None, "the survivor's claim holds"


@contextmanager
def _before_first_write(store: Store, meanwhile: Callable[[], object]) -> Iterator[None]:
    """Run ``meanwhile`` in another thread just before this thread's first write statement."""
    owner = threading.get_ident()
    done: list[bool] = []

    def interleave(_conn: Any, clause: Any, *_args: Any) -> None:
        if done or threading.get_ident() != owner or not getattr(clause, "is_dml", False):
            return
        done.append(True)
        _run([meanwhile])

    # Before the statement reaches the cursor, where the SQLite engine takes its writer lock.
    event.listen(store.engine, "before_execute", interleave)
    try:
        yield
    finally:
        event.remove(store.engine, "before_execute", interleave)
    assert done, "the race was not played"


# --- dead letters ------------------------------------------------------------------------------


def _dead(store: Store, entity: str = "inc1:acme", now: datetime = T0) -> Any:
    incident_sys_id, supplier = entity.split(":")
    store.queue.enqueue([Enqueue(incident_sys_id, supplier, "servicenow")], now)
    claim = store.queue.claim("w1", now, TTL)
    assert claim is not None
    (item,) = claim.items
    failed = store.queue.fail(item, "Unavailable", "503", now, base_delay=BASE, max_delay=MOST)
    store.queue.release(claim)
    return failed


def test_a_failure_backs_off_doubling_up_to_the_most(store: Store) -> None:
    item = _dead(store)
    assert (item.state, item.attempts, item.due_at, item.first_failed_at) == (DEAD, 1, T0 + BASE, T0)
    waits = []
    now = T0
    for _ in range(60):  # long past the most: the doubling must not overflow
        now = item.due_at
        item = store.queue.fail(item, "Unavailable", "503", now, base_delay=BASE, max_delay=MOST)
        waits.append(item.due_at - now)
    assert waits[:4] == [2 * BASE, 4 * BASE, 8 * BASE, 16 * BASE]
    assert set(waits[7:]) == {MOST} and item.attempts == 61
    assert (item.first_failed_at, item.last_failed_at) == (T0, now)


def test_work_for_a_dead_item_is_held_behind_it(store: Store) -> None:
    dead = _dead(store)
    store.queue.enqueue([Enqueue("inc1", "acme", "jira", NEW, later(1), journal=[note("j1")])], later(1))
    store.queue.enqueue([Enqueue("inc1", "acme", "jira")], later(2))
    item = store.queue.pending("inc1:acme")
    assert item is not None
    assert (item.state, item.held_events, item.due_at, item.version) == (DEAD, 2, dead.due_at, 3)
    assert [entry.sys_id for entry in item.journal] == ["j1"]
    assert store.queue.claim("w1", later(2), TTL) is None, "held until the letter is due"
    assert store.queue.depth(later(2))[NEW] == LaneDepth(), "a letter is not pending work"
    assert store.dlq.blocked() == {"inc1:acme"}


def test_a_dead_item_is_claimed_when_due_or_asked_for(store: Store) -> None:
    dead = _dead(store)
    assert store.queue.claim("w1", later(1), TTL) is None
    assert store.dlq.retry_now(dead.item_id)
    claim = store.queue.claim("w1", later(1), TTL)
    assert claim is not None and claim.items[0].manual
    store.queue.release(claim)
    assert store.dlq.drop(dead.item_id)
    assert store.queue.claim("w1", dead.due_at, TTL) is None, "a dropped letter is history"
    other = _dead(store, "inc2:acme")
    assert entities(store.queue.claim("w1", other.due_at, TTL)) == ["inc2:acme"]


def test_completing_a_dead_item_resolves_it_unless_work_arrived(store: Store) -> None:
    first = _dead(store, "inc1:acme")
    claim = store.queue.claim("w1", first.due_at, TTL)
    assert claim is not None and store.queue.complete(claim, claim.items, now=first.due_at)
    (resolved,) = store.dlq.list(None)
    assert (resolved.entity, resolved.state) == ("inc1:acme", "resolved")
    assert store.queue.size() == 0 and store.dlq.blocked() == set()

    second = _dead(store, "inc2:acme")
    claim = store.queue.claim("w1", second.due_at, TTL)
    assert claim is not None
    store.queue.enqueue([Enqueue("inc2", "acme", "jira")], second.due_at)
    done_at = second.due_at + timedelta(seconds=1)
    assert store.queue.complete(claim, claim.items, now=done_at)
    item = store.queue.pending("inc2:acme")
    assert item is not None and (item.state, item.due_at, item.attempts) == (PENDING, done_at, 0)
    assert entities(store.queue.claim("w1", done_at, TTL)) == ["inc2:acme"]
    assert [letter.entity for letter in store.dlq.list(None)] == ["inc1:acme"]

    # New work for a resolved entity reuses its row as a fresh item.
    store.queue.enqueue([Enqueue("inc1", "acme", "servicenow")], done_at)
    fresh = store.queue.pending("inc1:acme")
    assert fresh is not None and (fresh.state, fresh.attempts, fresh.error, fresh.reasons) == (
        PENDING,
        0,
        "",
        ("servicenow",),
    )


def test_an_asked_for_retry_that_fails_early_keeps_its_schedule(store: Store) -> None:
    dead = _dead(store)
    assert store.dlq.retry_now(dead.item_id)
    claim = store.queue.claim("w1", later(5), TTL)
    assert claim is not None
    again = store.queue.fail(
        claim.items[0], "Unavailable", "still 503", later(6), base_delay=BASE, max_delay=MOST
    )
    assert (again.attempts, again.due_at, again.manual, again.error) == (1, dead.due_at, False, "still 503")
    store.queue.release(claim)
    assert store.queue.claim("w1", later(7), TTL) is None


def test_a_failure_of_an_item_completed_meanwhile_records_nothing(store: Store) -> None:
    store.queue.enqueue([Enqueue("inc1", "acme", "servicenow")], T0)
    claim = store.queue.claim("w1", T0, TTL)
    assert claim is not None and store.queue.complete(claim, claim.items, now=T0)
    store.queue.fail(claim.items[0], "Unavailable", "503", T0, base_delay=BASE, max_delay=MOST)
    assert store.queue.size() == 0 and store.dlq.list(None) == []


# --- reading -----------------------------------------------------------------------------------


def test_depth_and_size(store: Store) -> None:
    queue = store.queue
    assert queue.depth(T0) == {NEW: LaneDepth(), BULK: LaneDepth(), RECONCILE: LaneDepth()}
    assert queue.size() == 0
    dead = _dead(store, "inc5:acme")
    assert queue.size() == 1 and queue.depth(T0)[NEW] == LaneDepth(), "a letter is not pending work"
    assert store.dlq.drop(dead.item_id) and queue.size() == 0

    queue.enqueue(
        [
            Enqueue("inc1", "acme", "servicenow", NEW, T0 - timedelta(seconds=90)),
            Enqueue("inc2", "acme", "servicenow", NEW, T0 - timedelta(seconds=10)),
            Enqueue("inc3", "acme", "servicenow", NEW, later(30)),
            Enqueue("inc4", "acme", "reconcile", RECONCILE, later(600)),
        ],
        T0,
    )
    depth = queue.depth(T0)
    assert depth[NEW] == LaneDepth(2, 1, 90.0)
    assert depth[BULK] == LaneDepth() and depth[RECONCILE] == LaneDepth(0, 1, 0.0)
    assert queue.size() == 4
    first, second = queue.claim("w1", T0, TTL), queue.claim("w1", T0, TTL)
    assert entities(first) == ["inc1:acme"] and entities(second) == ["inc2:acme"]
    assert queue.depth(later(40))[NEW] == LaneDepth(3, 0, 130.0), "claimed or not, they wait"


def test_a_claim_check_passes_while_the_claim_is_ours_and_refuses_once_another_took_it(store: Store) -> None:
    from connector.core.errors import ClaimLost

    store.queue.enqueue([Enqueue("inc1", "acme", "servicenow")], T0)
    mine = store.queue.claim("w1", T0, TTL)
    assert mine is not None
    with store.transaction() as conn:
        store.queue.check(conn, mine)
    later_on = T0 + TTL + timedelta(seconds=1)
    with store.transaction() as conn:  # expired, but nobody took it: still ours
        store.queue.check(conn, mine)
    theirs = store.queue.claim("w2", later_on, TTL)
    assert theirs is not None
    with pytest.raises(ClaimLost), store.transaction() as conn:
        store.queue.check(conn, mine)
    with store.transaction() as conn:
        store.queue.check(conn, theirs)
