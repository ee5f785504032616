"""The shared simulator machinery over real HTTP: journal, faults before and after commit, drops, clock."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from connector.sandbox.control import SandboxControl
from connector.sandbox.core import PlatformApp, json_response, read_json
from connector.sandbox.server import AppServer


class Counter(PlatformApp):
    """A toy platform: POST /count increments, GET /count reads."""

    name = "counter"

    def __init__(self) -> None:
        super().__init__()
        self.value = 0
        self.client_ports: set[int] = set()

    def handle(self, request: Request) -> Response:
        self.set_user(request, request.headers.get("X-User", "anonymous"))
        self.client_ports.add(int(request.environ["REMOTE_PORT"]))
        if request.path != "/count":
            return self.error(404, "No such path")
        if request.method == "POST":
            body = read_json(request) or {}
            with self.lock:
                self.value += int(body.get("by", 1))
            return json_response({"value": self.value}, 201)
        return json_response({"value": self.value})

    def reset_data(self) -> None:
        self.value = 0

    def info(self) -> dict[str, Any]:
        return {**super().info(), "users": ["anonymous"]}


@pytest.fixture
def served() -> Iterator[tuple[Counter, str, SandboxControl]]:
    app = Counter()
    server = AppServer(app).start()
    yield app, server.url, SandboxControl(server.url)
    server.stop()


def test_journal_records_every_request_with_user_status_and_body(served) -> None:
    _app, url, control = served
    requests.post(f"{url}/count", json={"by": 2}, headers={"X-User": "alice"}, timeout=5)
    requests.get(f"{url}/count?x=1", timeout=5)
    entries = control.requests()
    assert [(e["seq"], e["method"], e["path"], e["status"]) for e in entries] == [
        (1, "POST", "/count", 201),
        (2, "GET", "/count", 200),
    ]
    assert entries[0]["user"] == "alice" and entries[0]["body"] == {"by": 2}
    assert entries[1]["query"] == "x=1"
    assert [e["seq"] for e in control.requests(since=1)] == [2]
    assert control.last_seq() == 2


def test_fault_before_does_not_apply_the_request(served) -> None:
    app, url, control = served
    rule = control.add_fault(
        method="POST", path="^/count$", status=503, count=1, headers={"Retry-After": "7"}
    )
    first = requests.post(f"{url}/count", json={}, timeout=5)
    assert (first.status_code, first.headers["Retry-After"]) == (503, "7")
    assert first.json()["error"]["detail"] == f"sandbox fault rule {rule['id']}"
    assert app.value == 0
    assert requests.post(f"{url}/count", json={}, timeout=5).status_code == 201
    assert control.faults()[0]["fired"] == 1


def test_fault_after_commit_applies_then_fails(served) -> None:
    app, url, control = served
    control.add_fault(method="POST", path="/count", status=500, when="after_commit", count=1)
    assert requests.post(f"{url}/count", json={}, timeout=5).status_code == 500
    assert app.value == 1


@pytest.mark.parametrize(
    ("action", "error"), [("drop", requests.ConnectionError), ("reset", requests.ConnectionError)]
)
def test_dropped_answer_after_commit(served, action: str, error: type[Exception]) -> None:
    app, url, control = served
    control.add_fault(method="POST", path="/count", when="after_commit", action=action, count=1)
    with pytest.raises(error):
        requests.post(f"{url}/count", json={}, timeout=5)
    assert app.value == 1, "the write was applied although the client never heard back"
    assert requests.get(f"{url}/count", timeout=5).json() == {"value": 1}, "the server keeps serving"
    assert control.requests()[0]["status"] == 0


def test_delay_makes_a_client_time_out(served) -> None:
    _app, url, control = served
    control.add_fault(
        path="/count", delay_ms=400, status=200, count=1, when="after_commit", body={"value": -1}
    )
    with pytest.raises(requests.Timeout):
        requests.get(f"{url}/count", timeout=0.1)


def test_pass_only_adds_latency(served) -> None:
    app, url, control = served
    control.add_fault(method="POST", path="/count", action="pass", delay_ms=200, count=1)
    started = time.monotonic()
    assert requests.post(f"{url}/count", json={}, timeout=5).status_code == 201
    assert time.monotonic() - started >= 0.2
    assert app.value == 1


def test_probability_and_unknown_keys(served) -> None:
    _app, url, control = served
    with pytest.raises(requests.HTTPError):
        control.add_fault(path="/count", sttaus=500)
    control.add_fault(path="/count", status=502, probability=0.0)
    assert requests.get(f"{url}/count", timeout=5).status_code == 200


def test_clock_skew_and_reset(served) -> None:
    app, url, control = served
    requests.post(f"{url}/count", json={}, timeout=5)
    assert control.set_clock(90)["skew_seconds"] == 90
    assert app.clock.skew_seconds == 90
    served_at = parsedate_to_datetime(requests.get(f"{url}/count", timeout=5).headers["Date"])
    assert 85 <= (served_at - datetime.now(UTC)).total_seconds() <= 92, (
        "the Date header follows the skewed clock"
    )
    # Each journal entry says which clock its time is on, so readers can convert it back.
    before, after = control.requests()[0], control.requests()[-1]
    assert (before["skew_seconds"], after["skew_seconds"]) == (0, 90)
    journaled = datetime.fromisoformat(after["time"]).timestamp() - after["skew_seconds"]
    assert abs(journaled - time.time()) < 5
    control.add_fault(path="/count", status=500)
    control.reset()
    assert (app.value, app.clock.skew_seconds, control.faults(), control.requests()) == (0, 0, [], [])
    assert control.info() == {"name": "counter", "url": url, "users": ["anonymous"]}


def test_a_crashing_handler_answers_500_and_keeps_serving(served) -> None:
    _app, url, _control = served
    requests.post(f"{url}/count", data="not json", headers={"Content-Type": "application/json"}, timeout=5)
    assert requests.get(f"{url}/count", timeout=5).status_code == 200


def test_a_client_gone_during_its_body_is_journaled_as_such_and_not_applied(served, caplog) -> None:
    app, url, control = served
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(
            b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
    deadline = time.monotonic() + 5
    while not control.requests() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(e["method"], e["path"], e["status"]) for e in control.requests()] == [("POST", "/count", 400)]
    assert app.value == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert requests.get(f"{url}/count", timeout=5).json() == {"value": 0}


def test_a_client_keeps_one_connection_for_many_requests_with_and_without_bodies(served) -> None:
    app, url, _control = served
    with requests.Session() as session:
        for by in range(1, 4):
            assert session.post(f"{url}/count", json={"by": by}, timeout=5).status_code == 201
            assert session.get(f"{url}/count", timeout=5).json() == {"value": app.value}
        # A body the application never reads (an unknown path) must not spill into the next request.
        assert session.post(f"{url}/nowhere", data=b"x" * 100_000, timeout=5).status_code == 404
        assert session.get(f"{url}/count", timeout=5).json() == {"value": 6}
        assert len(app.client_ports) == 1, "one TCP connection for all of them"


def test_a_connection_fault_costs_the_client_its_connection_only(served) -> None:
    app, url, control = served
    control.add_fault(method="GET", path="/count", action="reset", count=1)
    with requests.Session() as session:
        assert session.post(f"{url}/count", json={}, timeout=5).status_code == 201
        with pytest.raises(requests.ConnectionError):
            session.get(f"{url}/count", timeout=5)
        assert session.get(f"{url}/count", timeout=5).json() == {"value": 1}
        assert len(app.client_ports) == 2


def test_a_stopped_server_answers_no_kept_connection() -> None:
    app = Counter()
    server = AppServer(app).start()
    with requests.Session() as session:
        assert session.get(f"{server.url}/count", timeout=5).status_code == 200
        server.stop()
        with pytest.raises(requests.ConnectionError):
            session.get(f"{server.url}/count", timeout=5)
