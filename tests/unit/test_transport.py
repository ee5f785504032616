"""The transport's circuit breaker (a system unreachable after every retry is left alone for a while)
and the sessions it watches (proxy settings read from the environment once)."""

from __future__ import annotations

import pytest
import requests

from connector.errors import Unavailable
from connector.ratelimit import Limiter
from connector.retry import RetryPolicy
from connector.transport import Transport
from tests.factories import FakeClock


def transport(clock: FakeClock) -> Transport:
    limiter = Limiter(100.0, 100, clock=clock, sleep=clock.sleep)
    policy = RetryPolicy(attempts=3, initial=0.1, maximum=1.0, jitter=0.0)
    return Transport("jira:acme", limiter, policy=policy, sleep=clock.sleep, cooldown=30.0, clock=clock)


def test_after_the_retries_fail_calls_are_refused_without_sending_until_the_cooldown_ends() -> None:
    clock = FakeClock()
    link = transport(clock)
    sent: list[str] = []

    def down() -> str:
        sent.append("GET")
        raise requests.ConnectionError("connection reset by peer")

    with pytest.raises(Unavailable):
        link.call(down, method="GET", what="GET issue", write=False)
    assert len(sent) == 3, "the retry policy's attempts, then the circuit opens"
    clock.now += 10
    with pytest.raises(Unavailable, match="not sent"):
        link.call(down, method="GET", what="GET issue", write=False)
    assert len(sent) == 3, "nothing sent while the circuit is open"
    clock.now += 25
    assert link.call(lambda: "ok", method="GET", what="GET issue", write=False) == "ok"
    assert link.call(lambda: "again", method="GET", what="GET issue", write=False) == "again"


def test_a_failure_that_recovers_within_the_retries_does_not_open_the_circuit() -> None:
    clock = FakeClock()
    link = transport(clock)
    answers = iter([requests.ConnectionError("reset"), "ok"])

    def flaky() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert link.call(flaky, method="GET", what="GET issue", write=False) == "ok"
    assert link.call(lambda: "next", method="GET", what="GET issue", write=False) == "next"


def test_a_watched_session_takes_the_proxy_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "jira.internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    outside, inside, unverified = requests.Session(), requests.Session(), requests.Session()
    unverified.verify = False
    watcher = transport(FakeClock())
    watcher.watch(outside, "https://acme.atlassian.net")
    watcher.watch(inside, "https://jira.internal.example")
    watcher.watch(unverified, "https://acme.atlassian.net")
    assert outside.proxies["https"] == "http://proxy.example:3128"
    assert "https" not in inside.proxies, "NO_PROXY names that host"
    assert outside.verify == "/etc/corp-ca.pem" and unverified.verify is False

    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.example:1")
    url = "https://acme.atlassian.net/rest/api/2/myself"
    settings = outside.merge_environment_settings(url, {}, None, None, None)
    assert settings["proxies"]["https"] == "http://proxy.example:3128", "not read again per request"
