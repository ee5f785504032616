"""Circuit breakers and the credential back-off of one remote system. Thread-safe; the clock is injected.

Three ways a system stops being called for a while, each scoped as narrowly as the evidence allows:

* an **endpoint** (``POST issue``) that answered 5xx to every retry of a request is left alone for
  the cool-down; the system's other endpoints (its search, updates of other issues) go on;
* the **whole system** is left alone when no connection could be made at all (refused, DNS,
  connect timeout): then every endpoint is unreachable;
* **credentials** refused (401, a login refused with 403) stop every call to the system for a
  back-off that doubles with each further refusal, from :data:`AUTH_BACKOFF_INITIAL` up to
  :data:`AUTH_BACKOFF_MAX`: an account lock-out policy must never see a retry per poll.

After a cool-down or back-off one request goes through as a probe while the others are still
refused; its outcome closes the breaker or opens it again. A call made inside :func:`explicit_retry`
(an operator's ``state dlq retry``) is sent whatever the breakers say, and its outcome counts like a
probe's. A breaker stays *failing* (for ``/readyz`` and ``mim_site_up``) from its first trip until a
request to its scope succeeds, not only while its cool-down runs.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from connector.core.errors import (
    AuthError,
    CircuitOpen,
    ConnectorError,
    CredentialsRefused,
    RateLimited,
    Timeout,
    Unavailable,
    UncertainOutcome,
)
from connector.telemetry import metrics

log = logging.getLogger(__name__)

SITE = ""
"""The scope of the whole system (every endpoint)."""
AUTH_BACKOFF_INITIAL = 60.0
"""Seconds without a request after the first refusal of the credentials."""
AUTH_BACKOFF_MAX = 1800.0
"""The longest pause between two tries of refused credentials."""

_EXPLICIT: ContextVar[bool] = ContextVar("explicit_retry", default=False)


@contextlib.contextmanager
def explicit_retry() -> Iterator[None]:
    """Calls made in this block (in this thread) are sent even while a breaker is open.

    For the retry an operator asked for (``state dlq retry``): it must reach the remote system,
    not be spent by a cool-down. Rate-limit closures (a 429's ``Retry-After``) still apply.
    """
    token = _EXPLICIT.set(True)
    try:
        yield
    finally:
        _EXPLICIT.reset(token)


def explicit() -> bool:
    """Whether the current call was asked for explicitly (see :func:`explicit_retry`)."""
    return _EXPLICIT.get()


@dataclass
class _Trip:
    """One scope's failing episode."""

    since: float
    """When the episode began (first trip)."""
    until: float
    """When the next probe may go."""
    error: str
    """The last failure, ``ErrorClass: message``."""
    step: float = 0.0
    """The credential back-off's current pause (auth only)."""
    opened_at: float = 0.0
    """When the current pause began: failures of calls sent before it were already counted."""
    probing: bool = False


class Breakers:
    """The breakers of one system (``servicenow``, ``jira:acme``)."""

    def __init__(
        self,
        system: str,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        auth_initial: float = AUTH_BACKOFF_INITIAL,
        auth_max: float = AUTH_BACKOFF_MAX,
    ) -> None:
        self.system = system
        self.cooldown = cooldown
        self.auth_initial = auth_initial
        self.auth_max = auth_max
        self._clock = clock
        self._lock = threading.Lock()
        self._trips: dict[str, _Trip] = {}
        self._auth: _Trip | None = None
        metrics.SITE_UP.labels(system).set(1)
        metrics.AUTH_BACKOFF.labels(system).set(0)

    # --- before a call ------------------------------------------------------------------------------

    def admit(self, endpoint: str, what: str) -> bool:
        """Let a call to ``endpoint`` go, or raise why not; returns whether it goes as a probe.

        Raises:
            CredentialsRefused: the credentials were refused and the back-off has not run out.
            CircuitOpen: the endpoint or the whole system is cooling down.
        """
        if explicit():
            return False
        now = self._clock()
        with self._lock:
            auth = self._auth
            if auth is not None and (now < auth.until or auth.probing):
                raise CredentialsRefused(
                    f"{self.system}: {what} not sent: the credentials were refused for {now - auth.since:.0f}s "
                    f"({self._next(auth, now)}); last error: {auth.error}",
                    last_error=auth.error,
                )
            for scope in (SITE, endpoint):
                trip = self._trips.get(scope)
                if trip is not None and (now < trip.until or trip.probing):
                    name = "the system" if scope == SITE else scope
                    raise CircuitOpen(
                        f"{self.system}: {what} not sent: {name} failed every try for {now - trip.since:.0f}s "
                        f"({self._next(trip, now)}); last error: {trip.error}",
                        last_error=trip.error,
                    )
            probe = False
            if auth is not None:
                auth.probing = probe = True
            for scope in (SITE, endpoint):
                trip = self._trips.get(scope)
                if trip is not None:
                    trip.probing = probe = True
            return probe

    @staticmethod
    def _next(trip: _Trip, now: float) -> str:
        if trip.probing:
            return "a try is under way"
        return f"next try in {max(0.0, trip.until - now):.0f}s"

    # --- after a call ---------------------------------------------------------------------------------

    def settled(self, endpoint: str, error: ConnectorError | None, *, started: float) -> None:
        """Record how a call to ``endpoint`` that began at ``started`` ended (``None``: it succeeded).

        ``Timeout`` (no connection) trips the whole system, ``Unavailable`` the endpoint; an
        ``AuthError`` opens or lengthens the credential back-off. Any answer that proves the
        endpoint reachable (a success, a 4xx) closes its breaker and the system's.
        """
        with self._lock:
            self._release(endpoint)
            if isinstance(error, AuthError):
                self._auth_refused(error, started)
            elif isinstance(error, Timeout):
                self._trip(SITE, error)
            elif isinstance(error, Unavailable):
                self._trip(endpoint, error)
            elif not isinstance(error, RateLimited | UncertainOutcome):
                self._recovered(endpoint)
            self._publish()

    def _trip(self, scope: str, error: ConnectorError) -> None:
        now = self._clock()
        trip = self._trips.get(scope)
        text = f"{type(error).__name__}: {error}"
        name = "unreachable" if scope == SITE else f"{scope} failing"
        if trip is None:
            self._trips[scope] = _Trip(now, now + self.cooldown, text)
            metrics.CIRCUIT_OPEN.labels(self.system, scope or "*").set(1)
            log.warning("%s %s; not called for %.0fs: %s", self.system, name, self.cooldown, error)
            return
        if now >= trip.until:
            log.info("%s still %s; not called for %.0fs: %s", self.system, name, self.cooldown, error)
        trip.until, trip.error, trip.probing = now + self.cooldown, text, False

    def _auth_refused(self, error: AuthError, started: float) -> None:
        now = self._clock()
        auth = self._auth
        if auth is not None and started < auth.opened_at:
            return  # sent before this pause began: its refusal is the one that began it
        step = self.auth_initial if auth is None else min(self.auth_max, auth.step * 2)
        if auth is None:
            auth = self._auth = _Trip(now, now + step, "", step, now)
        auth.until, auth.step, auth.opened_at, auth.probing = now + step, step, now, False
        auth.error = f"{type(error).__name__}: {error}"
        log.error(
            "%s: credentials refused; no request for %.0fs (it doubles up to %.0fs while they are refused, "
            "so that the account is not locked out): %s",
            self.system,
            step,
            self.auth_max,
            error,
        )

    def release(self, endpoint: str) -> None:
        """A call to ``endpoint`` ended without saying anything about its health (a bug, a renewal)."""
        with self._lock:
            self._release(endpoint)

    def _release(self, endpoint: str) -> None:
        if self._auth is not None:
            self._auth.probing = False
        for scope in (SITE, endpoint):
            trip = self._trips.get(scope)
            if trip is not None:
                trip.probing = False

    def _recovered(self, endpoint: str) -> None:
        if self._auth is not None:
            log.info("%s: credentials accepted again", self.system)
            self._auth = None
        for scope in (SITE, endpoint):
            trip = self._trips.pop(scope, None)
            if trip is not None:
                metrics.CIRCUIT_OPEN.labels(self.system, scope or "*").set(0)
                name = "answers again" if scope == SITE else f"{scope} answers again"
                log.info("%s %s after %.0fs of failures", self.system, name, self._clock() - trip.since)

    def _publish(self) -> None:
        metrics.SITE_UP.labels(self.system).set(0 if self._trips or self._auth else 1)
        metrics.AUTH_BACKOFF.labels(self.system).set(self._auth.step if self._auth else 0)

    # --- what is failing ------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """What keeps the system from working, one line each (empty when nothing does)."""
        now = self._clock()
        with self._lock:
            lines = []
            auth = self._auth
            if auth is not None:
                lines.append(
                    f"credentials refused for {now - auth.since:.0f}s ({self._next(auth, now)}): {auth.error}"
                )
            for scope, trip in sorted(self._trips.items()):
                name = "unreachable" if scope == SITE else f"{scope} failing"
                lines.append(f"{name} for {now - trip.since:.0f}s ({self._next(trip, now)}): {trip.error}")
            return lines
