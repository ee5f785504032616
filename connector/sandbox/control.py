"""A small client of the sandbox control API (``/_sandbox/``), for tests, benchmarks and scenarios."""

from __future__ import annotations

from typing import Any

import requests


class SandboxControl:
    """Talks to one simulator's ``/_sandbox/`` routes. Raises ``requests.HTTPError`` on a refusal."""

    def __init__(self, base_url: str, session: requests.Session | None = None, timeout: float = 10) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def _call(self, method: str, route: str, payload: Any = None, **params: Any) -> Any:
        response = self.session.request(
            method,
            f"{self.base_url}/_sandbox/{route}",
            json=payload,
            params=params or None,
            timeout=self.timeout,
        )
        response.raise_for_status()
        return response.json()

    def requests(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Journal entries newer than ``since``."""
        params = {"since": since} | ({"limit": limit} if limit is not None else {})
        result: list[dict[str, Any]] = self._call("GET", "requests", **params)["requests"]
        return result

    def last_seq(self) -> int:
        """The newest journal sequence number, to use as a ``since`` cursor."""
        last: int = self._call("GET", "requests", since=0, limit=0)["last"]
        return last

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        """Install one fault rule (see :class:`connector.sandbox.core.FaultRule`); return it with its id."""
        added: dict[str, Any] = self._call("POST", "faults", rule)["faults"][0]
        return added

    def faults(self) -> list[dict[str, Any]]:
        """The installed rules with their fired counts."""
        result: list[dict[str, Any]] = self._call("GET", "faults")["faults"]
        return result

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "faults")

    def reset(self) -> None:
        """Back to the seeded state: data, faults, clock skew and journal."""
        self._call("POST", "reset")

    def set_clock(self, skew_seconds: float) -> dict[str, Any]:
        """Shift the simulator's clock relative to real time."""
        result: dict[str, Any] = self._call("POST", "clock", {"skew_seconds": skew_seconds})
        return result

    def info(self) -> dict[str, Any]:
        """URLs, users and credentials of the simulator."""
        result: dict[str, Any] = self._call("GET", "info")
        return result

    def push_faults(self, **faults: Any) -> dict[str, Any]:
        """Change push faults (``delay_ms``, ``loss``, ``duplicate``, ``reorder``, ``pause``, ``retries``...).

        Without arguments only reads them. Returns the faults in force (see
        :class:`connector.sandbox.push.PushFaults`).
        """
        result: dict[str, Any] = self._call("POST" if faults else "GET", "push/faults", faults or None)
        return result

    def clear_push_faults(self) -> dict[str, Any]:
        """Push faults back to the platform's defaults (which also ends a pause)."""
        result: dict[str, Any] = self._call("DELETE", "push/faults")
        return result

    def push_deliveries(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Delivery log entries (one per attempt, or per delivery a fault removed) newer than ``since``."""
        params = {"since": since} | ({"limit": limit} if limit is not None else {})
        result: list[dict[str, Any]] = self._call("GET", "push/deliveries", **params)["deliveries"]
        return result

    def set_push(self, **setting: Any) -> dict[str, Any]:
        """ServiceNow only: change the push update set's setting; without arguments only reads it.

        Keys: ``url``, ``secret`` (raw), ``fields``, ``enabled``, ``bypass_probability``. The answer
        never holds the secret.
        """
        result: dict[str, Any] = self._call("POST" if setting else "GET", "push", setting or None)
        return result

    def post(self, route: str, payload: Any) -> Any:
        """Any other control route, e.g. ``settings`` or ``sites/acme/settings``."""
        return self._call("POST", route, payload)
