"""The search index with its lag: writes reach search only ``index_lag_seconds`` after they happen.

Every write queues a snapshot of the issue (or a tombstone for a delete) with its time. When search
looks, queued snapshots at least ``lag`` old are applied to the index, which then holds, per issue,
the newest applied state; direct reads use the live issue instead. The lag is applied when
searching, so lowering it at runtime releases pending writes at once, and raising it never takes
back what search has already seen (an index does not go backwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from connector.sandbox.jira.model import Issue


class SearchIndex:
    """Indexed and pending issue states; not thread-safe (the app's lock guards it)."""

    def __init__(self) -> None:
        self._indexed: dict[str, Issue] = {}
        self._pending: dict[str, list[tuple[datetime, Issue | None]]] = {}

    def record(self, issue_id: str, snapshot: Issue | None, written_at: datetime) -> None:
        """Queue the state of ``issue_id`` after a write (``None``: deleted)."""
        self._pending.setdefault(issue_id, []).append((written_at, snapshot))

    def visible(self, now: datetime, lag_seconds: float) -> Iterator[Issue]:
        """Apply the writes at least ``lag_seconds`` old, then yield every indexed issue."""
        horizon = now - timedelta(seconds=lag_seconds)
        for issue_id in list(self._pending):
            versions = self._pending[issue_id]
            due = [version for version in versions if version[0] <= horizon]
            if not due:
                continue
            snapshot = due[-1][1]
            if snapshot is None:
                self._indexed.pop(issue_id, None)
            else:
                self._indexed[issue_id] = snapshot
            remaining = versions[len(due) :]
            if remaining:
                self._pending[issue_id] = remaining
            else:
                del self._pending[issue_id]
        yield from list(self._indexed.values())

    def clear(self) -> None:
        """Forget everything (reset)."""
        self._indexed.clear()
        self._pending.clear()
