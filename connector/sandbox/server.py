"""Serve a :class:`~connector.sandbox.core.PlatformApp` on loopback from a background thread."""

from __future__ import annotations

import logging
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer

from connector.http.serve import QuietHandler, bind_server
from connector.sandbox.core import PlatformApp

log = logging.getLogger(__name__)


class _QuietHandler(QuietHandler):
    """Request handler that logs nothing per request and ignores connections the sandbox cut itself."""

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

    def handle(self) -> None:
        """Serve, treating a socket closed by a drop/reset fault like a dropped client."""
        try:
            super().handle()
        except OSError as exc:
            self.connection_dropped(exc)


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
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
