"""Push deliveries of the simulators: a queue, one sender thread, retries and injected faults.

A platform that pushes (Jira's admin webhooks, ServiceNow's async business rule) owns one
:class:`Dispatcher`. The platform builds each :class:`Delivery` (url, headers, raw body) while it
holds its lock, right after its write committed, and :meth:`Dispatcher.enqueue` only queues it: the
API request that caused the event never waits for a receiver. One daemon thread sends them.

Sending, as Jira Cloud does:

- 2xx: delivered. 408, 409, 425, 429, 5xx, a connection error or a timeout (logged as status 0):
  retried up to ``retries`` times, after ``backoff_ms`` doubling on each retry (capped at 30 s),
  with the same identifier and the retry number in the platform's retry header. Any other answer
  (other 4xx, 3xx: redirects are not followed): given up at once.
- Retries wait in the queue, they do not hold the thread: other deliveries go out meanwhile.

Faults (``POST /_sandbox/push/faults``, :class:`PushFaults`), decided with a seeded
``random.Random`` per platform so a run can be repeated:

- ``delay_ms``: every delivery waits this long in the queue before its first attempt.
- ``loss``: probability that a delivery is never sent (logged as ``lost``).
- ``duplicate``: probability that a delivery is sent twice, the copy right after the original,
  with the same identifier (the copy is logged ``duplicate: true`` and retried on its own).
- ``reorder``: probability that a delivery, when due, is held back and swapped with the next one
  due: the next is sent first, the held one right after it. A held delivery with no successor
  within ``reorder_window_ms`` is sent alone. Only first attempts are held; one at a time.
- ``pause``: an outage of the sender: nothing is sent while it is on; on ``pause: false`` the
  queue is released in order. With ``drop_while_paused`` deliveries made during the pause are
  dropped instead of queued (logged as ``dropped``); those queued before it are kept.
- ``retries``, ``backoff_ms``, ``timeout_ms``: the retry policy and the receiver's time limit.

The delivery log (``GET /_sandbox/push/deliveries?since=N``) holds the last 10,000 entries: one
per attempt (``status`` the answer, 0 for a connection error or timeout) and one per delivery a
fault removed (``status`` null, ``outcome`` ``lost``/``dropped``, or ``bypassed`` for a write the
platform chose not to announce). Its numbering survives a reset, like the request journal's.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests

from connector.sandbox.core import json_response, read_json

if TYPE_CHECKING:
    from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 409, 425, 429})
"""Statuses retried besides every 5xx (and connection errors and timeouts), as Jira Cloud does."""
BACKOFF_CAP_SECONDS = 30.0
LOG_SIZE = 10_000


def hmac_sha256(secret: str, body: bytes) -> bytes:
    """The HMAC-SHA256 of ``body`` keyed with the UTF-8 bytes of ``secret``."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()


@dataclass(frozen=True)
class Delivery:
    """One notification as it goes on the wire; ``identifier`` names it in the log and on every retry."""

    url: str
    body: bytes
    headers: Mapping[str, str]
    identifier: str
    event: str


@dataclass(frozen=True)
class PushFaults:
    """The sender's behaviour and its injected faults; see the module docstring."""

    delay_ms: int = 0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_window_ms: int = 500
    pause: bool = False
    drop_while_paused: bool = False
    retries: int = 5
    backoff_ms: int = 1000
    timeout_ms: int = 10_000

    def updated(self, payload: Mapping[str, Any]) -> PushFaults:
        """A copy with the given keys changed; raises ``ValueError`` on an unknown key or a bad value."""
        kinds = {f.name: f.type for f in fields(self)}
        unknown = sorted(set(payload) - set(kinds))
        if unknown:
            raise ValueError(f"unknown push faults: {', '.join(unknown)} (known: {', '.join(kinds)})")
        changes: dict[str, Any] = {}
        for key, value in payload.items():
            kind = kinds[key]
            if kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"push fault {key} must be true or false")
            elif kind == "float":
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise ValueError(f"push fault {key} must be a probability between 0 and 1")
                value = float(value)
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"push fault {key} must be a non-negative integer")
            changes[key] = value
        updated = replace(self, **changes)
        if updated.timeout_ms == 0:
            raise ValueError("push fault timeout_ms must be positive")
        return updated

    def as_json(self) -> dict[str, Any]:
        """The faults as the control API shows them."""
        return asdict(self)


@dataclass
class _Attempt:
    delivery: Delivery
    retry: int
    generation: int
    duplicate: bool = False
    reordered: bool = False


