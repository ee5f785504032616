"""Exceptions, grouped by what the caller should do about them.

::

    ConnectorError                      base; never raised itself
    ├── ConfigError                     stop: an admin must fix config/ or mappings/ (exit code 2)
    ├── FatalError                      stop this site: retrying cannot help
    │   ├── AuthError                   401, bad or expired credentials
    │   ├── PermissionDenied            403 on a call we must be allowed to make
    │   └── InvalidRequest              4xx that says our request is wrong
    ├── RetriableError                  try again later, same request; nothing was applied
    │   ├── RateLimited                 429 (carries retry_after as a floor)
    │   ├── Unavailable                 5xx, connection refused or reset before sending
    │   └── Timeout                     no answer before anything was sent
    ├── SkippableError                  give up on this one entity, carry on with the others
    │   ├── TicketNotAccessible         404 / gone on the supplier side
    │   └── TransitionNotAvailable      no workflow path to the wanted status
    └── UncertainOutcome                a write may or may not have happened (timeout after send,
                                        dropped response): reconcile by looking for our stamp,
                                        never repeat blindly

Adapters translate transport errors into this tree in one place each; nothing above the adapters
catches a bare ``Exception`` except the per-entity guard in the engine. Messages never contain
credentials or response headers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connector.config.problems import Problem


class ConnectorError(Exception):
    """Base class of every error this package raises on purpose."""


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


class AuthError(FatalError):
    """Credentials were rejected."""


class PermissionDenied(FatalError):
    """The integration user lacks a right it needs."""


class InvalidRequest(FatalError):
    """The remote system says our request is malformed."""


class RetriableError(ConnectorError):
    """Nothing was applied; the same request may be sent again after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetriableError):
    """The remote system throttled us; ``retry_after`` is a floor, never a suggestion."""


class Unavailable(RetriableError):
    """The remote system is down or overloaded (5xx, connection refused)."""


class Timeout(RetriableError):
    """No connection could be made in time; the request was never sent."""


class SkippableError(ConnectorError):
    """This entity cannot be processed now; others carry on."""


class TicketNotAccessible(SkippableError):
    """The linked ticket is gone or hidden from the integration user."""


class TransitionNotAvailable(SkippableError):
    """No workflow path leads to the wanted status without passing a terminal status."""


class UncertainOutcome(ConnectorError):
    """A write may have been applied; the caller must reconcile by looking for its stamp."""
