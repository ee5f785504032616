"""The transport's circuit breakers (an endpoint failing every retry is left alone for a while, the whole
system when no connection can be made), the back-off of refused credentials, an operator's explicit
retry, the sessions it watches (proxy settings read from the environment once), and the kind of
failure it names (DNS, refused, TLS, proxy, timeout, auth, HTTP status)."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import pytest
import requests
import responses
from prometheus_client import REGISTRY

from connector.core.errors import (
    AuthError,
    CircuitOpen,
    ConnectorError,
    CredentialsRefused,
    PermissionDenied,
    RateLimited,
    Timeout,
    Unavailable,
    UncertainOutcome,
)
from connector.http.breaker import Breakers, explicit_retry
from connector.http.ratelimit import Limiter
from connector.http.retry import RetryPolicy
from connector.http.transport import PoolAdapter, Transport
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


# --- breakers scoped to what failed, an operator's retry, refused credentials (HTTP mocked with responses) ---

SITE = "https://acme.example"


def http(clock: FakeClock, system: str = "jira:acme") -> tuple[Transport, requests.Session]:
    """A transport and the session its calls go through (answers come from ``responses``)."""
    limiter = Limiter(100.0, 100, clock=clock, sleep=clock.sleep)
    policy = RetryPolicy(attempts=3, initial=0.1, maximum=1.0, jitter=0.0)
    link = Transport(system, limiter, policy=policy, sleep=clock.sleep, cooldown=30.0, clock=clock)
    session = requests.Session()
    link.watch(session, SITE)
    return link, session


def send(link: Transport, session: requests.Session, method: str, path: str, *, login: bool = False) -> int:
    """One request through the transport, its endpoint named like the Jira adapter names it."""

    def fn() -> int:
        response = session.request(method, f"{SITE}{path}", timeout=5)
        response.raise_for_status()
        return response.status_code

    endpoint = f"{method} {path.split('/')[1]}"
    return link.call(
        fn, method=method, what=f"{method} {path}", write=method != "GET", endpoint=endpoint, login=login
    )


def sent(method: str, path: str) -> int:
    return sum(
        1 for call in responses.calls if call.request.method == method and call.request.url == f"{SITE}{path}"
    )


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@responses.activate
def test_a_failing_endpoint_opens_its_own_breaker_and_the_sites_other_endpoints_go_on() -> None:
    clock = FakeClock()
    link, session = http(clock)
    responses.add(responses.POST, f"{SITE}/issue", status=503)
    responses.add(responses.GET, f"{SITE}/search", status=200)
    responses.add(responses.PUT, f"{SITE}/issue/ACME-1", status=204)

    with pytest.raises(Unavailable):
        send(link, session, "POST", "/issue")
    assert sent("POST", "/issue") == 3, "every retry, then the endpoint's breaker opens"
    with pytest.raises(CircuitOpen, match="POST issue failed every try for 0s"):
        send(link, session, "POST", "/issue")
    assert sent("POST", "/issue") == 3, "nothing sent to the failing endpoint during its cool-down"
    assert send(link, session, "GET", "/search") == 200, "polling goes on"
    assert send(link, session, "PUT", "/issue/ACME-1") == 204, "updates of other issues go on"
    assert gauge("mim_site_up", system="jira:acme") == 0
    assert gauge("mim_circuit_open", system="jira:acme", scope="POST issue") == 1
    assert link.breakers.problems()[0].startswith(
        "POST issue failing for 0s (next try in 30s): Unavailable: "
    )


@responses.activate
def test_no_connection_at_all_leaves_the_whole_site_alone_until_a_probe_gets_through() -> None:
    clock = FakeClock()
    link, session = http(clock)
    responses.add(responses.GET, f"{SITE}/search", body=requests.ConnectTimeout("connect timeout"))
    with pytest.raises(Timeout):
        send(link, session, "GET", "/search")
    with pytest.raises(CircuitOpen, match="the system failed every try"):
        send(link, session, "PUT", "/issue/ACME-1")
    assert sent("PUT", "/issue/ACME-1") == 0
    responses.replace(responses.GET, f"{SITE}/search", status=200)
    responses.add(responses.PUT, f"{SITE}/issue/ACME-1", status=204)
    clock.now += 31
    assert send(link, session, "GET", "/search") == 200, "the probe after the cool-down"
    assert send(link, session, "PUT", "/issue/ACME-1") == 204
    assert link.breakers.problems() == [] and gauge("mim_site_up", system="jira:acme") == 1


def test_after_a_cooldown_one_probe_goes_while_the_others_still_wait() -> None:
    clock = FakeClock()
    breakers = Breakers("jira:acme", 30.0, clock)
    breakers.settled("POST issue", Unavailable("503"), started=clock())
    clock.now += 31
    assert breakers.admit("POST issue", "POST issue") is True, "the probe"
    with pytest.raises(CircuitOpen, match="a try is under way"):
        breakers.admit("POST issue", "POST issue")
    breakers.settled("POST issue", Unavailable("503 again"), started=clock())
    with pytest.raises(CircuitOpen, match="next try in 30s"):
        breakers.admit("POST issue", "POST issue")
    clock.now += 31
    breakers.admit("POST issue", "POST issue")
    breakers.settled("POST issue", None, started=clock())
    assert breakers.admit("POST issue", "POST issue") is False and breakers.problems() == []


@responses.activate
def test_an_explicit_retry_is_sent_during_the_cooldown_yet_a_retry_after_still_holds() -> None:
    clock = FakeClock()
    link, session = http(clock)
    responses.add(responses.POST, f"{SITE}/issue", status=503)
    with pytest.raises(Unavailable):
        send(link, session, "POST", "/issue")
    responses.replace(responses.POST, f"{SITE}/issue", status=201)
    with pytest.raises(CircuitOpen):
        send(link, session, "POST", "/issue")
    with explicit_retry():
        assert send(link, session, "POST", "/issue") == 201, "the operator's retry reaches the site"
    assert sent("POST", "/issue") == 4
    assert send(link, session, "POST", "/issue") == 201, "its success closed the breaker for everyone"

    responses.replace(responses.POST, f"{SITE}/issue", status=429, headers={"Retry-After": "20"})
    with pytest.raises(RateLimited):
        send(link, session, "POST", "/issue")
    responses.replace(responses.POST, f"{SITE}/issue", status=201)
    before = clock.now
    with explicit_retry():
        assert send(link, session, "POST", "/issue") == 201
    assert clock.now - before >= 20, "a 429's Retry-After is a floor, asked for or not"


@responses.activate
def test_refused_credentials_back_off_from_a_minute_to_half_an_hour_logged_once_per_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    link, session = http(clock, "jira:globex")
    responses.add(responses.GET, f"{SITE}/myself", status=401, json={"errorMessages": ["Unauthorized"]})
    caplog.set_level(logging.INFO, logger="connector.http.breaker")
    pauses = []
    for _poll in range(400):  # a poll every 10 s for more than an hour
        try:
            send(link, session, "GET", "/myself", login=True)
        except CredentialsRefused:
            pass
        except AuthError:
            pauses.append(gauge("mim_auth_backoff_seconds", system="jira:globex"))
        clock.now += 10
    assert pauses == [60, 120, 240, 480, 960, 1800, 1800], "doubling from a minute up to half an hour"
    assert sent("GET", "/myself") == len(pauses), "one request per back-off step, not one per poll"
    refusals = [r for r in caplog.records if "credentials refused" in r.getMessage()]
    assert len(refusals) == len(pauses), "logged once per step"
    assert gauge("mim_site_up", system="jira:globex") == 0
    assert link.breakers.problems()[0].startswith("credentials refused for ")

    responses.replace(responses.GET, f"{SITE}/myself", status=200, json={})
    clock.now += 1800
    assert send(link, session, "GET", "/myself", login=True) == 200
    assert gauge("mim_auth_backoff_seconds", system="jira:globex") == 0
    assert gauge("mim_site_up", system="jira:globex") == 1


@responses.activate
def test_a_403_refuses_the_credentials_on_a_login_or_with_a_login_reason_and_is_a_permission_elsewhere() -> (
    None
):
    clock = FakeClock()
    link, session = http(clock, "jira:initech")
    responses.add(responses.GET, f"{SITE}/project", status=403)
    with pytest.raises(PermissionDenied):
        send(link, session, "GET", "/project")
    assert link.breakers.problems() == [], "a missing permission is not refused credentials"

    responses.add(responses.GET, f"{SITE}/serverInfo", status=403)
    with pytest.raises(AuthError):
        send(link, session, "GET", "/serverInfo", login=True)
    with pytest.raises(CredentialsRefused):
        send(link, session, "GET", "/project")

    other, session = http(clock, "jira:dc")
    captcha = {"X-Seraph-LoginReason": "AUTHENTICATION_DENIED"}
    responses.add(responses.GET, f"{SITE}/search", status=403, headers=captcha)
    with pytest.raises(AuthError, match="login refused: AUTHENTICATION_DENIED"):
        send(other, session, "GET", "/search")
    assert other.breakers.problems()[0].startswith("credentials refused")


@responses.activate
def test_a_refusal_the_caller_renews_after_does_not_count_against_the_credentials() -> None:
    clock = FakeClock()
    link, session = http(clock, "servicenow")
    responses.add(responses.GET, f"{SITE}/incident", status=401)

    def fn() -> int:
        response = session.get(f"{SITE}/incident", timeout=5)
        response.raise_for_status()
        return response.status_code

    with pytest.raises(AuthError):
        link.call(fn, method="GET", what="GET incident", write=False, renewable=True)
    assert link.breakers.problems() == [], "an expired token: renewed, then the call once more"
    with pytest.raises(AuthError):
        link.call(fn, method="GET", what="GET incident", write=False)
    assert link.breakers.problems()[0].startswith("credentials refused")


def test_the_pool_adapter_works_out_a_hosts_pool_settings_once_and_hands_out_copies(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    adapter = PoolAdapter()

    def key(url: str, verify: object = str(bundle)) -> object:
        request = requests.Request("GET", url).prepare()
        return adapter.build_connection_pool_key_attributes(request, verify)

    host, pool = key("https://acme.example:8443/rest/api/2/issue/A-1")
    assert host == {"scheme": "https", "host": "acme.example", "port": 8443}
    assert pool == {"ca_certs": str(bundle), "cert_reqs": "CERT_REQUIRED"}
    pool["ca_certs"] = "changed by the caller"
    assert key("https://acme.example:8443/rest/api/2/search") == (host, {**pool, "ca_certs": str(bundle)})
    assert key("https://acme.example:8443/x", verify=str(tmp_path))[1]["ca_cert_dir"] == str(tmp_path)
    assert key("http://other.example/x")[0] == {"scheme": "http", "host": "other.example", "port": None}
