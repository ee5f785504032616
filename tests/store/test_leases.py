"""The store's lease (one writer per store) and serialised migrations, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from connector.core.errors import LeaseLost, StoreInUse
from connector.runtime.lease import LeaseKeeper, this_process, vacated
from connector.store import Store
from connector.store import tables as store_schema
from connector.store.leases import Holder, Leases

TTL = timedelta(seconds=45)
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def holder(host: str = "host-a", pid: int = 101) -> Holder:
    return Holder("run", host, pid, T0 - timedelta(minutes=5), "")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_a_live_lease_refuses_another_holder_and_says_whose_it_is_and_until_when(store: Store) -> None:
    clock = Clock()
    leases = Leases(store.engine, clock)
    first = leases.acquire(holder(), TTL)
    assert (first.epoch, first.expires_at) == (1, T0 + TTL)
    clock.now = T0 + timedelta(seconds=44)
    with pytest.raises(StoreInUse) as refused:
        leases.acquire(holder("host-b", 202), TTL, label="the-store", advice="stop it first")
    assert str(refused.value) == (
        "state store the-store is in use by mim-connector run on host-a (pid 101, started 2026-11-22 09:55:00Z): "
        "its lease runs until 2026-11-22 10:00:45Z and is renewed while it runs; stop it first"
    )
    assert leases.get() == first


def test_renewal_extends_the_lease_and_an_expired_one_changes_hands_under_a_new_epoch(store: Store) -> None:
    clock = Clock()
    leases = Leases(store.engine, clock)
    first = leases.acquire(holder(), TTL)
    clock.now = T0 + timedelta(seconds=40)
    first = leases.renew(first, TTL)
    assert (first.epoch, first.expires_at) == (1, T0 + timedelta(seconds=85))
    clock.now = T0 + timedelta(seconds=80)
    with pytest.raises(StoreInUse):
        leases.acquire(holder("host-b", 202), TTL)
    clock.now = T0 + timedelta(seconds=86)
    second = leases.acquire(holder("host-b", 202), TTL)
    assert second.epoch == 2 and second.holder.host == "host-b"
    # The old holder learns it lost the lease at its next renewal: the epoch is the fencing token.
    with pytest.raises(LeaseLost, match=r"epoch 1\) was taken over by mim-connector run on host-b \(pid 202"):
        leases.renew(first, TTL)
    assert not leases.release(first), "a lost lease cannot be released by its old holder"
    assert leases.get() == second


def test_an_expired_lease_nobody_took_is_renewed_under_its_own_epoch(store: Store) -> None:
    clock = Clock()
    leases = Leases(store.engine, clock)
    first = leases.acquire(holder(), TTL)
    clock.now = T0 + timedelta(minutes=5)  # e.g. the holder was paused (SIGSTOP) for 5 minutes
    assert leases.renew(first, TTL).epoch == 1


def test_release_frees_the_lease_at_once_on_the_database_clock(store: Store) -> None:
    leases = store.leases
    first = leases.acquire(holder(), TTL)
    with pytest.raises(StoreInUse):
        leases.acquire(holder("host-b", 202), TTL)
    assert leases.release(first)
    second = leases.acquire(holder("host-b", 202), TTL)
    assert second.epoch == 2
    assert second.expires_at - second.acquired_at == TTL
    assert abs(second.acquired_at - leases.now()) < timedelta(minutes=1)


def test_a_vacated_lease_is_taken_over_before_it_expires(store: Store) -> None:
    leases = store.leases
    leases.acquire(holder(), TTL)
    taken = leases.acquire(holder("host-a", 102), TTL, vacated=lambda lease: lease.holder.pid == 101)
    assert taken.epoch == 2


def test_racing_processes_for_a_free_lease_have_exactly_one_winner(store: Store) -> None:
    winners: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(6)

    def contend(pid: int) -> None:
        leases = Leases(store.engine)
        start.wait()
        try:
            leases.acquire(holder("host-x", pid), TTL)
            winners.append(pid)
        except StoreInUse:
            refused.append(pid)

    threads = [threading.Thread(target=contend, args=(pid,)) for pid in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1 and len(refused) == 5
    lease = store.leases.get()
    assert lease is not None and lease.epoch == 1 and lease.holder.pid == winners[0]


def test_a_holder_on_this_machine_is_gone_once_its_process_is(store: Store) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = this_process("run")
        assert me.process_key, "this machine exposes /proc"
        boot, namespace, _ticks = me.process_key.split("|")
        ticks = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        theirs = Holder("run", me.host, child.pid, me.started_at, f"{boot}|{namespace}|{ticks}")
        lease = store.leases.acquire(theirs, TTL)
        assert not vacated(lease), "the holder still runs"
        assert not vacated(store.leases.acquire(me, TTL, vacated=lambda _lease: True)), "nor do we"
    finally:
        child.kill()
        child.wait()
    assert vacated(lease), "its process is gone"
    elsewhere = Holder("run", "another-host", child.pid, me.started_at, theirs.process_key)
    assert not vacated(store.leases.acquire(elsewhere, TTL, vacated=lambda _lease: True)), (
        "a holder on another host is left to the lease's expiry"
    )


def test_the_keeper_renews_from_its_thread_and_releases_on_stop(store: Store) -> None:
    keeper = LeaseKeeper(store, "run", TTL, timedelta(milliseconds=20))
    first = keeper.acquire("stop it first")
    keeper.start(lambda _exc: None)
    deadline = time.monotonic() + 10
    while (current := store.leases.get()) is not None and current.renewed_at == first.renewed_at:
        assert time.monotonic() < deadline, "the keeper's thread never renewed the lease"
        time.sleep(0.02)
    assert current is not None and current.expires_at > first.expires_at and current.epoch == first.epoch
    assert keeper.holding()
    keeper.release()
    lease = store.leases.get()
    assert lease is not None and lease.epoch == first.epoch
    assert lease.expires_at <= store.leases.now()


def test_the_keeper_reports_a_takeover_and_stops_holding(store: Store) -> None:
    keeper = LeaseKeeper(store, "run", TTL, timedelta(milliseconds=20))
    keeper.acquire("stop it first")
    store.leases.acquire(holder("host-b", 202), TTL, vacated=lambda _lease: True)
    lost: list[LeaseLost] = []
    done = threading.Event()
    keeper.start(lambda exc: (lost.append(exc), done.set()))
    assert done.wait(10)
    assert re.search(r"taken over by mim-connector run on host-b \(pid 202", str(lost[0]))
    assert not keeper.holding() and keeper.lost is lost[0]
    keeper.release()
    lease = store.leases.get()
    assert lease is not None and lease.holder.host == "host-b", "the successor's lease is left alone"


def _open(url: str, start: Any, outcomes: Any) -> None:
    start.wait()
    try:
        Store.open(url).close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test with it
        outcomes.put(f"{type(exc).__name__}: {exc}")
        return
    outcomes.put("ok")


def test_processes_opening_a_new_store_at_once_migrate_it_once(store_url: str) -> None:
    context = multiprocessing.get_context("fork")
    start, outcomes = context.Barrier(4), context.Queue()
    processes = [context.Process(target=_open, args=(store_url, start, outcomes)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert sorted(outcomes.get(timeout=5) for _ in processes) == ["ok"] * 4
    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(store_schema.meta)).scalar()
            version = conn.execute(select(store_schema.meta.c.value)).scalar()
        assert (rows, version) == (1, str(store_schema.SCHEMA_VERSION))
    finally:
        store.close()


def test_a_new_sqlite_store_opens_while_another_process_holds_its_first_write(tmp_path: Path) -> None:
    """Switching a new file to WAL meets "database is locked" at once, without SQLite's busy wait."""
    path = tmp_path / "state.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE elsewhere (x INTEGER)")
    threading.Timer(0.3, other.execute, args=("COMMIT",)).start()
    try:
        store = Store.open(f"sqlite:///{path}")
        store.close()
    finally:
        time.sleep(0.3)
        other.close()


def test_a_lease_not_renewed_within_its_ttl_is_no_longer_held_until_renewed(store: Store) -> None:
    seconds = [0.0]
    keeper = LeaseKeeper(store, "run", TTL, timedelta(seconds=10), clock=lambda: seconds[0])
    first = keeper.acquire("stop it first")
    seconds[0] = 44.0
    assert keeper.holding()
    seconds[0] = 45.0  # every renewal since the acquisition failed (e.g. the database was unreachable)
    assert not keeper.holding(), "a daemon runs no cycle on a lease that may have passed to another"
    keeper.renew()  # nobody took it meanwhile: the same epoch is renewed, the daemon carries on
    assert keeper.holding() and keeper.lease is not None and keeper.lease.epoch == first.epoch
    keeper.release()
