"""A wall clock that moves only when a test says so; shared by the fakes and the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """Timezone-aware UTC time, starting at ``start`` (default: now, to the second) and moved by :meth:`advance`.

    It starts at the real time because the store stamps its own rows (intents, dead letters) with
    the real clock; from there only the test moves it.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``; returns the new time."""
        self.now += timedelta(**delta)
        return self.now
