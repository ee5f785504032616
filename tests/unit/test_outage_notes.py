"""The work notes that tell the desk a mirror is stuck, and that it works again: exact texts."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.core.errors import AuthError, CircuitOpen, InvalidRequest
from connector.mirror.outage import recovered_note, stuck_note

NEXT = datetime(2026, 11, 22, 10, 5, 30, tzinfo=UTC)


def test_a_request_refused_during_a_cooldown_shows_the_error_that_began_it() -> None:
    refused = CircuitOpen(
        "jira:acme: POST issue not sent: POST issue failed every try for 30s (next try in 0s); last error: …",
        last_error="Unavailable: jira:acme: POST issue -> 503 Service Unavailable",
    )
    assert stuck_note("INC0010002", "ACME Cloud Hosting", refused, 2, NEXT, "x1") == (
        "The mirror of INC0010002 to ACME Cloud Hosting is stuck: 2 attempts failed (a system is unavailable).\n"
        "Last error: Unavailable: jira:acme: POST issue -> 503 Service Unavailable\n"
        "The connector keeps retrying on its own (next about 2026-11-22 10:05 UTC); changes made meanwhile "
        "are kept and sent once the supplier answers.\n"
        "[mim-connector ref:x1]"
    )


def test_what_the_connector_will_do_depends_on_the_error() -> None:
    refused = stuck_note("INC1", "Globex", AuthError("jira:globex: GET myself -> 401"), 3, NEXT, "x2")
    assert "(credentials refused)" in refused
    assert "an administrator must check them" in refused and "not locked out" in refused
    invalid = stuck_note("INC1", "Globex", InvalidRequest("x" * 400), 2, NEXT, "x3")
    assert "This usually needs an administrator (see `mim-connector state dlq list`)" in invalid
    assert f"Last error: InvalidRequest: {'x' * 283}…\n" in invalid, "clipped"


def test_the_recovery_note() -> None:
    assert recovered_note("INC0010002", "ACME Cloud Hosting", 4, "x4") == (
        "The mirror of INC0010002 to ACME Cloud Hosting works again after 4 failed attempts; "
        "what changed meanwhile has been sent.\n[mim-connector ref:x4]"
    )
