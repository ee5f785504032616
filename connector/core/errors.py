"""Exceptions, grouped by what the caller should do about them.

::

    ConnectorError                      base; never raised itself
    ├── ConfigError                     stop: an admin must fix config/ or mappings/ (exit code 2)
    ├── FatalError                      stop this site: retrying cannot help
    │   ├── CredentialError             a credential reference cannot be resolved (exit code 2)
    │   ├── AuthError                   401, bad or expired credentials
    │   │   └── CredentialsRefused      not sent: refused moments ago, backing off (lock-out guard)
    │   ├── PermissionDenied            403 on a call we must be allowed to make
    │   ├── InvalidRequest              4xx that says our request is wrong
    │   └── StoreError                  the state store cannot be used as it is (stop the process)
    │       ├── SchemaTooNew            migrated by a newer connector
    │       ├── StoreInUse              another daemon holds the store's lease
    │       └── LeaseLost               this process's lease was taken over: it must stop writing
    ├── RetriableError                  try again later, same request; nothing was applied
    │   ├── RateLimited                 429 (carries retry_after as a floor)
    │   ├── Unavailable                 5xx, connection refused or reset before sending
    │   │   └── CircuitOpen             not sent: the endpoint or system failed every try moments ago
    │   └── Timeout                     no answer before anything was sent
    ├── SkippableError                  give up on this one entity, carry on with the others
    │   ├── TicketNotAccessible         404 / gone on the supplier side
    │   ├── TransitionNotAvailable      no workflow path to the wanted status
    │   └── ConcurrentChange            the other side moved meanwhile: re-read and re-plan
    └── UncertainOutcome                a write may or may not have happened (timeout after send,
                                        dropped response): reconcile by looking for our stamp,
                                        never repeat blindly

Adapters translate transport errors into this tree in one place each; nothing above the adapters
catches a bare ``Exception`` except the per-entity guard in the engine. Messages never contain
credentials or response headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.core.problems import Problem


class ConnectorError(Exception):
    """Base class of every error this package raises on purpose.

    ``kind`` names the failure for people where it is known: ``DNS``, ``refused``, ``TLS``,
    ``proxy``, ``timeout`` (set by the transport), ``auth`` or ``HTTP 503`` (an HTTP answer).
    """

    kind: str | None = None


class ConfigError(ConnectorError):
    """The configuration is invalid; ``problems`` lists every mistake found, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        count = len(self.problems)
        super().__init__(f"{count} configuration problem{'s' if count != 1 else ''}")

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


class FatalError(ConnectorError):
    """Retrying cannot help; the site (or the whole daemon) must stop until someone acts."""


class CredentialError(FatalError):
    """Credentials cannot be resolved on this machine: an unset variable, an unreadable file.

    ``problems`` holds one line per reference, each naming its system and the reference as the
    configuration writes it (``ServiceNow: ${MIM_SN_PASSWORD} is not set``), never a value.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("; ".join(self.problems))


class AuthError(FatalError):
    """Credentials were rejected."""


class CredentialsRefused(AuthError):
    """Not sent: the system refused the credentials moments ago and the back-off has not run out.

    ``last_error`` is that refusal (``AuthError: …``).
    """

    def __init__(self, message: str, *, last_error: str = "") -> None:
        super().__init__(message)
        self.last_error = last_error


class PermissionDenied(FatalError):
    """The integration user lacks a right it needs."""


class InvalidRequest(FatalError):
    """The remote system says our request is malformed."""


class StoreError(FatalError):
    """The state store cannot be opened or used as it is; ``str()`` is one line naming the store and the remedy."""


class StoreInUse(StoreError):
    """Another process holds the store's lease: a second writer would duplicate its writes."""


class LeaseLost(StoreError):
    """This process's lease on the store was taken over by another holder; it must stop writing."""


class ClaimLost(LeaseLost):
    """A worker's claim on an incident expired and another worker took it: this one stops writing to it."""


class RetriableError(ConnectorError):
    """Nothing was applied; the same request may be sent again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetriableError):
    """The remote system throttled us; ``retry_after`` is a floor, never a suggestion."""


class Unavailable(RetriableError):
    """The remote system is down or overloaded (5xx, connection refused)."""


class CircuitOpen(Unavailable):
    """Not sent: the endpoint (or the whole system) failed every try moments ago and is cooling down.

    ``last_error`` is the failure that opened (or last extended) the breaker (``Unavailable: …``).
    """

    def __init__(self, message: str, *, last_error: str = "") -> None:
        super().__init__(message)
        self.last_error = last_error


class Timeout(RetriableError):
    """No connection could be made in time; the request was never sent."""


class SkippableError(ConnectorError):
    """This entity cannot be processed now; others carry on."""


class TicketNotAccessible(SkippableError):
    """The linked ticket is gone or hidden from the integration user."""


class TransitionNotAvailable(SkippableError):
    """No workflow path leads to the wanted status without passing a terminal status."""


class ConcurrentChange(SkippableError):
    """The other side changed what a write was based on while we wrote: read again and re-plan."""


class UncertainOutcome(ConnectorError):
    """A write may have been applied; the caller must reconcile by looking for its stamp."""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date; ``None`` if absent or bad."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_for_status(
    status: int, message: str, *, retry_after: float | None = None, write: bool = False
) -> ConnectorError:
    """The error class for an HTTP status, in one place for every adapter.

    ``write`` marks a request that may have changed something: a 5xx answer to a write is still
    treated as "not applied" (the platforms roll back failed writes), but a 502/504 from a proxy in
    front of them may hide an applied write, so those become :class:`UncertainOutcome` for writes.
    """
    error = _for_status(status, message, retry_after=retry_after, write=write)
    error.kind = {401: "auth", 407: "proxy"}.get(status, f"HTTP {status}")
    return error


def _for_status(status: int, message: str, *, retry_after: float | None, write: bool) -> ConnectorError:
    if status == 401:
        return AuthError(message)
    if status == 403:
        return PermissionDenied(message)
    if status == 404:
        return TicketNotAccessible(message)
    if status == 429:
        return RateLimited(message, retry_after=retry_after)
    if status in (502, 504) and write:
        return UncertainOutcome(message)
    if status >= 500 or status == 408:
        return Unavailable(message, retry_after=retry_after)
    return InvalidRequest(message)
