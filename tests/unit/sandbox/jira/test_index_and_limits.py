"""The lagging search index and the rate-limit windows, on a hand-driven clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connector.sandbox.jira.index import SearchIndex
from connector.sandbox.jira.limits import RateLimiter
from connector.sandbox.jira.model import Issue

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def issue(summary: str) -> Issue:
    return Issue("10001", "SUP-1", "SUP", "Incident", summary, "Open", T0, T0, T0, "bot", "bot")


def seen(index: SearchIndex, now: datetime, lag: float) -> list[str]:
    return [i.summary for i in index.visible(now, lag)]


def test_writes_become_visible_after_the_lag() -> None:
    index = SearchIndex()
    index.record("10001", issue("v1"), T0)
    index.record("10001", issue("v2"), T0 + timedelta(seconds=5))
    assert seen(index, T0 + timedelta(seconds=9), 10) == []
    assert seen(index, T0 + timedelta(seconds=10), 10) == ["v1"]
    assert seen(index, T0 + timedelta(seconds=15), 10) == ["v2"]


def test_lowering_the_lag_releases_pending_writes_and_raising_it_takes_nothing_back() -> None:
    index = SearchIndex()
    index.record("10001", issue("v1"), T0)
    assert seen(index, T0, 60) == []
    assert seen(index, T0, 0) == ["v1"]
    index.record("10001", issue("v2"), T0 + timedelta(seconds=1))
    assert seen(index, T0 + timedelta(seconds=2), 60) == ["v1"]


def test_a_delete_is_a_tombstone_that_lags_too() -> None:
    index = SearchIndex()
    index.record("10001", issue("v1"), T0)
    index.record("10001", None, T0 + timedelta(seconds=1))
    assert seen(index, T0 + timedelta(seconds=1), 1) == ["v1"]
    assert seen(index, T0 + timedelta(seconds=2), 1) == []


def test_burst_window_refuses_and_tells_when_to_retry() -> None:
    limiter = RateLimiter()
    assert limiter.burst("myself", "GET", T0, 2) == (None, 1)
    assert limiter.burst("myself", "GET", T0 + timedelta(milliseconds=100), 2) == (None, 0)
    refusal, remaining = limiter.burst("myself", "GET", T0 + timedelta(milliseconds=200), 2)
    assert refusal is not None and remaining == 0
    assert (refusal.reason, refusal.limit, refusal.retry_after, refusal.reset_at) == (
        "jira-burst-based",
        2,
        1,
        T0 + timedelta(seconds=1),
    )
    assert limiter.burst("myself", "POST", T0, 2)[0] is None, "method is part of the bucket"
    assert limiter.burst("myself", "GET", T0 + timedelta(seconds=1, milliseconds=1), 2)[0] is None


def test_per_issue_windows() -> None:
    limiter = RateLimiter()
    limits = ((2, 2.0), (3, 30.0))
    assert limiter.issue_write("10001", T0, limits) is None
    assert limiter.issue_write("10001", T0, limits) is None
    short = limiter.issue_write("10001", T0 + timedelta(seconds=1), limits)
    assert short is not None and (short.limit, short.window_seconds, short.retry_after) == (2, 2.0, 1)
    assert limiter.issue_write("10002", T0, limits) is None
    assert limiter.issue_write("10001", T0 + timedelta(seconds=3), limits) is None
    long = limiter.issue_write("10001", T0 + timedelta(seconds=4), limits)
    assert long is not None and (long.limit, long.retry_after, long.reason) == (
        3,
        26,
        "jira-per-issue-on-write",
    )
