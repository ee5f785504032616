"""``/metrics`` (Prometheus), ``/healthz`` and ``/readyz`` on the configured metrics port.

Live: the loop has completed a cycle recently (within three poll intervals); nothing else, so that
an orchestrator never restarts the daemon for a supplier's outage. Ready: the last cycle reached
ServiceNow and no configured system is failing: none unreachable, none with an endpoint failing
every retry, none with refused credentials, no supplier whose last polls all failed (see
``Runtime.problems``). Both answer JSON with the reason, for humans and probes alike; ``/readyz``
also names each failing system (``servicenow`` or the supplier) and why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from werkzeug.wrappers import Request, Response

from connector.http.serve import ServedApp


class Health:
    """What the probes report; the daemon updates it after every cycle."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._beat: float | None = None
        self.ready = False
        self.reason = "starting"
        self.failing: dict[str, list[str]] = {}

    def beat(self, ready: bool, reason: str, failing: Mapping[str, Sequence[str]] | None = None) -> None:
        """A cycle finished; ``ready`` says whether ServiceNow was reachable, ``failing`` what else is not working.

        Not ready while anything is failing: ``reason`` then names the first problem of each system.
        """
        self._beat = self._clock()
        self.failing = {system: list(lines) for system, lines in (failing or {}).items() if lines}
        self.ready = ready and not self.failing
        problems = "; ".join(f"{system}: {lines[0]}" for system, lines in self.failing.items())
        self.reason = f"{reason}; {problems}" if problems and not ready else problems or reason

    def live(self) -> tuple[bool, str]:
        """Whether the loop is making progress."""
        if self._beat is None:
            return True, "starting"
        age = self._clock() - self._beat
        return (age <= self.stale_after, f"last cycle {age:.0f}s ago")


class HealthServer(ServedApp):
    """Serves the three endpoints from a background thread."""

    def __init__(self, health: Health, host: str, port: int) -> None:
        self.health = health
        super().__init__(self._app, host, port, "health")

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == "/metrics":
            response = Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)
        elif request.path == "/healthz":
            ok, reason = self.health.live()
            response = _json(ok, reason)
        elif request.path == "/readyz":
            response = _json(self.health.ready, self.health.reason, failing=self.health.failing)
        else:
            response = Response("not found\n", status=404)
        return response(environ, start_response)


def _json(ok: bool, reason: str, **more: Any) -> Response:
    body = json.dumps({"status": "ok" if ok else "failing", "reason": reason, **more})
    return Response(body, status=200 if ok else 503, mimetype="application/json")
