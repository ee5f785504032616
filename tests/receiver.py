"""A tiny HTTP receiver for the simulators' pushes (webhooks, ServiceNow notifications) in tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    """One POST the receiver got: path, headers (lower-case names), raw body, arrival (monotonic)."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A tiny HTTP server in a thread: records every POST, answers the next scripted status (else 200)."""

    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.cond:
                    receiver.received.append(
                        Received(
                            self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                        )
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.cond.notify_all()
                if receiver.delay:
                    time.sleep(receiver.delay)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up waiting (a timeout test)
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def answer(self, *statuses: int) -> None:
        """Answer the next POSTs with these statuses, then 200 again."""
        with self.cond:
            self.statuses.extend(statuses)

    def wait(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The first ``count`` POSTs, waiting for them; fails the test when they do not come."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"expected {count} deliveries, got {len(self.received)}"
                self.cond.wait(left)
            return list(self.received[:count])

    def quiet(self, seconds: float = 0.2) -> list[Received]:
        """Everything received after waiting ``seconds`` more (to show that nothing else came)."""
        time.sleep(seconds)
        with self.cond:
            return list(self.received)
