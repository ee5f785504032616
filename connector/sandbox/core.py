"""What every simulated platform shares: clock, request journal, fault injection and the control API.

A platform is a WSGI application deriving from :class:`PlatformApp`. The base class answers
``/_sandbox/...`` itself and wraps every other request:

1. a matching fault rule may delay the request, answer it with an error *before* the platform
   sees it, or let the platform commit the change and then replace or drop the response
   (``when: after_commit`` - the "write applied, answer lost" case connectors must survive);
2. the request and its outcome go to the journal (``GET /_sandbox/requests?since=N``).

Subclasses implement :meth:`PlatformApp.handle` (the platform API), :meth:`PlatformApp.error`
(an error in the platform's own envelope) and :meth:`PlatformApp.reset_data`. They record the
authenticated user with :meth:`PlatformApp.set_user` so the journal can show who did what.
All platform state is guarded by ``self.lock``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request, Response

log = logging.getLogger(__name__)

JSON = "application/json"
USER_KEY = "sandbox.user"
BODY_LIMIT = 10_000


class Clock:
    """Server time: the real UTC time plus an adjustable skew (``POST /_sandbox/clock``)."""

    def __init__(self, source: Callable[[], datetime] | None = None) -> None:
        self._source = source or (lambda: datetime.now(UTC))
        self._skew = timedelta()

    @property
    def skew_seconds(self) -> float:
        """How far this server's clock is ahead of (positive) or behind real time."""
        return self._skew.total_seconds()

    def set_skew(self, seconds: float) -> None:
        """Shift the server clock by ``seconds`` relative to real time."""
        self._skew = timedelta(seconds=seconds)

    def now(self) -> datetime:
        """The server's current time, timezone-aware UTC."""
        return self._source() + self._skew

    def reading(self) -> tuple[datetime, float]:
        """The server's current time with the skew it includes (one read of the skew: consistent)."""
        skew = self._skew
        return self._source() + skew, skew.total_seconds()

    def real_now(self) -> datetime:
        """Real time, unskewed: for windows (rate limits) that must not jump when the skew changes.

        A skew models a server clock that is off, not one that jumps; without this a skew set
        back by 90 s would leave every recent hit "in the future" and refuse for 90 s.
        """
        return self._source()


@dataclass
class FaultRule:
    """One injected failure. Matches requests by method and path regex, fires ``count`` times at most.

    ``action``: ``respond`` answers with ``status`` in the platform's error envelope (plus
    ``headers``, or ``body`` verbatim); ``drop`` closes the connection without an answer;
    ``reset`` aborts it with a TCP reset; ``pass`` only waits ``delay_ms`` and lets the request
    through untouched (latency injection). ``status: 0`` means ``drop``. ``when``: ``before`` fails
    the request without applying it; ``after_commit`` applies it, then fails or drops the answer.
    ``delay_ms`` waits at that point: before the platform sees the request, or after it applied it
    (a slow answer to an applied write - the client times out not knowing it succeeded).
    """

    path: str = ".*"
    method: str | None = None
    status: int = 503
    probability: float = 1.0
    count: int | None = None
    when: Literal["before", "after_commit"] = "before"
    delay_ms: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    action: Literal["respond", "drop", "reset", "pass"] = "respond"
    query: str | None = None
    id: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.status == 0:
            self.action = "drop"
        if self.when not in ("before", "after_commit"):
            raise ValueError("when must be 'before' or 'after_commit'")
        if self.action not in ("respond", "drop", "reset", "pass"):
            raise ValueError("action must be 'respond', 'drop', 'reset' or 'pass'")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        self._path = re.compile(self.path)
        self._query = re.compile(self.query) if self.query else None

    def matches(self, method: str, path: str, query: str) -> bool:
        """True when the rule applies to this request (ignoring count and probability)."""
        if self.method and self.method.upper() != method.upper():
            return False
        if self._query is not None and not self._query.search(query):
            return False
        return bool(self._path.search(path))

    def as_json(self) -> dict[str, Any]:
        """The rule as the control API shows it."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


class FaultInjector:
    """The active fault rules; the first rule that matches and fires wins. Thread-safe."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._next_id = 1

    def add(self, rule: FaultRule) -> FaultRule:
        """Install ``rule`` and give it an id."""
        with self._lock:
            rule.id = self._next_id
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        """A snapshot of the rules with their fired counts."""
        with self._lock:
            return list(self._rules)

    def seed(self, value: int) -> None:
        """Make the probabilistic choices repeatable."""
        with self._lock:
            self._rng.seed(value)

    def pick(self, method: str, path: str, query: str) -> FaultRule | None:
        """The rule to apply to this request, counting it as fired, or ``None``."""
        with self._lock:
            for rule in self._rules:
                if rule.count is not None and rule.fired >= rule.count:
                    continue
                if not rule.matches(method, path, query):
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.fired += 1
                return rule
        return None


