"""Serve a :class:`~connector.sandbox.core.PlatformApp` on loopback from a background thread."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import IO, Any, cast

from werkzeug.exceptions import ClientDisconnected
from werkzeug.serving import BaseWSGIServer
from werkzeug.wsgi import LimitedStream

from connector.http.serve import QuietHandler, bind_server
from connector.sandbox.core import CONNECTION_STREAM, PlatformApp

log = logging.getLogger(__name__)

#: How long a kept-alive connection may sit idle before the server closes it.
IDLE_TIMEOUT = 60.0
#: The most of an unread request body the server reads and discards to keep a connection open.
DRAIN_LIMIT = 16 * 1024 * 1024


class _QuietHandler(QuietHandler):
    """Keeps connections alive, logs nothing per request, ignores connections the sandbox cut itself.

    werkzeug's own handler answers every request with ``Connection: close`` and then reads the socket
    for 10 ms to discard an unread body, because it does not track where a body ends. The real
    platforms keep HTTP/1.1 connections alive, and the clients pool them; a simulator that closes
    each one makes every call pay a TCP connect and that 10 ms. This handler bounds the request body
    by its ``Content-Length``, discards what the application left unread, answers with a
    ``Content-Length`` and keeps the connection for the next request unless the client, a chunked
    request or a connection fault says otherwise.
    """

    timeout = IDLE_TIMEOUT

    def log_error(self, format: str, *args: Any) -> None:
        """Route errors to our logger at debug level."""
        log.debug("sandbox http: %s", format % args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The ``Date`` header from the platform's (possibly skewed) clock, as a real server's would be."""
        if timestamp is None:
            app = getattr(self.server, "app", None)
            if isinstance(app, PlatformApp):
                timestamp = app.clock.now().timestamp()
        return super().date_time_string(timestamp)

    def setup(self) -> None:
        """Register the connection so that stopping the server closes it."""
        super().setup()
        _live(self.server).add(self.connection)

    def finish(self) -> None:
        """Forget the connection."""
        _live(self.server).discard(self.connection)
        with contextlib.suppress(OSError):  # a drop/reset fault closed the socket already
            super().finish()

    def handle(self) -> None:
        """Serve, treating a socket closed by a drop/reset fault like a dropped client."""
        try:
            super().handle()
        except OSError as exc:
            self.connection_dropped(exc)

    def run_wsgi(self) -> None:
        """Answer one request, keeping the connection open for the next one where HTTP allows."""
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        environ = self.environ = self.make_environ()
        body: LimitedStream | None = None
        if environ.get("wsgi.input_terminated"):  # chunked: werkzeug dechunks, the end is its business
            self.close_connection = True
        else:
            try:
                length = max(int(self.headers.get("Content-Length") or 0), 0)
            except ValueError:
                length = 0
                self.close_connection = True
            body = LimitedStream(cast(IO[bytes], self.rfile), length)
            environ["wsgi.input"] = body
        environ[CONNECTION_STREAM] = self.rfile
        answer: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer[:] = [status, headers]
            return lambda data: chunks.append(data)

        chunks: list[bytes] = []
        try:
            result = self.server.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
            if body is not None and body.limit - body.tell() > DRAIN_LIMIT:
                self.close_connection = True
            elif body is not None:
                body.exhaust()
        except ClientDisconnected:
            self.close_connection = True
            return
        except Exception:  # the simulators answer their own errors; this is a defect in one
            log.exception("sandbox %s %s failed", self.command, self.path)
            answer[:] = ["500 INTERNAL SERVER ERROR", [("Content-Type", "text/plain")]]
            chunks[:] = [b"Internal Server Error"]
            self.close_connection = True
        if self.connection.fileno() < 0:  # a reset fault closed it
            self.close_connection = True
            return
        status, headers = answer
        code, _, reason = status.partition(" ")
        self.send_response(int(code), reason)
        named = {key.lower() for key, _ in headers}
        for key, value in headers:
            self.send_header(key, value)
        payload = b"".join(chunks)
        if "content-length" not in named and int(code) not in (204, 304) and not 100 <= int(code) < 200:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()


def _live(server: Any) -> set[socket.socket]:
    """The connections ``server`` is serving (set by :meth:`AppServer.start`)."""
    live: set[socket.socket] = server.live_connections
    return live


class AppServer:
    """A threaded HTTP server for one app; ``port=0`` picks a free port."""

    def __init__(self, app: PlatformApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> AppServer:
        """Bind and serve in a daemon thread. Raises ``OSError`` when the port is taken."""
        # werkzeug logs an "Error on request" traceback when a reset fault has closed the socket
        # under it; that is the fault working, not an error.
        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        server = bind_server(self.app, self.host, self.port, _QuietHandler)
        server.live_connections = set()  # type: ignore[attr-defined]
        self._server = server
        self.port = int(server.server_address[1])
        self.app.base_url = self.url
        self._thread = threading.Thread(
            target=server.serve_forever, name=f"sandbox-{self.app.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            # Kept-alive connections outlive the listener; a stopped platform answers nothing.
            for connection in list(_live(self._server)):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
