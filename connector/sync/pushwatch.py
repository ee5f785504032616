"""Changes a poll found that push should have delivered: the ``push missed`` count and its warning.

With push on, a poll should find nothing push has not already announced. A version the poll
finds is judged once it is :data:`GRACE` old (a delivery may still be on its way when the poll
runs early); younger ones wait for the next poll. Each missed version is counted in
``mim_push_missed_total{source}``; every :data:`WARN_AFTER` misses of a source make one warning
that names it (at most one per :data:`WARN_EVERY`): its webhook or business rule is probably not
registered, or the proxy in front of the receiver drops deliveries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from connector.telemetry import metrics

log = logging.getLogger(__name__)

GRACE = timedelta(seconds=30)
"""How long after a change its delivery may still arrive."""
WARN_AFTER = 3
"""Misses of one source that make a warning."""
WARN_EVERY = timedelta(minutes=10)
"""At most one warning per source this often."""
PENDING_LIMIT = 10_000
"""Versions awaiting judgement kept per source, at most (the newest)."""


class PushWatch:
    """Judges the versions polls find against what was pushed; one per observer (its polls' memory)."""

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, datetime | None]] = {}
        self._misses: dict[str, int] = {}
        self._warned: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def judge(
        self,
        source: str,
        found: Mapping[str, datetime | None],
        delivered: Callable[[Iterable[str]], set[str]],
        now: datetime,
    ) -> int:
        """Count the versions of ``source`` old enough to judge that push never delivered; returns how many.

        ``found`` maps the versions this poll found to their change time (``None``: unknown, judged
        at once); ``delivered(versions)`` says which were pushed; ``now`` is on the source's clock.
        """
        with self._lock:
            candidates = {**self._pending.get(source, {}), **found}
            due = [v for v, at in candidates.items() if at is None or now - at >= GRACE]
            waiting = [(v, at) for v, at in candidates.items() if at is not None and now - at < GRACE]
            self._pending[source] = dict(waiting[-PENDING_LIMIT:])
        if not due:
            return 0
        missed = len(set(due) - delivered(due))
        if missed:
            metrics.PUSH_MISSED.labels(source).inc(missed)
            self._note(source, missed, now)
        return missed

    def _note(self, source: str, missed: int, now: datetime) -> None:
        with self._lock:
            count = self._misses[source] = self._misses.get(source, 0) + missed
            last = self._warned.get(source)
            if count < WARN_AFTER or (last is not None and now - last < WARN_EVERY):
                return
            self._misses[source], self._warned[source] = 0, now
        log.warning(
            "%s: %d change(s) found by polling were never pushed: is the webhook (or the ServiceNow "
            "business rule) registered for this connector, and does the proxy let it through? "
            "(mim-connector doctor; docs/push.md)",
            source,
            count,
        )
