"""Workers: threads that claim incidents from the work queue and process them, fairly between lanes.

Fair scheduling. Each worker goes through :data:`SCHEDULE`, one lane per claim: the *new* lane (a
change seen on its own) five times in eight, *bulk* (a burst, a backfill, retries) twice,
*reconcile* once; a lane with nothing due gives its turn to the others, most urgent first. So
bulk work and reconciliation still move when fresh changes keep coming. A daemon also keeps one
worker in :data:`RESERVED_PER` for the new lane alone, so a fresh change is claimed at once even
while every other worker is deep in a backfill's claims. Within a lane, the earliest due item
goes first.

:func:`drain` processes everything due now (``sync --once``, tests); :class:`Workers` runs
``polling.workers`` threads until stopped (the daemon), woken by :meth:`Workers.wake` when its
own poller enqueued something, else looking again every :data:`IDLE_WAIT` seconds (work another
instance enqueued, retries falling due).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from connector.core.errors import ConnectorError
from connector.store.queue import BULK, NEW, RECONCILE
from connector.sync.cycle import CycleReport

if TYPE_CHECKING:
    from connector.sync.engine import Engine

log = logging.getLogger(__name__)

SCHEDULE = (NEW, NEW, BULK, NEW, RECONCILE, NEW, BULK, NEW)
"""The lane each claim of a worker tries first, in turn: new 5, bulk 2, reconcile 1 in 8."""
RESERVED_PER = 8
"""One worker in every eight (of the daemon's, when it has two or more) takes only the new lane."""
IDLE_WAIT = 0.5
"""Seconds an idle worker waits before looking at the queue again (unless woken)."""
report_lock = threading.Lock()
"""Serialises workers adding their claims' reports to a shared one."""


def lanes(start: int = 0) -> Iterator[tuple[int, ...]]:
    """For each claim in turn, the lanes to try in order: the scheduled one, then the rest by urgency."""
    for first in itertools.islice(itertools.cycle(SCHEDULE), start, None):
        yield (first, *(lane for lane in (NEW, BULK, RECONCILE) if lane != first))


def reserved(workers: int) -> int:
    """How many of a daemon's ``workers`` wait for fresh changes only: one in :data:`RESERVED_PER`, none of one."""
    return 0 if workers < 2 else -(-workers // RESERVED_PER)


def fresh_only() -> Iterator[tuple[int, ...]]:
    """The lanes of a reserved worker, claim after claim: the new lane only."""
    return itertools.repeat((NEW,))


def drain(engine: Engine, report: CycleReport, on_progress: Callable[[int, int], None] | None = None) -> None:
    """Process every item due now with ``polling.workers`` threads; returns when none is claimable.

    ``on_progress(done, total)`` is told after each claim (``total``: items waiting at the start).
    """
    total = engine.store.queue.size()
    done = [0]

    def worker(offset: int) -> None:
        for order in lanes(offset):
            if not engine.work(engine.instance_id, report, lanes=order):
                return
            if on_progress is not None:
                with report_lock:
                    done[0] += 1
                    on_progress(min(done[0], total), total)

    count = max(1, min(engine.workers, total))
    if count == 1:
        worker(0)
        return
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="worker") as pool:
        for _ in pool.map(worker, range(count)):
            pass


class Workers:
    """``count`` threads claiming from ``engine``'s queue as ``instance_id`` until :meth:`stop`.

    ``report`` gathers what they did (the daemon swaps it out after each tick). ``allowed()`` is
    asked before each claim (the daemon's lease may have lapsed: then nobody claims).
    """

    def __init__(
        self,
        engine: Engine,
        count: int,
        report: CycleReport,
        allowed: Callable[[], bool] = lambda: True,
    ) -> None:
        self.engine = engine
        self.count = count
        self.report = report
        self.allowed = allowed
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the threads."""
        for index in range(self.count):
            thread = threading.Thread(target=self._run, args=(index,), name=f"worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wake(self) -> None:
        """Something was enqueued: idle workers look now."""
        self._wake.set()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the claims in hand, then stop (waits at most ``timeout`` seconds per thread)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def _run(self, offset: int) -> None:
        schedule = fresh_only() if offset < reserved(self.count) else lanes(offset)
        while not self._stop.is_set():
            busy = False
            if self.allowed():
                # The claim reports into one of its own, added to ``self.report`` once it is done:
                # the daemon swaps ``self.report`` out every tick, and a claim spanning a swap must
                # land in the report that is current when it ends, not in the one already taken.
                claimed = CycleReport()
                try:
                    busy = self.engine.work(self.engine.instance_id, claimed, lanes=next(schedule))
                except ConnectorError as exc:
                    log.warning("a worker's claim failed: %s", exc)
                except Exception:  # the daemon outlives any single bug; the claim expires and is retried
                    log.exception("a worker's claim failed unexpectedly")
                finally:
                    with report_lock:
                        self.report.absorb(claimed)
            if not busy:
                self._wake.wait(IDLE_WAIT)
                self._wake.clear()
