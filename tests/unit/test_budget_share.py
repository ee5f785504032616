"""A share of a site's budget, with a fake clock: N instances on one store each take 1/N of it."""

from __future__ import annotations

import pytest

from connector.http.ratelimit import Limiter, TokenBucket
from tests.factories import FakeClock


def booked(bucket: TokenBucket, reservations: int) -> float:
    """The wait booked for the last of ``reservations`` taken at one instant."""
    return [bucket.reserve() for _ in range(reservations)][-1]


def test_at_half_a_share_a_hundred_reservations_book_twice_the_wait() -> None:
    whole = TokenBucket(rate=10, burst=1, clock=FakeClock())
    half = TokenBucket(rate=10, burst=1, clock=FakeClock())
    half.set_share(0.5)
    assert booked(whole, 100) == pytest.approx(9.9)
    assert booked(half, 100) == pytest.approx(19.8)


def test_at_half_a_share_paced_requests_take_twice_as_long() -> None:
    elapsed = []
    for share in (1.0, 0.5):
        clock = FakeClock()
        limiter = Limiter(rate=10, burst=4, clock=clock, sleep=clock.sleep)
        limiter.set_share(share)
        start = clock.now
        for _ in range(100):
            limiter.wait(["jira:acme"])
        elapsed.append(clock.now - start)
    assert elapsed == [pytest.approx(9.6), pytest.approx(19.6)], "burst 4 (2 at half), then 10/s or 5/s"


def test_a_new_share_keeps_the_times_already_booked() -> None:
    bucket = TokenBucket(rate=10, burst=1, clock=FakeClock())
    assert booked(bucket, 5) == pytest.approx(0.4)
    bucket.set_share(0.5)
    assert bucket.reserve() == pytest.approx(0.6), "the booked 0.4 s stay, one more token at 5/s is 0.2 s"
    bucket.set_share(1.0)
    assert bucket.reserve() == pytest.approx(0.7)


def test_the_burst_is_scaled_but_never_below_one_request() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock)
    bucket.set_share(0.25)
    assert (bucket.rate, bucket.burst) == (2.5, 5.0)
    clock.now += 100
    assert [bucket.reserve() for _ in range(6)] == [0, 0, 0, 0, 0, pytest.approx(0.4)]
    bucket.set_share(0.01)
    assert bucket.burst == 1.0
    clock.now += 1000
    assert bucket.reserve() == 0
    bucket.set_share(1.0)
    clock.now += 1000
    assert (bucket.rate, bucket.burst) == (10, 20.0)
    assert [bucket.reserve() for _ in range(20)] == [0] * 20, "the whole burst again"


def test_saved_up_tokens_shrink_with_the_share() -> None:
    bucket = TokenBucket(rate=10, burst=10, clock=FakeClock())
    bucket.set_share(0.5)
    assert [bucket.reserve() for _ in range(6)][-2:] == [0, pytest.approx(0.2)], "5 saved up, not 10"


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="a share of a budget"):
        TokenBucket(rate=10, burst=1, clock=FakeClock()).set_share(share)


def test_the_limiter_shares_its_hourly_cap_too_but_not_the_per_issue_windows() -> None:
    clock = FakeClock()
    limiter = Limiter(rate=1000, burst=1000, write_limits=[(2, 1.0)], clock=clock, per_hour=100)
    limiter.set_share(0.5)
    assert limiter.share == 0.5
    assert limiter.hourly is not None and limiter.hourly.burst == 50
    assert booked(limiter.hourly, 51) == pytest.approx(72.0), "one more after 50 waits 3600 / 50 s"
    assert [limiter.writes.reserve("ACME-1") for _ in range(2)] == [0, 0]


def test_a_closure_honoured_from_the_store_is_not_reported_for_keeping() -> None:
    clock = FakeClock()
    limiter = Limiter(rate=10, burst=10, clock=clock, sleep=clock.sleep)
    kept: list[tuple[str, float]] = []
    limiter.gate.on_close = lambda scope, seconds: kept.append((scope, seconds))
    limiter.honour("jira:acme", 30)
    assert limiter.gate.closed() == {"jira:acme": 30}
    assert kept == []
    limiter.throttled("jira:acme:issue", 5)
    assert kept == [("jira:acme:issue", 5)]
    assert limiter.wait(["jira:acme"]) == pytest.approx(30)