@dataclass(order=True)
class _Due:
    at: float
    order: int
    attempt: _Attempt = field(compare=False)


class Dispatcher:
    """The delivery queue and sender thread of one platform. Thread-safe.

    ``retry_header`` is the header carrying the retry number on retries (never on a first attempt);
    ``now`` the platform's clock, for the log. The thread starts with the first delivery.
    """

    def __init__(
        self,
        name: str,
        *,
        retry_header: str,
        now: Callable[[], datetime] | None = None,
        seed: int = 0,
        defaults: PushFaults | None = None,
        log_size: int = LOG_SIZE,
    ) -> None:
        self.name = name
        self.retry_header = retry_header
        self._now = now or (lambda: datetime.now(UTC))
        self._seed = seed
        self._defaults = defaults or PushFaults()
        self._faults = self._defaults
        self._rng = random.Random(seed)  # noqa: S311 - fault dice, not cryptography
        self._cond = threading.Condition()
        self._queue: list[_Due] = []
        self._order = itertools.count()
        self._held: _Attempt | None = None
        self._held_until = 0.0
        self._in_flight = 0
        self._generation = 0
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._seq = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    # --- the platform's side --------------------------------------------------------------------

    def enqueue(self, delivery: Delivery) -> None:
        """Queue ``delivery`` (or let a fault remove it); returns at once."""
        with self._cond:
            if self._closed:
                return
            faults = self._faults
            if faults.pause and faults.drop_while_paused:
                self._record(delivery, 0, None, "dropped", lost=True)
                return
            if faults.loss and self._rng.random() < faults.loss:
                self._record(delivery, 0, None, "lost", lost=True)
                return
            at = time.monotonic() + faults.delay_ms / 1000
            self._push(at, _Attempt(delivery, 0, self._generation))
            if faults.duplicate and self._rng.random() < faults.duplicate:
                self._push(at, _Attempt(delivery, 0, self._generation, duplicate=True))
            self._start()
            self._cond.notify_all()

    def bypassed(self, delivery: Delivery) -> None:
        """Log a delivery the platform chose not to make (ServiceNow's ``setWorkflow(false)``)."""
        with self._cond:
            self._record(delivery, 0, None, "bypassed")

    # --- control --------------------------------------------------------------------------------

    def faults(self) -> PushFaults:
        """The faults in force."""
        with self._cond:
            return self._faults

    def set_faults(self, payload: Mapping[str, Any]) -> PushFaults:
        """Change some faults (a partial update); unpausing releases the queue."""
        with self._cond:
            self._faults = self._faults.updated(payload)
            self._cond.notify_all()
            return self._faults

    def clear_faults(self) -> PushFaults:
        """Back to the platform's default faults (which release a paused queue)."""
        with self._cond:
            self._faults = self._defaults
            self._cond.notify_all()
            return self._faults

    def deliveries(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Log entries after sequence number ``since``, oldest first."""
        with self._cond:
            out = [dict(entry) for entry in self._log if entry["seq"] > since]
        return out[:limit] if limit is not None else out

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest log entry (0 before any)."""
        with self._cond:
            return self._seq

    def pending(self) -> int:
        """Deliveries queued, held or being sent."""
        with self._cond:
            return len(self._queue) + (self._held is not None) + self._in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight; ``False`` when ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._held is not None or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def reset(self) -> None:
        """Forget queued deliveries, faults and the log; an attempt in flight is finished and not logged."""
        with self._cond:
            self._generation += 1
            self._queue.clear()
            self._held = None
            self._faults = self._defaults
            self._rng.seed(self._seed)
            self._log.clear()
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the thread (queued deliveries are not sent)."""
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._held = None
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._session.close()

    # --- the sender -----------------------------------------------------------------------------

    def _push(self, at: float, attempt: _Attempt) -> None:
        heapq.heappush(self._queue, _Due(at, next(self._order), attempt))

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"sandbox-push-{self.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                attempt = self._next()
                if attempt is None:
                    return
                faults = self._faults
                self._in_flight += 1
            try:
                self._send(attempt, faults)
            finally:
                with self._cond:
                    self._in_flight -= 1
                    self._cond.notify_all()

    def _next(self) -> _Attempt | None:
        """The next attempt to send, waiting for it; ``None`` once closed. Holds the condition."""
        while not self._closed:
            now = time.monotonic()
            wake: float | None = None
            if not self._faults.pause:
                if self._held is not None and now >= self._held_until:
                    held, self._held = self._held, None
                    return held
                if self._queue and self._queue[0].at <= now:
                    attempt = heapq.heappop(self._queue).attempt
                    faults = self._faults
                    if (
                        self._held is None
                        and attempt.retry == 0
                        and faults.reorder
                        and self._rng.random() < faults.reorder
                    ):
                        attempt.reordered = True
                        self._held = attempt
                        self._held_until = now + faults.reorder_window_ms / 1000
                        continue
                    if self._held is not None:
                        self._held_until = now  # the swap: the held one goes right after this one
                    return attempt
                candidates = [self._queue[0].at] if self._queue else []
                if self._held is not None:
                    candidates.append(self._held_until)
                wake = min(candidates) if candidates else None
            self._cond.wait(None if wake is None else max(wake - now, 0.0))
        return None

    def _send(self, attempt: _Attempt, faults: PushFaults) -> None:
        delivery = attempt.delivery
        headers = dict(delivery.headers)
        if attempt.retry:
            headers[self.retry_header] = str(attempt.retry)
        started = time.perf_counter()
        error: str | None = None
        try:
            response = self._session.post(
                delivery.url,
                data=delivery.body,
                headers=headers,
                timeout=faults.timeout_ms / 1000,
                allow_redirects=False,
            )
            status = response.status_code
            response.close()
        except requests.RequestException as exc:
            status, error = 0, f"{type(exc).__name__}: {exc}"
        duration = time.perf_counter() - started
        with self._cond:
            if attempt.generation != self._generation or self._closed:
                return  # reset while it was on its way: the log it belonged to is gone
            retryable = status == 0 or status >= 500 or status in RETRYABLE
            if 200 <= status < 300:
                outcome = "delivered"
            elif retryable and attempt.retry < faults.retries:
                outcome = "retrying"
                backoff = min(faults.backoff_ms / 1000 * 2**attempt.retry, BACKOFF_CAP_SECONDS)
                retry = _Attempt(delivery, attempt.retry + 1, attempt.generation, attempt.duplicate)
                self._push(time.monotonic() + backoff, retry)
            else:
                outcome = "gave_up"
            self._record(
                delivery,
                attempt.retry,
                status,
                outcome,
                duplicate=attempt.duplicate,
                reordered=attempt.reordered,
                error=error,
                duration_ms=round(duration * 1000, 3),
            )
            self._cond.notify_all()
        if outcome != "delivered":
            log.debug(
                "%s push %s to %s: %s (%s)", self.name, delivery.identifier, delivery.url, outcome, status
            )

    def _record(
        self,
        delivery: Delivery,
        retry: int,
        status: int | None,
        outcome: str,
        *,
        lost: bool = False,
        duplicate: bool = False,
        reordered: bool = False,
        error: str | None = None,
        duration_ms: float | None = None,
    ) -> None:
        """Append a log entry. Holds the condition."""
        self._seq += 1
        self._log.append(
            {
                "seq": self._seq,
                "time": self._now().isoformat(timespec="milliseconds"),
                "url": delivery.url,
                "identifier": delivery.identifier,
                "event": delivery.event,
                "retry": retry,
                "status": status,
                "outcome": outcome,
                "lost": lost,
                "duplicate": duplicate,
                "reordered": reordered,
                "error": error,
                "duration_ms": duration_ms,
            }
        )


def control(dispatcher: Dispatcher, request: Request, route: str) -> Response | None:
    """The push control routes both platforms serve; ``None`` for any other route.

    ``GET|POST|DELETE /_sandbox/push/faults`` (POST: a partial update; DELETE: back to the
    defaults, unpausing) and ``GET /_sandbox/push/deliveries?since=N[&limit=M]``. Raises
    ``ValueError``/``TypeError`` on bad input (the control API answers 400).
    """
    if route == "push/faults":
        if request.method == "POST":
            payload = read_json(request) or {}
            if not isinstance(payload, Mapping):
                raise TypeError("push faults are a JSON object")
            dispatcher.set_faults(payload)
        elif request.method == "DELETE":
            dispatcher.clear_faults()
        return json_response(dispatcher.faults().as_json())
    if route == "push/deliveries" and request.method == "GET":
        since = int(request.args.get("since", 0))
        limit = request.args.get("limit", type=int)
        return json_response({"deliveries": dispatcher.deliveries(since, limit), "last": dispatcher.last_seq})
    return None
