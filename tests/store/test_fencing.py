"""Role leases and fenced writes: one holder per role, and a taken-over holder's writes roll back.

Every test runs on SQLite and on PostgreSQL (the ``store`` fixture); the one about a concurrent
takeover waiting for a fenced transaction needs PostgreSQL's row locks and two connections.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from connector.core.errors import LeaseLost
from connector.store import Store
from connector.store.leases import (
    RECONCILER_ROLE,
    SERVICENOW_ROLE,
    Fence,
    Holder,
    Lease,
    Leases,
    fence,
    supplier_role,
)
from connector.store.tables import watermarks

TTL = timedelta(seconds=15)
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SOURCE = "servicenow:incident"


def holder(host: str = "host-a", pid: int = 101) -> Holder:
    return Holder("run", host, pid, T0 - timedelta(minutes=5), "")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def write_watermark(conn: Connection, position: str) -> None:
    """What a poller writes under its role: the watermark of its source."""
    values = {"position": position, "boundary": [], "updated_at": T0}
    if conn.execute(watermarks.update().where(watermarks.c.source == SOURCE).values(**values)).rowcount == 0:
        conn.execute(watermarks.insert().values(source=SOURCE, **values))


def stored_watermark(store: Store) -> str | None:
    with store.engine.connect() as conn:
        position: str | None = conn.execute(
            select(watermarks.c.position).where(watermarks.c.source == SOURCE)
        ).scalar_one_or_none()
    return position


def test_of_two_holders_one_takes_a_free_role_and_the_other_takes_it_once_it_expires(store: Store) -> None:
    clock = Clock()
    leases = Leases(store.engine, clock)
    first = leases.try_acquire(holder(), TTL, name=SERVICENOW_ROLE)
    assert first is not None and (first.epoch, first.expires_at) == (1, T0 + TTL)
    assert leases.try_acquire(holder("host-b", 202), TTL, name=SERVICENOW_ROLE) is None
    assert leases.try_acquire(holder("host-b", 202), TTL, name=RECONCILER_ROLE) is not None, (
        "each role is a lease of its own"
    )
    clock.now = T0 + TTL - timedelta(microseconds=1)
    assert leases.try_acquire(holder("host-b", 202), TTL, name=SERVICENOW_ROLE) is None
    clock.now = T0 + TTL
    second = leases.try_acquire(holder("host-b", 202), TTL, name=SERVICENOW_ROLE)
    assert second is not None and second.epoch == 2 and second.holder.host == "host-b"
    with pytest.raises(LeaseLost):
        leases.renew(first, TTL)


def test_a_released_role_is_free_at_once(store: Store) -> None:
    leases = store.leases
    first = leases.try_acquire(holder(), TTL, name=supplier_role("acme"))
    assert first is not None and first.name == "role:jira:acme"
    assert leases.release(first)
    second = leases.try_acquire(holder("host-b", 202), TTL, name=supplier_role("acme"))
    assert second is not None and second.epoch == 2


def test_racing_instances_for_a_free_role_have_exactly_one_winner(store: Store) -> None:
    taken: list[Lease | None] = []
    start = threading.Barrier(6)

    def contend(pid: int) -> None:
        leases = Leases(store.engine)
        start.wait()
        taken.append(leases.try_acquire(holder("host-x", pid), TTL, name=SERVICENOW_ROLE))

    threads = [threading.Thread(target=contend, args=(pid,)) for pid in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [lease for lease in taken if lease is not None]
    assert len(taken) == 6 and len(winners) == 1
    assert store.leases.get(SERVICENOW_ROLE) == winners[0]


def test_a_fenced_write_under_the_current_epoch_commits(store: Store) -> None:
    clock = Clock()
    leases = Leases(store.engine, clock)
    lease = leases.try_acquire(holder(), TTL, name=SERVICENOW_ROLE)
    assert lease is not None
    with store.transaction() as conn:
        fence(conn, lease)
        write_watermark(conn, "2026-11-22T10:00:00Z")
    clock.now = T0 + timedelta(minutes=5)  # expired, but nobody took it: nobody wrote under another epoch
    with store.transaction() as conn:
        write_watermark(conn, "2026-11-22T10:05:00Z")
        fence(conn, Fence(SERVICENOW_ROLE, lease.epoch))  # after the write works too
    assert stored_watermark(store) == "2026-11-22T10:05:00Z"


def test_a_write_fenced_by_a_lease_taken_over_is_rolled_back(store: Store) -> None:
    clock = Clock()
    leases = Leases(store.engine, clock)
    paused = leases.try_acquire(holder(), TTL, name=SERVICENOW_ROLE)
    assert paused is not None
    with store.transaction() as conn:
        fence(conn, paused)
        write_watermark(conn, "2026-11-22T10:00:00Z")
    clock.now = T0 + timedelta(minutes=1)  # the holder was paused (SIGSTOP, a GC pause, a partition)
    successor = leases.try_acquire(holder("host-b", 202), TTL, name=SERVICENOW_ROLE)
    assert successor is not None and successor.epoch == 2
    with store.transaction() as conn:
        fence(conn, successor)
        write_watermark(conn, "2026-11-22T10:01:00Z")

    with pytest.raises(LeaseLost) as lost, store.transaction() as conn:
        write_watermark(conn, "2026-11-22T10:00:30Z")  # the paused holder resumes with its old position
        fence(conn, paused)
    assert str(lost.value) == (
        "the role:servicenow lease (epoch 1) was taken over by mim-connector run on host-b "
        "(pid 202, started 2026-11-22 09:55:00Z) (epoch 2); this write is rolled back"
    )
    with pytest.raises(LeaseLost), store.transaction() as conn:
        fence(conn, paused)
        write_watermark(conn, "2026-11-22T10:00:30Z")
    assert stored_watermark(store) == "2026-11-22T10:01:00Z", "the successor's watermark stands"


def test_a_fence_on_a_lease_never_taken_refuses_the_write(store: Store) -> None:
    with pytest.raises(LeaseLost, match="taken over by nobody"), store.transaction() as conn:
        fence(conn, Fence(RECONCILER_ROLE, 1))
        write_watermark(conn, "2026-11-22T10:00:00Z")
    assert stored_watermark(store) is None


def test_the_leases_are_listed_with_their_holders_and_a_process_sees_its_live_ones(store: Store) -> None:
    clock = Clock()
    leases = Leases(store.engine, clock)
    mine = [leases.try_acquire(holder(), TTL, name=role) for role in (SERVICENOW_ROLE, RECONCILER_ROLE)]
    theirs = leases.try_acquire(holder("host-b", 202), TTL, name=supplier_role("acme"))
    assert theirs is not None
    assert [lease.name for lease in leases.all()] == ["role:jira:acme", "role:reconciler", "role:servicenow"]
    assert leases.held_by("host-a", 101) == [mine[1], mine[0]]
    assert leases.held_by("host-b", 202) == [theirs]
    assert leases.release(theirs)
    assert leases.held_by("host-b", 202) == []
    clock.now = T0 + TTL
    assert leases.held_by("host-a", 101) == [], "expired leases are not held"
    assert len(leases.all()) == 3, "but still listed"


def test_a_long_supplier_name_still_makes_a_role_name_that_fits_and_is_its_own() -> None:
    long_names = ["a" * 60 + "-north", "a" * 60 + "-south"]
    roles = [supplier_role(name) for name in long_names]
    assert all(len(role) == 64 and role.startswith("role:jira:aaaa") for role in roles)
    assert roles[0] != roles[1]
    assert supplier_role("acme") == "role:jira:acme"


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_takeover_waits_for_a_fenced_transaction_to_end(store: Store) -> None:
    clock = Clock()
    leases = Leases(store.engine, clock)
    paused = leases.try_acquire(holder(), TTL, name=SERVICENOW_ROLE)
    assert paused is not None
    clock.now = T0 + timedelta(minutes=1)  # expired: a successor may take it
    taken: list[Lease | None] = []
    successor = threading.Thread(
        target=lambda: taken.append(leases.try_acquire(holder("host-b", 202), TTL, name=SERVICENOW_ROLE))
    )
    with store.transaction() as conn:
        fence(conn, paused)
        successor.start()
        _wait_until_blocked(store, successor)
        write_watermark(conn, "2026-11-22T10:00:30Z")
        seen = conn.execute(text("SELECT epoch FROM leases WHERE name = :name"), {"name": SERVICENOW_ROLE})
        assert seen.scalar_one() == 1, "the successor has not bumped the epoch under our fence"
    successor.join(30)
    assert [lease.epoch if lease else None for lease in taken] == [2], "then it took the role"
    assert stored_watermark(store) == "2026-11-22T10:00:30Z", "the write made under the fence stands"
    with pytest.raises(LeaseLost), store.transaction() as conn:
        fence(conn, paused)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_a_holder_frozen_inside_a_fenced_transaction_holds_up_a_takeover_only_until_its_ttl(
    store: Store, store_url: str
) -> None:
    """A holder stopped (SIGSTOP, a paused VM) with a fenced transaction open: the server ends that
    transaction once it is idle for the lease TTL, and the successor's takeover goes through."""
    ttl = timedelta(seconds=1)
    frozen = Store.open(store_url, actor="frozen-instance", idle_timeout=ttl)
    try:
        paused = frozen.leases.try_acquire(holder(), ttl, name=SERVICENOW_ROLE)
        assert paused is not None
        conn = frozen.engine.connect()
        conn.begin()
        fence(conn, paused)  # ... and the process stops here, its transaction open
        time.sleep(ttl.total_seconds())
        taken: list[Lease | None] = []
        successor = threading.Thread(
            target=lambda: taken.append(
                store.leases.try_acquire(holder("host-b", 202), ttl, name=SERVICENOW_ROLE)
            ),
            daemon=True,
        )
        successor.start()
        successor.join(10 * ttl.total_seconds())
        assert [lease.epoch if lease else None for lease in taken] == [2], "the successor took the role"
        with pytest.raises(DBAPIError, match="idle-in-transaction"):  # resumed, it finds its transaction gone
            write_watermark(conn, "2026-11-22T10:00:30Z")
        conn.close()
    finally:
        frozen.close()
    with pytest.raises(LeaseLost), store.transaction() as other:
        fence(other, paused)


@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_fenced_transactions_under_one_lease_do_not_wait_for_each_other(store: Store) -> None:
    lease = store.leases.try_acquire(holder(), TTL, name=SERVICENOW_ROLE)
    assert lease is not None
    with store.transaction() as first, store.transaction() as second:
        fence(first, lease)
        # Were the fence exclusive, this would wait for `first`, which waits for this: an error, not a hang.
        second.execute(text("SET LOCAL lock_timeout = '5s'"))
        fence(second, lease)


def _wait_until_blocked(store: Store, thread: threading.Thread) -> None:
    """Until PostgreSQL shows another backend of this database waiting for a lock (or ``thread`` ended).

    Only the takeover can wait for one here. (Its query column may read ``BEGIN``: psycopg sends
    that and the ``UPDATE`` together.) PostgreSQL keeps one snapshot of the activity per
    transaction: each look is a transaction of its own.
    """
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    with store.engine.connect() as observer:
        while observer.execute(waiting).scalar_one() == 0:
            observer.rollback()
            assert thread.is_alive(), "the takeover did not wait for the fenced transaction"
            assert time.monotonic() < deadline, "the takeover never started"
            time.sleep(0.01)
