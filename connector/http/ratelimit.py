"""Client-side pacing: we slow ourselves down before a platform has to throttle us.

* :class:`TokenBucket` - a site's request budget (requests per second with a burst, and an
  optional hourly cap such as a ServiceNow ``sys_rate_limit_rules`` entry);
* :class:`WriteWindows` - per-issue write limits in sliding windows (Jira allows 20 / 2 s and
  100 / 30 s per issue; we stay below with 15 / 2 s and 80 / 30 s by default);
* :class:`ThrottleGate` - after a 429 with ``Retry-After``, no request goes to that scope (an
  endpoint, an issue, or the whole site) until the time has passed.

Several instances on one store keep to one budget per site between them: each takes a *share* of
the site's budget (:meth:`Limiter.set_share`, ``1/N`` of N live instances, set at every heartbeat
by :mod:`connector.runtime.membership`), and closes locally the scopes another instance was
throttled on (:meth:`Limiter.honour`).

Requests of background work (:func:`connector.core.priority.background`: a backfill, a burst,
re-checks) do not book tokens ahead: they line up among themselves and the first in line takes a
token only when one is free, so a request somebody waits for (a poll, a fresh change) books the
next free token and is never queued behind a backlog's bookings.

All take an injected monotonic clock; :meth:`Limiter.wait` returns how long to sleep, so the
caller decides how (tests pass a fake clock and sleep).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence

from connector.core.priority import in_background

Clock = Callable[[], float]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; :meth:`set_share` takes a part of it.

    ``rate`` and ``burst`` are the bucket as used now (the configured budget times the share);
    ``full_rate`` and ``full_burst`` stay the configured budget.
    """

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        self.full_rate = rate
        self.full_burst = float(burst)
        self.rate = rate
        self.burst = float(burst)
        self.share = 1.0
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def reserve(self) -> float:
        """Take one token; return how many seconds the caller must wait before using it."""
        self._refill()
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def free_in(self) -> float:
        """Seconds until a token is free without booking one (0: one is free now; see :meth:`take`)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def take(self) -> None:
        """Take the token :meth:`free_in` found free (under the same lock)."""
        self._tokens -= 1.0

    def set_share(self, share: float) -> None:
        """Use ``share`` (0 < share ≤ 1) of the configured budget from now on.

        The rate is scaled by ``share``, the burst too but never below one request (a bucket
        that cannot hold one token would refuse every call). Tokens saved up are scaled with
        the burst, so the bucket stays as full as it was; reservations already booked into the
        future (negative tokens) keep their times: a debt of ``d`` tokens at rate ``r`` is
        ``d / r`` seconds, the same after scaling both by the change of rate.
        """
        if not 0 < share <= 1:
            raise ValueError(f"a share of a budget is in (0, 1], not {share}")
        self._refill()
        rate, burst = self.full_rate * share, max(1.0, self.full_burst * share)
        scale = burst / self.burst if self._tokens > 0 else rate / self.rate
        self._tokens *= scale
        self.rate, self.burst, self.share = rate, burst, share

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now


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

    def close(self, scope: str, seconds: float, *, announce: bool = True) -> None:
        """No request to ``scope`` for ``seconds`` (extends, never shortens, an existing closure).

        ``announce=False``: do not tell :attr:`on_close` (a closure read back from the store,
        which must not be written there again).
        """
        now = self._clock()
        # Scopes can be issues: forget the closures that have run out, not every scope ever closed.
        for ended in [name for name, until in self._until.items() if until <= now]:
            del self._until[ended]
        self._until[scope] = max(now + seconds, self._until.get(scope, 0.0))
        if announce and self.on_close is not None:
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
        self._buckets = (self.bucket,) if self.hourly is None else (self.bucket, self.hourly)
        """Every bucket a request takes a token of: the budget, and the hourly cap if there is one."""
        self.writes = WriteWindows(write_limits, clock)
        self.gate = ThrottleGate(clock)
        self._sleep = sleep
        self._lock = threading.Lock()
        self._line: deque[threading.Event] = deque()
        """Background requests waiting for a token, first in line first (see :meth:`_take_turn`)."""
        self.waited = 0.0
        """Total seconds this limiter made callers wait (a metric)."""
        self.listen: Callable[[], None] | None = None
        """Called before each look at the gate (outside the lock): how closures that other instances
        received reach this one before its next request (see :mod:`connector.runtime.membership`)."""

    def wait(self, scopes: Sequence[str], issue: str | None = None) -> float:
        """Block until a request to ``scopes`` (and a write to ``issue``, if given) may be sent.

        The gate is looked at again after every sleep: a 429 that another thread received while
        this one waited for a token closes the scope for this request too. In the background
        (:func:`~connector.core.priority.background`) the budget's token is taken first, when no
        other request waits for it (:meth:`_take_turn`); otherwise it is booked at once, possibly
        in the future, as are the write window's slot and the hourly cap.
        """
        waited, reserved = 0.0, False
        behind = in_background()
        if behind:
            waited = self._take_turn()
        while True:
            if self.listen is not None:
                self.listen()  # closures other instances received, before the gate is looked at
            with self._lock:
                delay = self.gate.wait(scopes)
                if delay <= 0 and not reserved:
                    reserved = True
                    delay = 0.0 if behind else self._book()
                    if issue is not None:
                        delay = max(delay, self.writes.reserve(issue))
                self.waited += max(0.0, delay)
            if delay <= 0:
                return waited
            self._sleep(delay)
            waited += delay

    def _book(self) -> float:
        """Book a token of the budget (and of the hourly cap); the seconds until it may be used."""
        return max([bucket.reserve() for bucket in self._buckets])

    def _take_turn(self) -> float:
        """Line up behind the other background requests, then take a token once one is free.

        Only the first in line waits for the budget (one wake-up per token, not one per waiting
        thread); it hands the turn on when it has its token. Requests booked meanwhile by
        foreground callers push its token further out. Returns the seconds waited.
        """
        turn = threading.Event()
        with self._lock:
            self._line.append(turn)
            if self._line[0] is turn:
                turn.set()
        waited = 0.0
        try:
            turn.wait()
            while True:
                with self._lock:
                    delay = max(bucket.free_in() for bucket in self._buckets)
                    if delay <= 0:
                        for bucket in self._buckets:
                            bucket.take()
                        return waited
                    self.waited += delay
                self._sleep(delay)
                waited += delay
        finally:
            with self._lock:
                self._line.remove(turn)
                if self._line:
                    self._line[0].set()

    def throttled(self, scope: str, retry_after: float) -> None:
        """The platform said 429 for ``scope``: keep everyone away for ``retry_after`` seconds."""
        with self._lock:
            self.gate.close(scope, retry_after)

    def honour(self, scope: str, seconds: float) -> None:
        """Another instance (or a previous run) was told 429 for ``scope``: stay away ``seconds`` too.

        Unlike :meth:`throttled`, the gate's ``on_close`` is not told: the closure came from the
        store and is not written back.
        """
        with self._lock:
            self.gate.close(scope, seconds, announce=False)

    def set_share(self, share: float) -> None:
        """Use ``share`` of the site's budget: its rate, burst and hourly cap (see :meth:`TokenBucket.set_share`).

        Per-issue write windows are not shared out: an incident's items are processed by the one
        worker that claimed it, so one issue's writes come from one instance at a time.
        """
        with self._lock:
            for bucket in self._buckets:
                bucket.set_share(share)

    @property
    def share(self) -> float:
        """The share of the site's budget in use (1.0: the whole of it)."""
        return self.bucket.share
