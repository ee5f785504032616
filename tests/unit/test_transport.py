"""The transport's circuit breaker (a system unreachable after every retry is left alone for a while),
the sessions it watches (proxy settings read from the environment once), and the kind of failure
it names (DNS, refused, TLS, proxy, timeout, auth, HTTP status)."""

from __future__ import annotations

import socket
import threading

import pytest
import requests

from connector.errors import ConnectorError, Timeout, Unavailable, UncertainOutcome
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


# --- what kind of failure: real requests against local sockets --------------------------------------------


class _Listener:
    """A loopback TCP server that answers every connection with ``reply`` (``None``: never answers)."""

    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            conn.recv(4096)
            if self.reply is None:
                self.held.append(conn)
                continue
            conn.sendall(self.reply)
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failure(url: str, *, write: bool = False, proxy: str | None = None) -> ConnectorError:
    session = requests.Session()
    session.trust_env = False
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    link = transport(FakeClock())
    link.policy = RetryPolicy(attempts=1)
    with pytest.raises(ConnectorError) as raised:
        link.call(
            lambda: session.get(url, timeout=0.5).raise_for_status(),
            method="GET",
            what="GET issue",
            write=write,
        )
    return raised.value


def test_an_unknown_host_is_a_dns_failure() -> None:
    error = failure("http://nosuchhost.invalid/rest")
    assert (type(error), error.kind) == (Timeout, "DNS")
    assert str(error) == "jira:acme: GET issue: could not connect: DNS cannot resolve nosuchhost.invalid"


def test_a_closed_port_is_refused() -> None:
    port = closed_port()
    error = failure(f"http://127.0.0.1:{port}/rest")
    assert (type(error), error.kind) == (Timeout, "refused")
    assert str(error) == f"jira:acme: GET issue: could not connect: 127.0.0.1:{port} refused the connection"


def test_https_to_a_plain_http_server_is_a_tls_failure() -> None:
    server = _Listener(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    try:
        error = failure(f"https://127.0.0.1:{server.port}/rest")
    finally:
        server.close()
    assert (type(error), error.kind) == (Unavailable, "TLS")
    assert str(error).startswith("jira:acme: GET issue: no answer: TLS: [SSL: ")


def test_an_unreachable_proxy_and_a_proxy_refusing_us_are_proxy_failures() -> None:
    port = closed_port()
    error = failure("http://jira.example/rest", proxy=f"http://127.0.0.1:{port}")
    assert (type(error), error.kind) == (Timeout, "proxy")
    assert str(error) == f"jira:acme: GET issue: could not connect: the proxy 127.0.0.1:{port} is unreachable"
    proxy = _Listener(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
    try:
        tunnel = failure("https://jira.example/rest", proxy=f"http://127.0.0.1:{proxy.port}")
        plain = failure("http://jira.example/rest", proxy=f"http://127.0.0.1:{proxy.port}")
    finally:
        proxy.close()
    assert tunnel.kind == "proxy"
    assert str(tunnel).endswith("the proxy refused: 407 Proxy Authentication Required")
    assert (plain.kind, str(plain)) == ("proxy", "jira:acme: GET issue -> 407")


def test_no_answer_in_time_is_a_timeout_and_an_http_answer_names_its_status() -> None:
    silent = _Listener(None)
    try:
        error = failure(f"http://127.0.0.1:{silent.port}/rest")
        lost_write = failure(f"http://127.0.0.1:{silent.port}/rest", write=True)
    finally:
        silent.close()
    assert (type(error), error.kind, str(error)) == (
        Unavailable,
        "timeout",
        "jira:acme: GET issue: no answer: no answer within the timeout",
    )
    assert (type(lost_write), lost_write.kind) == (UncertainOutcome, "timeout")
    for status, kind in ((401, "auth"), (403, "HTTP 403"), (503, "HTTP 503")):
        server = _Listener(f"HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n".encode())
        try:
            assert failure(f"http://127.0.0.1:{server.port}/rest").kind == kind
        finally:
            server.close()
