"""SQLite's one writer, shared by a process's threads: fresh work first, the background after."""

from __future__ import annotations

import threading
import time

from connector.core.priority import background
from connector.store.db import WriterLock


def _waiting(lock: WriterLock, urgent: int, patient: int) -> None:
    deadline = time.monotonic() + 10
    while (lock._waiting[lock._urgent], lock._waiting[lock._patient]) != (urgent, patient):
        assert time.monotonic() < deadline, "the waiters never queued"
        time.sleep(0.001)


def test_a_writer_somebody_waits_for_goes_before_background_writers_that_came_first() -> None:
    lock = WriterLock()
    assert lock.acquire(timeout=1)
    order: list[str] = []

    def write(name: str, behind: bool) -> None:
        with background(behind):
            assert lock.acquire(timeout=10)
        order.append(name)
        lock.release()

    threads = [threading.Thread(target=write, args=(f"backfill-{n}", True)) for n in range(3)]
    for thread in threads:
        thread.start()
    _waiting(lock, 0, 3)
    fresh = threading.Thread(target=write, args=("fresh", False))
    fresh.start()
    _waiting(lock, 1, 3)
    lock.release()
    for thread in [*threads, fresh]:
        thread.join(10)
    assert order[0] == "fresh"
    assert sorted(order[1:]) == ["backfill-0", "backfill-1", "backfill-2"]


def test_a_waiter_that_gives_up_leaves_the_lock_to_the_next() -> None:
    lock = WriterLock()
    assert lock.acquire(timeout=1)
    assert not lock.acquire(timeout=0.05), "held: the second writer gives up"
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(lock.acquire(timeout=10)))
    waiter.start()
    _waiting(lock, 1, 0)
    lock.release()
    waiter.join(10)
    assert got == [True]
    lock.release()
    assert lock.acquire(timeout=0.05)
