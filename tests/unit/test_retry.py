"""The retry layer honours Retry-After as a floor, backs off, and never retries an uncertain write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from connector.core.errors import (
    AuthError,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
    TicketNotAccessible,
    Unavailable,
    UncertainOutcome,
    error_for_status,
    parse_retry_after,
)
from connector.http import retry


class Flaky:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_retry_after_is_a_floor() -> None:
    slept: list[float] = []
    fn = Flaky(RateLimited("429", retry_after=7), Unavailable("503"))
    assert (
        retry.call(fn, retry.RetryPolicy(attempts=3, initial=0.1, maximum=1, jitter=0), slept.append) == "ok"
    )
    assert fn.calls == 3
    assert slept[0] == 7
    assert 0.2 <= slept[1] <= 0.2 + 0.0 + 1e-9


def test_gives_up_after_the_attempts_and_reraises() -> None:
    fn = Flaky(*[Unavailable("503")] * 5)
    with pytest.raises(Unavailable):
        retry.call(fn, retry.RetryPolicy(attempts=3, initial=0, maximum=0, jitter=0), lambda _s: None)
    assert fn.calls == 3


@pytest.mark.parametrize(
    "error", [UncertainOutcome("timeout after send"), InvalidRequest("400"), AuthError("401")]
)
def test_non_retriable_errors_pass_straight_through(error: Exception) -> None:
    fn = Flaky(error)
    with pytest.raises(type(error)):
        retry.call(fn, sleep=lambda _s: pytest.fail("must not sleep"))
    assert fn.calls == 1


def test_parse_retry_after_both_forms() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


@pytest.mark.parametrize(
    ("status", "write", "kind"),
    [
        (401, False, AuthError),
        (403, True, PermissionDenied),
        (404, False, TicketNotAccessible),
        (429, True, RateLimited),
        (500, True, Unavailable),
        (503, False, Unavailable),
        (502, True, UncertainOutcome),
        (504, False, Unavailable),
        (400, True, InvalidRequest),
    ],
)
def test_status_classification(status: int, write: bool, kind: type[Exception]) -> None:
    assert type(error_for_status(status, "m", write=write)) is kind
