"""What the service desk reads on an incident whose mirror to a supplier is stuck, and when it recovers. Pure.

A mirror is *stuck* once its entity (incident x supplier) has failed :data:`STUCK_AFTER` times in a
row: one failure is usually a blip that the first retry absorbs, and a note for it would be noise.
The incident then gets one work note per episode (per dead letter), naming the supplier, the kind
of error and what the connector will do about it; and one more when the mirror works again. Both
carry a marker line, so they are never mirrored to a supplier and a lost answer is settled by
finding the marker, never by writing twice (see ``Executor.note_on_incident``).
"""

from __future__ import annotations

from datetime import datetime

from connector.core.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    RateLimited,
    RetriableError,
    SkippableError,
    UncertainOutcome,
)
from connector.core.markers import marker, stamp_line

STUCK_AFTER = 2
"""Failed attempts in a row after which the incident is told."""
MESSAGE_LIMIT = 300


def stuck_source(letter_id: int) -> str:
    """The comment-ledger source of the stuck note of dead letter ``letter_id``."""
    return f"stuck:{letter_id}"


def recovered_source(letter_id: int) -> str:
    """The comment-ledger source of the recovery note of dead letter ``letter_id``."""
    return f"recovered:{letter_id}"


def note_ref(source: str, entity: str, first_failed_at: datetime) -> str:
    """The marker of a note: stable for one episode, different for the next."""
    return marker("x", source, entity, first_failed_at.isoformat())


def what_next(error: BaseException, next_attempt_at: datetime) -> str:
    """What the connector does about ``error``, in the service desk's words."""
    when = f"{next_attempt_at:%Y-%m-%d %H:%M} UTC"
    if isinstance(error, AuthError):
        return (
            f"The supplier's system refuses the connector's credentials: an administrator must check them. "
            f"The connector tries again with growing pauses (next about {when}) so that the account is not "
            "locked out."
        )
    if isinstance(error, RetriableError | UncertainOutcome):
        return (
            f"The connector keeps retrying on its own (next about {when}); changes made meanwhile are kept "
            "and sent once the supplier answers."
        )
    if isinstance(error, FatalError | SkippableError):
        return (
            f"This usually needs an administrator (see `mim-connector state dlq list`). The connector "
            f"retries with growing pauses (next about {when}) and keeps changes made meanwhile."
        )
    return (
        f"This is unexpected: an administrator should look at the connector's log. It retries with growing "
        f"pauses (next about {when}) and keeps changes made meanwhile."
    )


def stuck_note(
    incident_number: str,
    supplier: str,
    error: BaseException,
    attempts: int,
    next_attempt_at: datetime,
    ref: str,
) -> str:
    """The work note saying the mirror of ``incident_number`` to ``supplier`` (its display name) is stuck."""
    kind = _kind(error)
    # A request refused during a cool-down was not sent: the error that began the cool-down says why.
    last = getattr(error, "last_error", "") or f"{type(error).__name__}: {error}"
    message = " ".join(last.split())
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return (
        f"The mirror of {incident_number} to {supplier} is stuck: {attempts} attempts failed ({kind}).\n"
        f"Last error: {message}\n"
        f"{what_next(error, next_attempt_at)}\n"
        f"{stamp_line(ref)}"
    )


def recovered_note(incident_number: str, supplier: str, attempts: int, ref: str) -> str:
    """The work note saying the mirror works again after ``attempts`` failed attempts."""
    return (
        f"The mirror of {incident_number} to {supplier} works again after {attempts} failed attempts; "
        "what changed meanwhile has been sent.\n"
        f"{stamp_line(ref)}"
    )


def _kind(error: BaseException) -> str:
    if isinstance(error, AuthError):
        return "credentials refused"
    if isinstance(error, RateLimited):
        return "a system throttles the connector"
    if isinstance(error, RetriableError):
        return "a system is unavailable"
    if isinstance(error, UncertainOutcome):
        return "an answer was lost"
    if isinstance(error, FatalError):
        return "the request is refused"
    if isinstance(error, SkippableError):
        return "the change cannot be made as planned"
    if isinstance(error, ConnectorError):
        return "connector error"
    return "unexpected error"
