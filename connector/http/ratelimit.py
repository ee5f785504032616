"""Client-side pacing: we slow ourselves down before a platform has to throttle us.

* :class:`TokenBucket` - a site's request budget (requests per second with a burst, and an
  optional hourly cap such as a ServiceNow ``sys_rate_limit_rules`` entry);
* :class:`WriteWindows` - per-issue write limits in sliding windows (Jira allows 20 / 2 s and
  100 / 30 s per issue; we stay below with 15 / 2 s and 80 / 30 s by default);
* :class:`ThrottleGate` - after a 429 with ``Retry-After``, no request goes to that scope (an
  endpoint, an issue, or the whole site) until the time has passed.

All take an injected monotonic clock; :meth:`Limiter.wait` returns how long to sleep, so the
caller decides how (tests pass a fake clock and sleep).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def reserve(self) -> float:
        """Take one token; return how many seconds the caller must wait before using it."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class WriteWindows:
    """At most ``max`` writes per key within each ``(max, seconds)`` window.

    Only keys written to lately are remembered: a key whose newest booking is older than the
    longest window is forgotten (its history could delay nothing), so the memory is bounded by
    the keys written to in the last two windows, not by every issue ever written to.
    """

    def __init__(self, limits: Sequence[tuple[int, float]], clock: Clock = time.monotonic) -> None:
        self.limits = tuple(limits)
        self._clock = clock
        longest = max((seconds for _, seconds in self.limits), default=0.0)
        self._horizon = longest
        self._history: OrderedDict[str, deque[float]] = OrderedDict()
        """Key -> its booked write times, least recently booked key first."""

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._history)

    def reserve(self, key: str) -> float:
        """Book a write on ``key``; return the seconds to wait so that no window overflows."""
        now = self._clock()
        self._forget(now)
        history = self._history.get(key)
        if history is None:
            history = self._history[key] = deque()
        else:
            self._history.move_to_end(key)
        while history and history[0] <= now - self._horizon:
            history.popleft()
        start = now
        for maximum, seconds in self.limits:
            recent = [t for t in history if t > start - seconds]
            if len(recent) >= maximum:
                start = max(start, recent[len(recent) - maximum] + seconds)
        history.append(start)
        return max(0.0, start - now)

    def _forget(self, now: float) -> None:
        """Drop the least recently booked keys whose every booking has left the longest window.

        Stops at the first key still in it: the keys behind it were booked later, and a booking
        lies at most one window after its reserve unless writes to a key queue up, so what is
        left is the keys booked within the last two windows (plus those behind a queue).
        """
        while self._history:
            key, history = next(iter(self._history.items()))
            if history and history[-1] > now - self._horizon:
                return
            del self._history[key]


class ThrottleGate:
    """Scopes closed by the platform until a given time."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}
        self.on_close: Callable[[str, float], None] | None = None
        """Told ``(scope, seconds)`` of every closure, e.g. to keep it across a restart."""

    def __len__(self) -> int:
        """How many scopes are remembered (closed, or closed until lately)."""
        return len(self._until)

    def close(self, scope: str, seconds: float) -> None:
        """No request to ``scope`` for ``seconds`` (extends, never shortens, an existing closure)."""
        now = self._clock()
        # Scopes can be issues: forget the closures that have run out, not every scope ever closed.
        for ended in [name for name, until in self._until.items() if until <= now]:
            del self._until[ended]
        self._until[scope] = max(now + seconds, self._until.get(scope, 0.0))
        if self.on_close is not None:
            self.on_close(scope, seconds)

    def wait(self, scopes: Iterable[str]) -> float:
        """Seconds until every one of ``scopes`` is open again."""
        now = self._clock()
        return max([0.0, *(self._until.get(scope, now) - now for scope in scopes)])

    def closed(self) -> dict[str, float]:
        """Scopes still closed and the seconds left (for metrics and the status page)."""
        now = self._clock()
        return {scope: until - now for scope, until in self._until.items() if until > now}


class Limiter:
    """One site's pacing: its budget, its per-issue write windows and its throttle gate. Thread-safe."""

    def __init__(
        self,
        rate: float,
        burst: int,
        write_limits: Sequence[tuple[int, float]] = (),
        clock: Clock = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        *,
        per_hour: int | None = None,
    ) -> None:
        self.bucket = TokenBucket(rate, burst, clock)
        self.hourly = TokenBucket(per_hour / 3600, per_hour, clock) if per_hour else None
        self.writes = WriteWindows(write_limits, clock)
        self.gate = ThrottleGate(clock)
        self._sleep = sleep
        self._lock = threading.Lock()
        self.waited = 0.0
        """Total seconds this limiter made callers wait (a metric)."""

    def wait(self, scopes: Sequence[str], issue: str | None = None) -> float:
        """Block until a request to ``scopes`` (and a write to ``issue``, if given) may be sent.

        The gate is looked at again after every sleep: a 429 that another thread received while
        this one waited for a token closes the scope for this request too.
        """
        waited, reserved = 0.0, False
        while True:
            with self._lock:
                delay = self.gate.wait(scopes)
                if delay <= 0 and not reserved:
                    reserved = True
                    delay = self.bucket.reserve()
                    if self.hourly is not None:
                        delay = max(delay, self.hourly.reserve())
                    if issue is not None:
                        delay = max(delay, self.writes.reserve(issue))
                self.waited += max(0.0, delay)
            if delay <= 0:
                return waited
            self._sleep(delay)
            waited += delay

    def throttled(self, scope: str, retry_after: float) -> None:
        """The platform said 429 for ``scope``: keep everyone away for ``retry_after`` seconds."""
        with self._lock:
            self.gate.close(scope, retry_after)
