"""Serving a WSGI app from a thread on a port we bind ourselves (werkzeug would ``sys.exit`` on a bind error)."""

from __future__ import annotations

import socket
import threading
from typing import Any, Self

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """No line per request on stderr (the daemon's log and the sandbox journal say what matters)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Say nothing."""


def bind_server(
    app: Any, host: str, port: int, handler: type[WSGIRequestHandler] | None = None
) -> BaseWSGIServer:
    """A threaded server for ``app`` on ``host:port`` (0 = any free port).

    Raises:
        OSError: the address cannot be bound (e.g. the port is taken).
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        return make_server(
            host, port, app, threaded=True, request_handler=handler or QuietHandler, fd=listener.fileno()
        )
    finally:
        listener.close()


class ServedApp:
    """``app`` served on ``host:port`` from a daemon thread named ``name``; :attr:`port` is the bound one.

    Raises (on construction):
        OSError: the address cannot be bound.
    """

    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        self._server: BaseWSGIServer = bind_server(app, host, port)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    def start(self) -> Self:
        """Begin serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
