"""After the last fault: how many poll cycles until the daemon converged, and whether it then stays idle.

Measured from the journals, without touching the daemon. A *cycle* starts with the connector's
incident poll (``GET /api/now/table/incident`` with ``sys_updated_on>=``). Once the faults are
healed at ``t0`` nobody but the connector writes, so the state stops changing with its last
write: the cycles that started after ``t0`` up to the one that made the last write are an upper
bound of the cycles it took to converge (exact when that last write was needed). The daemon is
considered settled once ``quiet`` cycles in a row made no write; the checker then confirms the
state is the oracle's. :func:`idle_writes` then counts writes during the next cycles, which must
be none (no echo, no no-op rewrites, the sweep included).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tests.scenarios.journal import JournalCollector, Request
from tests.scenarios.stage import JIRA_USER, SN_USER

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class Convergence:
    """How the daemon settled after ``t0``."""

    cycles: int
    """Cycles started after ``t0`` up to and including the one of the last write (0: no write)."""
    seconds: float
    """From ``t0`` to the end of the last write."""
    writes: int


def is_write(request: Request) -> bool:
    """A request by the connector that changes something (searches sent by POST excluded)."""
    return request.user in (SN_USER, JIRA_USER) and request.method in WRITES and "/search" not in request.path


def _after(journal: JournalCollector, t0: float) -> tuple[list[float], list[Request]]:
    recent = journal.after(t0)
    polls = sorted(r.start for r in recent if r.incident_poll and r.user == SN_USER)
    writes = sorted((r for r in recent if is_write(r)), key=lambda r: r.start)
    return polls, writes


def converge(journal: JournalCollector, t0: float, *, quiet: int = 3, limit: float = 120.0) -> Convergence:
    """Wait until ``quiet`` cycles in a row wrote nothing; raise ``AssertionError`` after ``limit`` s."""
    deadline = time.time() + limit
    while True:
        polls, writes = _after(journal, t0)
        last = writes[-1].start if writes else t0
        if sum(1 for p in polls if p > last) > quiet:
            break
        if time.time() > deadline:
            raise AssertionError(
                f"no convergence {limit:.0f}s after the last fault: {len(writes)} writes in {len(polls)} cycles"
            )
        time.sleep(0.2)
    if not writes:
        return Convergence(0, 0.0, 0)
    cycles = max(1, sum(1 for p in polls if p <= writes[-1].start))
    return Convergence(cycles, writes[-1].end - t0, len(writes))


def idle_writes(journal: JournalCollector, cycles: int = 10, limit: float = 60.0) -> list[Request]:
    """The connector's writes during the next ``cycles`` complete cycles (from now)."""
    t1 = time.time()
    deadline = t1 + limit
    while True:
        polls, writes = _after(journal, t1)
        if len(polls) > cycles:
            return [w for w in writes if w.start < polls[cycles]]
        if time.time() > deadline:
            raise AssertionError(f"only {len(polls)} cycles in {limit:.0f}s")
        time.sleep(0.2)