class RequestJournal:
    """Every platform request with its outcome, numbered from 1; the newest ``size`` are kept."""

    def __init__(self, size: int = 200_000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._seq = 0

    @property
    def last_seq(self) -> int:
        """The number of the newest entry (0 before any request)."""
        return self._seq

    def record(self, entry: dict[str, Any]) -> int:
        """Append ``entry``; return its sequence number."""
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._entries.append(entry)
            return self._seq

    def since(self, seq: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries newer than ``seq``, oldest first."""
        with self._lock:
            out = [entry for entry in self._entries if entry["seq"] > seq]
        return out[:limit] if limit is not None else out

    def clear(self) -> None:
        """Forget all entries; numbering continues so old cursors stay meaningful."""
        with self._lock:
            self._entries.clear()


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response (compact, UTF-8)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return Response(body, status=status, headers=dict(headers or {}), mimetype=JSON)


def read_json(request: Request) -> Any:
    """The request body as JSON; raises ``ValueError`` with the parser's message when malformed."""
    raw = request.get_data(cache=True)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)) from None


class PlatformApp:
    """Base WSGI application of one simulated platform; see the module docstring."""

    name = "platform"

    def __init__(self, clock: Clock | None = None, *, seed: int = 0, journal_size: int = 200_000) -> None:
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.journal = RequestJournal(journal_size)
        self.faults = FaultInjector(random.Random(seed))  # noqa: S311 - fault dice, not cryptography
        self.base_url = "http://127.0.0.1"
        """Set by the server once bound; platforms use it for ``self`` links."""

    # --- for subclasses -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one platform API request."""
        raise NotImplementedError

    def error(self, status: int, message: str, detail: str | None = None) -> Response:
        """An error response in the platform's own envelope."""
        return json_response({"error": {"message": message, "detail": detail}}, status)

    def reset_data(self) -> None:
        """Return the platform's data to its initial (seeded) state."""

    def info(self) -> dict[str, Any]:
        """What ``GET /_sandbox/info`` reports: URLs, users and credentials of this simulator."""
        return {"name": self.name, "url": self.base_url}

    def control(self, request: Request, route: str) -> Response | None:
        """Platform-specific control routes under ``/_sandbox/``; ``None`` when unknown."""
        return None

    @staticmethod
    def set_user(request: Request, user: str) -> None:
        """Record the authenticated user of ``request`` for the journal."""
        request.environ[USER_KEY] = user

    # --- WSGI -------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Serve one request: control routes, else faults around :meth:`handle`, then the journal."""
        request = Request(environ)
        if request.path.startswith("/_sandbox/"):
            return self._control(request)(environ, start_response)
        started = time.perf_counter()
        query = request.query_string.decode("latin-1")
        fault = self.faults.pick(request.method, request.path, query)
        if fault is not None and fault.when == "before":
            _pause(fault)
            response = (
                self._handle_safely(request)
                if fault.action == "pass"
                else self._fault_response(fault, environ)
            )
        else:
            response = self._handle_safely(request)
            if fault is not None:
                _pause(fault)
                if fault.action != "pass":
                    response = self._fault_response(fault, environ)
        self._record(request, response, fault, started)
        if fault is not None and fault.action in ("drop", "reset"):
            # Only once journaled: a client that sees the connection die may look at the journal at once.
            _abort_connection(environ, reset=fault.action == "reset")
        return response(environ, start_response)

    def _handle_safely(self, request: Request) -> Response:
        try:
            return self.handle(request)
        except ClientDisconnected:
            # A client killed while sending its body: a real server drops the request, not an error of ours.
            log.info("%s sandbox: client went away during %s %s", self.name, request.method, request.path)
            return self.error(400, "Client disconnected", "the request body ended early; nothing was applied")
        except Exception:  # the simulator must keep serving whatever one request does
            log.exception("%s sandbox: unhandled error on %s %s", self.name, request.method, request.path)
            return self.error(500, "Internal server error", "the sandbox failed on this request")

    def _fault_response(self, fault: FaultRule, environ: dict[str, Any]) -> Response:
        if fault.action in ("drop", "reset"):
            return Response(b"", status=599)  # never sent: the connection is aborted instead
        if fault.body is not None:
            body = fault.body if isinstance(fault.body, str) else json.dumps(fault.body)
            response = Response(body, status=fault.status, mimetype=JSON)
        else:
            response = self.error(fault.status, "Injected fault", f"sandbox fault rule {fault.id}")
        for key, value in fault.headers.items():
            response.headers[key] = value
        return response

    def _record(self, request: Request, response: Response, fault: FaultRule | None, started: float) -> None:
        dropped = fault is not None and fault.action in ("drop", "reset")
        now, skew = self.clock.reading()
        self.journal.record(
            {
                "time": now.isoformat(timespec="milliseconds"),
                "skew_seconds": skew,
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode("latin-1"),
                "body": _journal_body(request),
                "status": 0 if dropped else response.status_code,
                "user": request.environ.get(USER_KEY),
                "fault": fault.id if fault is not None else None,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            }
        )

    # --- control API ------------------------------------------------------------------------------

    def _control(self, request: Request) -> Response:
        route = request.path.removeprefix("/_sandbox/").strip("/")
        try:
            handled = self._common_control(request, route)
            if handled is None:
                handled = self.control(request, route)
        except (ValueError, TypeError) as exc:
            return json_response({"error": str(exc)}, 400)
        return handled if handled is not None else json_response({"error": f"no control route {route}"}, 404)

    def _common_control(self, request: Request, route: str) -> Response | None:
        method = request.method
        if route == "requests" and method == "GET":
            since = int(request.args.get("since", 0))
            limit = request.args.get("limit", type=int)
            return json_response(
                {"requests": self.journal.since(since, limit), "last": self.journal.last_seq}
            )
        if route == "faults":
            if method == "GET":
                return json_response({"faults": [rule.as_json() for rule in self.faults.rules()]})
            if method == "DELETE":
                self.faults.clear()
                return json_response({"faults": []})
            if method == "POST":
                payload = read_json(request)
                items = payload if isinstance(payload, list) else [payload]
                rules = [self.faults.add(FaultRule(**_fault_fields(item))) for item in items]
                return json_response({"faults": [rule.as_json() for rule in rules]}, 201)
        if route == "reset" and method == "POST":
            with self.lock:
                self.faults.clear()
                self.clock.set_skew(0)
                self.journal.clear()
                self.reset_data()
            return json_response({"reset": True, "last": self.journal.last_seq})
        if route == "clock":
            if method == "POST":
                payload = read_json(request) or {}
                self.clock.set_skew(float(payload.get("skew_seconds", 0)))
            return json_response(
                {"now": self.clock.now().isoformat(), "skew_seconds": self.clock.skew_seconds}
            )
        if route == "info" and method == "GET":
            return json_response(self.info())
        return None


