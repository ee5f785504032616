"""The reconciler: every active link re-checked in turn, at a small share of each system's budget.

Polling sees what changed; the reconciler catches what it could not (a change a search never
showed, a comment only a direct read shows, a write lost with its answer). Instead of re-reading
every link at once, it hands the work queue a few links at a time, least recently checked
first, at the pace :func:`allowance` sets: every active link once per ``reconcile.interval``,
but never more than ``reconcile.share`` of any system's ``rate_budget.requests_per_second``.
When that share is too small for all links in one interval, a round simply takes longer.
Polling is never delayed: the re-checks go to the queue's reconcile lane, which workers serve
after fresher work, and the reconciler adds nothing while re-checks still wait there.

A link whose incident has been closed (or canceled) for longer than ``reconcile.retire_after``
gets one last check and is retired (:func:`retirement`, decided by the worker that processed
it); a reopened incident brings its links back (``store.links.unretire``).

One instance on a store holds the reconciler role and calls :meth:`Reconciler.tick` about once
a second.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection

from connector.config import LoadedConfig
from connector.core.times import servicenow_time_or_none
from connector.core.vocabulary import FINAL_STATES
from connector.store import Store
from connector.store.db import utcnow
from connector.store.queue import RECONCILE, Enqueue

CALLS_PER_CHECK = 3
"""Requests a re-check costs, about: a ServiceNow incident read, a journal read, a Jira issue
read. Counted against every system's budget: no system is asked for more than its share."""
BURST_SECONDS = 5.0
"""Credit never grows beyond this many seconds' worth of checks (at least one check): after a
pause (a stop, back-pressure, a slow tick) the reconciler resumes its pace, not with a burst."""
WAITING_LIMIT = 16
"""Re-checks that may wait in the queue; with more, a tick adds none (no backlog of re-checks
competing with new work)."""
COUNT_EVERY = timedelta(minutes=1)
"""How often the number of active links (the pace's target) is counted again."""
REASON = "reconcile"


@dataclass(frozen=True)
class Pace:
    """What :func:`allowance` decided: checks to enqueue now, credit carried to the next tick."""

    checks: int
    carried: float
    per_second: float
    """The pace it kept: checks per second."""


def pace(active_links: int, interval: timedelta, share: float, budgets_rps: Mapping[str, float]) -> float:
    """Checks per second: ``min(active_links / interval, min over systems of share * rps / CALLS_PER_CHECK)``."""
    seconds = interval.total_seconds()
    wanted = active_links / seconds if seconds > 0 else float(active_links)
    budget = min((share * rps / CALLS_PER_CHECK for rps in budgets_rps.values()), default=wanted)
    return max(0.0, min(wanted, budget))


def allowance(
    active_links: int,
    interval: timedelta,
    share: float,
    budgets_rps: Mapping[str, float],
    elapsed_seconds: float,
    carried: float,
) -> Pace:
    """How many checks to enqueue now, ``elapsed_seconds`` after the previous tick.

    The checks come at :func:`pace`: the fraction of a check a tick earns is carried to the next
    (``carried`` in, ``Pace.carried`` out), so checks are spread evenly whatever the tick rate;
    the credit is capped at :data:`BURST_SECONDS` worth (at least one check).
    """
    per_second = pace(active_links, interval, share, budgets_rps)
    if per_second <= 0:
        return Pace(0, 0.0, 0.0)
    cap = max(1.0, per_second * BURST_SECONDS)
    credit = min(max(0.0, carried) + per_second * max(0.0, elapsed_seconds), cap)
    # A tolerance for float sums: twelve ticks of 1/12 make one check, not 0.9999...
    checks = math.floor(credit + 1e-9)
    return Pace(checks, max(0.0, credit - checks), per_second)


def retirement(
    incident_state: str,
    closed_at: datetime | None,
    now: datetime,
    retire_after: timedelta,
    final_states: Collection[str] = FINAL_STATES,
) -> bool:
    """Whether to retire an incident's links after this check: final state, closed longer than ``retire_after``.

    An incident in a final state whose closing time is unknown is not retired.
    """
    if incident_state not in final_states or closed_at is None:
        return False
    return now - closed_at > retire_after


def closed_since(fields: Mapping[str, str]) -> datetime | None:
    """When an incident closed: its ``closed_at``, else ``resolved_at``, else ``sys_updated_on``.

    The last is never earlier than the closing (later, if the incident changed since), so an
    incident whose poll did not read the first two retires later, never sooner.
    """
    for name in ("closed_at", "resolved_at", "sys_updated_on"):
        if moment := servicenow_time_or_none(fields.get(name, "")):
            return moment
    return None


class Reconciler:
    """Hands the work queue the links to re-check, a few at a time (see the module's contract)."""

    def __init__(
        self,
        store: Store,
        loaded: LoadedConfig,
        suppliers: Collection[str],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``suppliers``: the enabled ones; only their links are re-checked, only their budgets count."""
        self.store = store
        self.settings = loaded.connector.reconcile
        self.suppliers = frozenset(suppliers)
        connector = loaded.connector
        self.budgets_rps: dict[str, float] = {
            "servicenow": connector.servicenow.rate_budget.requests_per_second,
            **{
                f"jira:{name}": site.jira.rate_budget.requests_per_second
                for name, site in connector.suppliers.items()
                if name in self.suppliers
            },
        }
        self.clock = clock
        self.carried = 0.0
        self.last_pace = 0.0
        """Checks per second at the last tick (for metrics)."""
        self._last_tick: datetime | None = None
        self._active = 0
        self._counted_at: datetime | None = None

    def tick(self, now: datetime | None = None, *, conn: Connection | None = None) -> list[Enqueue]:
        """The re-checks due now, their links marked checked; the caller enqueues them.

        Nothing while more than :data:`WAITING_LIMIT` re-checks wait in the queue (the time held
        back earns no credit). The first tick only starts the clock. The links are marked in
        ``conn``'s transaction when given: enqueue the items in it too, and a crash between the
        two cannot leave links marked that were never enqueued (else they wait one more round).
        """
        now = now if now is not None else self.clock()
        elapsed = (now - self._last_tick).total_seconds() if self._last_tick is not None else 0.0
        self._last_tick = now
        if self.store.links.waiting_checks(WAITING_LIMIT + 1) > WAITING_LIMIT:
            return []
        settings = self.settings
        decided = allowance(
            self._active_links(now),
            settings.interval,
            settings.share,
            self.budgets_rps,
            elapsed,
            self.carried,
        )
        self.carried, self.last_pace = decided.carried, decided.per_second
        if not decided.checks:
            return []
        taken = self.store.links.take_for_check(now, decided.checks, self.suppliers, conn=conn)
        return [
            Enqueue(recheck.incident_sys_id, recheck.supplier, REASON, lane=RECONCILE, full_journal=True)
            for recheck in taken
        ]

    def _active_links(self, now: datetime) -> int:
        """Active links of the enabled suppliers, counted again every :data:`COUNT_EVERY`."""
        if self._counted_at is None or not timedelta(0) <= now - self._counted_at < COUNT_EVERY:
            self._active, _ = self.store.links.reconcile_counts(self.suppliers)
            self._counted_at = now
        return self._active
