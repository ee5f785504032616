"""Jira Cloud's rate limits as the daemon meets them: burst per endpoint and writes per issue.

Both are sliding windows over the server clock. A refusal carries what the 429 needs: the reason
(``jira-burst-based`` or ``jira-per-issue-on-write``), the limit and window, whole seconds to wait
and when the window frees up.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

RateReason = Literal["jira-burst-based", "jira-per-issue-on-write"]


@dataclass(frozen=True)
class RateRefusal:
    """Why and for how long a request is refused."""

    reason: RateReason
    limit: int
    window_seconds: float
    retry_after: int
    reset_at: datetime


def _refusal(
    reason: RateReason, hits: deque[datetime], limit: int, window: float, now: datetime
) -> RateRefusal:
    reset_at = hits[-limit] + timedelta(seconds=window) if limit else now + timedelta(seconds=window)
    wait = max(1, math.ceil((reset_at - now).total_seconds()))
    return RateRefusal(reason, limit, window, wait, reset_at)


def _trim(hits: deque[datetime], horizon: datetime) -> None:
    while hits and hits[0] <= horizon:
        hits.popleft()


class RateLimiter:
    """Counts accepted requests; not thread-safe (the app's lock guards it)."""

    def __init__(self) -> None:
        self._burst: dict[tuple[str, str], deque[datetime]] = {}
        self._writes: dict[str, deque[datetime]] = {}

    def burst(
        self, endpoint: str, method: str, now: datetime, per_second: int
    ) -> tuple[RateRefusal | None, int]:
        """Admit one request to ``endpoint``/``method`` or refuse it; also return the tokens left."""
        hits = self._burst.setdefault((endpoint, method), deque())
        _trim(hits, now - timedelta(seconds=1))
        if len(hits) >= per_second:
            return _refusal("jira-burst-based", hits, per_second, 1.0, now), 0
        hits.append(now)
        return None, per_second - len(hits)

    def issue_write(
        self, issue_id: str, now: datetime, limits: Sequence[tuple[int, float]]
    ) -> RateRefusal | None:
        """Admit one write to ``issue_id`` under every ``(writes, seconds)`` window, or refuse it."""
        hits = self._writes.setdefault(issue_id, deque())
        longest = max((window for _limit, window in limits), default=0.0)
        _trim(hits, now - timedelta(seconds=longest))
        for limit, window in limits:
            horizon = now - timedelta(seconds=window)
            recent = sum(1 for hit in hits if hit > horizon)
            if recent >= limit:
                inside = deque(hit for hit in hits if hit > horizon)
                return _refusal("jira-per-issue-on-write", inside, limit, window, now)
        hits.append(now)
        return None

    def clear(self) -> None:
        """Forget all counts (reset, or new settings)."""
        self._burst.clear()
        self._writes.clear()
