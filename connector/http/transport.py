"""The HTTP boundary both adapters share: pacing, the one retry layer, error translation, server time.

``Transport.call(fn, ...)`` waits for the site's budget and any throttled scope, runs ``fn`` (one
HTTP request through pysnow, python-jira or their session), translates whatever it raises into
:mod:`connector.core.errors`, closes the throttled scope on a 429, and retries what is retriable. An
endpoint still failing after every retry is not called again for a cool-down, nor is the whole
system when no connection could be made, nor are refused credentials tried again before their
back-off runs out (:mod:`connector.http.breaker`): such calls fail at once with
:class:`~connector.core.errors.CircuitOpen` or :class:`~connector.core.errors.CredentialsRefused`.

Translation rules, the same for every platform:

* an HTTP answer -> :func:`connector.core.errors.error_for_status` (message from the platform's envelope,
  never headers; ``Retry-After`` in seconds or HTTP-date);
* could not connect (refused, DNS, connect timeout) -> retriable, nothing was sent;
* a failure that never got an HTTP answer says its kind (:func:`network_failure`: DNS, refused,
  TLS, proxy, timeout) in its message and in ``kind``;
* the connection broke or the answer timed out *after* sending -> a read is retriable, a write is
  :class:`~connector.core.errors.UncertainOutcome` (it may have been applied; never repeated blindly).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
import urllib3
from urllib3.exceptions import NewConnectionError

from connector.core.errors import (
    AuthError,
    ConnectorError,
    PermissionDenied,
    RateLimited,
    Timeout,
    Unavailable,
    UncertainOutcome,
    error_for_status,
    parse_retry_after,
)
from connector.core.secrets import REDACTOR
from connector.http import retry
from connector.http.breaker import Breakers
from connector.http.ratelimit import Limiter
from connector.telemetry import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_THROTTLE_SECONDS = 5.0
"""How long a scope stays closed after a 429 that names no ``Retry-After``."""
THROTTLE_MARGIN = 0.05
"""Seconds a 429's scope stays closed beyond its ``Retry-After``: the wait starts when the answer is
read here, which can be a few milliseconds before the platform counts the answer as given (its clock,
its millisecond records); being early by that much is still early."""
POOL_SIZE = 64
"""Connections kept per host: at least the most workers ``polling.workers`` allows."""
DEFAULT_COOLDOWN_SECONDS = 30.0
"""How long an endpoint (or a system) that failed every retry is left alone."""
LOGIN_REFUSED = ("AUTHENTICATION_DENIED", "AUTHENTICATED_FAILED")
"""Jira Data Center's ``X-Seraph-LoginReason`` when it refuses the login itself (a 403 once a
CAPTCHA is required after failed logins): the credentials, not a missing permission."""


ThrottleScope = Callable[[Mapping[str, str], Sequence[str], str | None], str | None]
"""Given a 429's headers, the request's scopes and its issue, the one scope to close (``None``: the system)."""


class HttpFailure(Exception):
    """An HTTP answer an adapter got from its client library in another shape (e.g. python-jira's ``JIRAError``)."""

    def __init__(self, status: int, headers: Mapping[str, str], body: str) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.headers = headers
        self.body = body


class PoolAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, working out each host's connection-pool settings once.

    requests does it on every request; with a CA bundle given as a path (``REQUESTS_CA_BUNDLE``,
    as corporate hosts set it) that includes a ``stat`` of the path, 5 % of a backfill's samples.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pool_keys: dict[tuple[str, Any, Any], Any] = {}

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> Any:
        """As requests builds them, remembered per scheme and host, CA bundle and client certificate."""
        origin = "/".join((request.url or "").split("/", 3)[:3])
        key = (origin, verify, cert)
        if key not in self._pool_keys:
            self._pool_keys[key] = super().build_connection_pool_key_attributes(request, verify, cert)
        host, pool = self._pool_keys[key]
        return dict(host), dict(pool)


def pin_environment(session: requests.Session, url: str) -> None:
    """Apply the proxy (``HTTPS_PROXY``, ``NO_PROXY``...) and CA-bundle variables for ``url`` once.

    requests reads them again on every request, walking the whole environment twice (about a
    fifth of its CPU per call); a session here only ever talks to ``url``'s host and the daemon's
    environment does not change while it runs. The session stops consulting the environment,
    and so ``~/.netrc`` as well: credentials come from the configuration only.
    """
    if not session.trust_env:
        return
    for scheme, proxy in requests.utils.get_environ_proxies(url).items():
        session.proxies.setdefault(scheme, proxy)
    if session.verify is True:
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False


class Transport:
    """One remote system's calls: ``system`` names it in metrics and messages (``servicenow``, ``jira:acme``)."""

    def __init__(
        self,
        system: str,
        limiter: Limiter,
        *,
        policy: retry.RetryPolicy = retry.DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        message_of: Callable[[int, str], str] = lambda _status, body: body[:300],
        throttle_scope: ThrottleScope = lambda _headers, _scopes, _issue: None,
        cooldown: float = DEFAULT_COOLDOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system = system
        self.limiter = limiter
        self.policy = policy
        self.sleep = sleep
        self.message_of = message_of
        self.throttle_scope = throttle_scope
        self.cooldown = cooldown
        self.clock = clock
        self._server_time: datetime | None = None
        self._date_header = ""
        self._lock = threading.Lock()
        self.breakers = Breakers(system, cooldown, clock)

    # --- server clock -----------------------------------------------------------------------------

    def watch(self, session: requests.Session, url: str) -> None:
        """Record the ``Date`` header of every answer ``session`` (which talks to ``url``) receives.

        Also keeps enough pooled connections for the engine's parallel workers (requests keeps 10),
        and reads the environment's proxy settings for ``url`` once (see :func:`pin_environment`).
        """
        session.hooks.setdefault("response", []).append(self._on_response)
        for prefix in ("http://", "https://"):
            session.mount(prefix, PoolAdapter(pool_maxsize=POOL_SIZE, max_retries=0))
        pin_environment(session, url)

    def _on_response(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        stamp = response.headers.get("Date")
        if stamp and stamp != self._date_header:
            # Dates have second precision: most answers repeat the last one, parsed already.
            self._date_header = stamp
            try:
                when = parsedate_to_datetime(stamp)
            except (TypeError, ValueError):
                return response
            with self._lock:
                self._server_time = when if when.tzinfo else when.replace(tzinfo=UTC)
        return response

    @property
    def server_time(self) -> datetime | None:
        """The server's clock as of its last answer."""
        with self._lock:
            return self._server_time

    # --- calls ------------------------------------------------------------------------------------

    def call(
        self,
        fn: Callable[[], T],
        *,
        method: str,
        what: str,
        write: bool,
        scopes: Sequence[str] = (),
        issue: str | None = None,
        endpoint: str | None = None,
        login: bool = False,
        renewable: bool = False,
    ) -> T:
        """Run one request under pacing, the breakers and the retry policy; raise only :mod:`connector.core.errors`.

        ``what`` names the call in messages (``GET incident``); ``scopes`` are the throttle scopes
        the request belongs to besides the whole system; ``issue`` books a per-issue write slot;
        ``endpoint`` is the breaker's scope (default ``what``: name the endpoint, not the record).
        ``login``: a 403 refuses the credentials (an ``AuthError``), not a permission.
        ``renewable``: the caller renews its token after an ``AuthError`` and tries once more, so
        this refusal does not yet count against the credentials.
        """
        all_scopes = (self.system, *scopes)

        def attempt() -> T:
            self.limiter.wait(all_scopes, issue if write else None)
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001 - translate() re-raises what it does not know
                error = self.translate(exc, method, what, write)
                if login and isinstance(error, PermissionDenied):
                    error = AuthError(str(error))
                metrics.REQUESTS.labels(self.system, method, type(error).__name__).inc()
                if isinstance(error, RateLimited):
                    scope = self._scope_of(exc, scopes, issue) or self.system
                    wait = error.retry_after or DEFAULT_THROTTLE_SECONDS
                    self.limiter.throttled(scope, wait + THROTTLE_MARGIN)
                    metrics.THROTTLED.labels(self.system).inc()
                raise error from None
            metrics.REQUESTS.labels(self.system, method, "ok").inc()
            return result

        scope = endpoint or what
        try:
            self.breakers.admit(scope, what)
        except ConnectorError:
            metrics.REQUESTS.labels(self.system, method, "CircuitOpen").inc()
            raise
        started = self.clock()
        try:
            result = retry.call(attempt, self.policy, self.sleep)
        except ConnectorError as exc:
            if renewable and isinstance(exc, AuthError):
                self.breakers.release(scope)  # the token is renewed and the call made once more
            else:
                self.breakers.settled(scope, exc, started=started)
            raise
        except BaseException:
            self.breakers.release(scope)
            raise
        self.breakers.settled(scope, None, started=started)
        return result

    def translate(self, exc: BaseException, method: str, what: str, write: bool) -> ConnectorError:
        """The :mod:`connector.core.errors` class for whatever a client library raised."""
        if isinstance(exc, ConnectorError):
            return exc
        prefix = f"{self.system}: {what}"
        status, headers, body = _answer(exc)
        if status is not None:
            message = REDACTOR.redact(f"{prefix} -> {status} {self.message_of(status, body)}".strip())
            if status == 403 and headers.get("X-Seraph-LoginReason", "") in LOGIN_REFUSED:
                return AuthError(f"{message} (login refused: {headers['X-Seraph-LoginReason']})")
            # An HTTP-date Retry-After is relative to the server's clock, not ours.
            retry_after = parse_retry_after(headers.get("Retry-After"), _date(headers))
            return error_for_status(status, message, retry_after=retry_after, write=write)
        kind, detail = network_failure(exc)
        if isinstance(exc, requests.ConnectTimeout) or _never_connected(exc):
            return _kind(Timeout(f"{prefix}: could not connect: {detail}"), kind)
        if isinstance(exc, requests.ReadTimeout | requests.ConnectionError):
            if write:
                return _kind(
                    UncertainOutcome(
                        f"{prefix}: no answer after sending: {detail}; it may have been applied"
                    ),
                    kind,
                )
            return _kind(Unavailable(f"{prefix}: no answer: {detail}"), kind)
        if isinstance(exc, requests.RequestException | ValueError):
            # A body that is not the platform's JSON (e.g. a hibernating instance's HTML page).
            if write:
                return UncertainOutcome(f"{prefix}: unreadable answer to a write ({type(exc).__name__})")
            return Unavailable(f"{prefix}: unreadable answer ({type(exc).__name__})")
        raise exc

    def _scope_of(self, exc: BaseException, scopes: Sequence[str], issue: str | None) -> str | None:
        _status, headers, _body = _answer(exc)
        return self.throttle_scope(headers, scopes, issue) if headers else None


def _date(headers: Mapping[str, str]) -> datetime | None:
    try:
        when = parsedate_to_datetime(headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _answer(exc: BaseException) -> tuple[int | None, Mapping[str, str], str]:
    if isinstance(exc, HttpFailure):
        return exc.status, exc.headers, exc.body
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and response is not None:
        return response.status_code, response.headers, response.text
    return None, {}, ""


def network_failure(exc: BaseException) -> tuple[str | None, str]:
    """What kind of network failure ``exc`` is, for people: ``(kind, detail)``.

    ``kind`` is ``proxy``, ``TLS``, ``DNS``, ``refused`` or ``timeout`` (``None`` when requests
    does not tell: a reset, a dropped connection, an unreadable answer); ``detail`` says it in
    words (``DNS cannot resolve nosuchhost.invalid``), without credentials.
    """
    chain = _chain(exc)
    for link in chain:
        if isinstance(link, requests.exceptions.ProxyError | urllib3.exceptions.ProxyError):
            inner = next((e for e in chain if isinstance(e, urllib3.exceptions.NewConnectionError)), None)
            if inner is not None:
                return "proxy", f"the proxy {_address(inner)} is unreachable"
            return "proxy", f"the proxy refused: {_reason(link)}"
    tls = [e for e in chain if isinstance(e, ssl.SSLError)]
    if tls:
        error = tls[-1]
        if isinstance(error, ssl.SSLCertVerificationError):
            return "TLS", f"TLS: certificate verify failed: {error.verify_message}"
        return "TLS", f"TLS: {_SSL_LOCATION.sub('', str(error.args[-1] if error.args else error)).strip()}"
    if any(isinstance(e, requests.exceptions.SSLError | urllib3.exceptions.SSLError) for e in chain):
        return "TLS", "TLS handshake failed"
    for link in chain:
        if isinstance(link, urllib3.exceptions.NameResolutionError):
            return "DNS", f"DNS cannot resolve {link.conn.host}"
        if isinstance(link, socket.gaierror):
            return "DNS", "DNS cannot resolve the host"
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            inner = next((e for e in chain if isinstance(e, urllib3.exceptions.NewConnectionError)), None)
            return "refused", f"{_address(inner) if inner is not None else 'the host'} refused the connection"
    for link in chain:
        if isinstance(link, requests.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError):
            return "timeout", "no connection within the timeout"
        if isinstance(link, requests.ReadTimeout | urllib3.exceptions.ReadTimeoutError | TimeoutError):
            return "timeout", "no answer within the timeout"
    return None, type(exc).__name__


_SSL_LOCATION = re.compile(r"\(_ssl\.c:\d+\)")


def _kind(error: ConnectorError, kind: str | None) -> ConnectorError:
    error.kind = kind
    return error


def _address(error: urllib3.exceptions.NewConnectionError) -> str:
    conn = error.conn
    return f"{conn.host}:{conn.port}"


def _reason(error: BaseException) -> str:
    """The last words of an exception's message (urllib3 wraps each cause in the next one's text)."""
    text = str(error.args[-1] if error.args else error)
    return REDACTOR.redact(text.rsplit(": ", 1)[-1].strip(" ')\"")) or type(error).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception it wraps (causes, contexts, ``reason``, exception arguments)."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending and len(seen) < 50:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        wrapped = [
            getattr(current, "reason", None),
            getattr(current, "original_error", None),
            current.__cause__,
            current.__context__,
            *current.args,
        ]
        pending.extend(e for e in wrapped if isinstance(e, BaseException))
    return seen


def _never_connected(exc: BaseException) -> bool:
    """True when the request never left: connection refused, unknown host."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, NewConnectionError | ConnectionRefusedError):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        current = (
            current.__cause__
            or current.__context__
            or (current.args[0] if current.args and isinstance(current.args[0], BaseException) else None)
        )
    return False