def _pause(fault: FaultRule) -> None:
    if fault.delay_ms:
        time.sleep(fault.delay_ms / 1000)


def _fault_fields(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TypeError("a fault rule is a JSON object")
    allowed = set(FaultRule.__dataclass_fields__) - {"id", "fired"}
    unknown = set(item) - allowed
    if unknown:
        raise ValueError(f"unknown fault rule keys: {', '.join(sorted(unknown))}")
    return dict(item)


def _journal_body(request: Request) -> Any:
    try:
        raw = request.get_data(cache=True)
    except ClientDisconnected:  # the body never arrived whole; the request was answered 400
        return None
    if not raw:
        return None
    text = raw[:BODY_LIMIT].decode("utf-8", "replace")
    if request.mimetype == JSON:
        try:
            return json.loads(raw)
        except ValueError:
            return text
    return text


#: The environ key of the stream the server reads the connection through (``wsgi.input`` may wrap it).
CONNECTION_STREAM = "sandbox.connection_stream"


def _abort_connection(environ: dict[str, Any], *, reset: bool) -> None:
    sock: socket.socket | None = environ.get("werkzeug.socket")
    if sock is None:
        return
    try:
        if reset:
            # SO_LINGER with a zero timeout makes the final close send RST instead of FIN. The fd
            # only closes once the request's input stream (a makefile of the socket) is closed too.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            stream = environ.get(CONNECTION_STREAM, environ.get("wsgi.input"))
            if stream is not None:
                stream.close()
            sock.close()
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
