"""The search index with its lag: writes reach search only ``index_lag_seconds`` after they happen.

Every write queues a snapshot of the issue (or a tombstone for a delete) with its time. When search
looks, queued snapshots at least ``lag`` old are applied to the index, which then holds, per issue,
the newest applied state; direct reads use the live issue instead. The lag is applied when
searching, so lowering it at runtime releases pending writes at once, and raising it never takes
back what search has already seen (an index does not go backwards).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from connector.sandbox.jira.model import Issue


class SearchIndex:
    """Indexed and pending issue states; not thread-safe (the app's lock guards it).

    A write is due once ``lag`` has passed on the server clock (so moving that clock forward
    releases it, as tests do) or, with a ``real_clock``, in real time: a server clock set back
    must not hold writes back by the size of the step.
    """

    def __init__(self, real_clock: Callable[[], datetime] | None = None) -> None:
        self._indexed: dict[str, Issue] = {}
        self._pending: dict[str, list[tuple[datetime, datetime, Issue | None]]] = {}
        self._real = real_clock

    def record(self, issue_id: str, snapshot: Issue | None, written_at: datetime) -> None:
        """Queue the state of ``issue_id`` after a write (``None``: deleted)."""
        real = self._real() if self._real is not None else written_at
        self._pending.setdefault(issue_id, []).append((written_at, real, snapshot))

    def visible(self, now: datetime, lag_seconds: float) -> Iterator[Issue]:
        """Apply the writes at least ``lag_seconds`` old, then yield every indexed issue."""
        lag = timedelta(seconds=lag_seconds)
        horizon = now - lag
        real_horizon = self._real() - lag if self._real is not None else horizon
        for issue_id in list(self._pending):
            versions = self._pending[issue_id]
            count = 0
            for written_at, real, _snapshot in versions:
                if written_at > horizon and real > real_horizon:
                    break
                count += 1
            if not count:
                continue
            snapshot = versions[count - 1][2]
            if snapshot is None:
                self._indexed.pop(issue_id, None)
            else:
                self._indexed[issue_id] = snapshot
            remaining = versions[count:]
            if remaining:
                self._pending[issue_id] = remaining
            else:
                del self._pending[issue_id]
        yield from list(self._indexed.values())

    def clear(self) -> None:
        """Forget everything (reset)."""
        self._indexed.clear()
        self._pending.clear()
