"""Client-side pacing with a fake clock: budgets, per-issue windows, throttle gates."""

from __future__ import annotations

import threading

import pytest

from connector.core.priority import background
from connector.http.ratelimit import Limiter, ThrottleGate, TokenBucket, WriteWindows
from tests.factories import FakeClock


def test_token_bucket_allows_a_burst_then_paces() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.5)
    assert bucket.reserve() == pytest.approx(1.0)
    clock.now += 10
    assert bucket.reserve() == 0


def test_write_windows_keep_every_window_below_its_maximum() -> None:
    clock = FakeClock()
    windows = WriteWindows([(15, 2.0), (80, 30.0)], clock)
    sent: list[float] = []
    for _ in range(200):
        delay = windows.reserve("ACME-1")
        clock.sleep(delay)
        sent.append(clock.now)
    for start in sent:
        assert sum(1 for t in sent if start <= t < start + 2.0) <= 15
        assert sum(1 for t in sent if start <= t < start + 30.0) <= 80
    assert windows.reserve("ACME-2") == 0, "other issues are not affected"


def test_throttle_gate_extends_but_never_shortens() -> None:
    clock = FakeClock()
    gate = ThrottleGate(clock)
    gate.close("site", 10)
    gate.close("site", 3)
    assert gate.wait(["site", "other"]) == 10
    clock.now += 4
    assert gate.closed() == {"site": 6}
    assert gate.wait(["other"]) == 0


def test_limiter_waits_for_the_longest_of_budget_gate_and_issue() -> None:
    clock = FakeClock()
    limiter = Limiter(rate=100, burst=100, write_limits=[(2, 1.0)], clock=clock, sleep=clock.sleep)
    limiter.throttled("jira:acme:issue", 5)
    assert limiter.wait(["jira:acme"]) == 0
    assert limiter.wait(["jira:acme", "jira:acme:issue"]) == 5
    assert limiter.wait(["jira:acme"], issue="ACME-1") == 0
    assert limiter.wait(["jira:acme"], issue="ACME-1") == 0
    assert limiter.wait(["jira:acme"], issue="ACME-1") == pytest.approx(1.0)
    assert limiter.waited == pytest.approx(6.0)


def test_a_throttle_received_while_waiting_for_a_token_holds_the_waiter_too() -> None:
    clock = FakeClock()
    limiter = Limiter(rate=1, burst=1, clock=clock)
    start = clock.now
    assert limiter.wait(["jira:acme"]) == 0

    def sleep(seconds: float) -> None:
        # While this caller sleeps for its token, another thread gets a 429 with Retry-After: 5.
        if not limiter.gate.closed():
            limiter.throttled("jira:acme", 5)
        clock.sleep(seconds)

    limiter._sleep = sleep
    assert limiter.wait(["jira:acme"]) == pytest.approx(5.0), "1 s for the token, then what is left of 5 s"
    assert clock.now - start == pytest.approx(5.0)


def test_every_closure_is_reported_for_keeping() -> None:
    gate = ThrottleGate(FakeClock())
    kept: list[tuple[str, float]] = []
    gate.on_close = lambda scope, seconds: kept.append((scope, seconds))
    gate.close("servicenow", 2.0)
    assert kept == [("servicenow", 2.0)]


def test_write_windows_forget_issues_whose_windows_have_passed() -> None:
    clock = FakeClock()
    windows = WriteWindows([(15, 2.0), (80, 30.0)], clock)
    for number in range(10_000):
        assert windows.reserve(f"ACME-{number}") == 0
        clock.now += 0.1
    # Keys booked within the last two 30 s windows at most (600 at one write every 0.1 s).
    assert len(windows) <= 601


def test_write_windows_keep_an_issue_still_in_its_window_among_passing_ones() -> None:
    clock = FakeClock()
    windows = WriteWindows([(15, 2.0), (80, 30.0)], clock)
    assert [windows.reserve("ACME-1") for _ in range(15)] == [0] * 15
    for number in range(2, 1_000):
        clock.now += 0.001
        windows.reserve(f"ACME-{number}")
    assert windows.reserve("ACME-1") == pytest.approx(2.0 - 0.998)


def test_throttle_gate_forgets_closures_that_have_run_out() -> None:
    clock = FakeClock()
    gate = ThrottleGate(clock)
    for number in range(10_000):
        gate.close(f"issue:ACME-{number}", 1.0)
        clock.now += 0.5
    assert len(gate) <= 3
    assert gate.wait(["issue:ACME-9999"]) == pytest.approx(0.5)


def test_a_request_somebody_waits_for_goes_ahead_of_background_work_waiting_for_a_token() -> None:
    clock = FakeClock()
    limiter = Limiter(rate=1, burst=1, clock=clock)
    start = clock.now
    assert limiter.wait(["jira:acme"]) == 0, "the burst's one token"
    polled: list[float] = []

    def sleep(seconds: float) -> None:
        # While the backfill's request waits for a token, a poll is sent (as if from another thread).
        if not polled:
            polled.append(-1.0)
            with background(False):
                polled[0] = limiter.wait(["jira:acme"])
        clock.sleep(seconds)

    limiter._sleep = sleep
    with background():
        limiter.wait(["jira:acme"])
    assert polled == [pytest.approx(1.0)], "the poll takes the next token, not the one after the backfill's"
    assert clock.now - start == pytest.approx(2.0), "the backfill's request took the token after the poll's"


def test_background_requests_keep_to_the_budget_and_book_nothing_ahead() -> None:
    clock = FakeClock()
    limiter = Limiter(rate=2, burst=2, clock=clock, sleep=clock.sleep)
    start = clock.now
    with background():
        waits = [limiter.wait(["jira:acme"]) for _ in range(6)]
    assert waits == [0, 0, pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5), pytest.approx(0.5)]
    assert clock.now - start == pytest.approx(2.0)
    assert limiter.wait(["jira:acme"]) == pytest.approx(0.5), "no token was booked beyond the one in use"


def test_background_requests_line_up_and_every_one_is_served() -> None:
    limiter = Limiter(rate=200, burst=1)
    served: list[int] = []

    def request(number: int) -> None:
        with background():
            limiter.wait(["jira:acme"])
        served.append(number)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(served) == list(range(8))
    assert not limiter._line, "the line is empty once everyone was served"


def test_a_background_request_that_fails_while_first_in_line_hands_the_turn_on() -> None:
    clock = FakeClock()
    limiter = Limiter(rate=1, burst=1, clock=clock)
    limiter.wait(["jira:acme"])

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    limiter._sleep = interrupted
    with background(), pytest.raises(KeyboardInterrupt):
        limiter.wait(["jira:acme"])
    assert not limiter._line
    limiter._sleep = clock.sleep
    with background():
        assert limiter.wait(["jira:acme"]) == pytest.approx(1.0)
