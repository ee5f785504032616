"""A simulated service desk analyst: writes on incidents once they are mirrored to a supplier.

Through the ServiceNow Table API over HTTP (as the sandbox ``admin``), every ``poll`` seconds it
looks for open incidents that carry a supplier reference (``correlation_display``, set by the
connector when it mirrors one); ``service_desk`` seconds after first seeing one, it posts a
customer update as a public comment, which the connector mirrors to the suppliers, and an
internal work note containing :data:`INTERNAL_MARK`, which must never leave ServiceNow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from connector.sandbox.agents import PEOPLE_LOGGER, Timing

log = logging.getLogger(f"{PEOPLE_LOGGER}.service-desk")

INTERNAL_MARK = "INTERNAL-ONLY"
"""Text every internal note carries, so that a test can prove none reached a supplier."""
CUSTOMER_UPDATE = (
    "Customer update: we are aware that some customers are affected and are working with our "
    "provider. Next update in 30 minutes."
)
INTERNAL_NOTE = (
    f"{INTERNAL_MARK} work note: the caller is on the VIP list and the duty manager has been told. "
    "Not for suppliers."
)
_MIRRORED = "correlation_displayISNOTEMPTY^stateIN1,2,3^ORDERBYsys_created_on"


class ServiceDesk:
    """Posts one customer update and one internal work note on each mirrored incident."""

    name = "service-desk"

    def __init__(
        self,
        base_url: str,
        auth: tuple[str, str],
        timing: Timing,
        *,
        clock: Callable[[], float] = time.monotonic,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timing = timing
        self.clock = clock
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json"})
        self._due: dict[str, float] = {}
        self._done: set[str] = set()
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Look for mirrored incidents every ``poll`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.step()
            except requests.RequestException as exc:
                log.warning("round failed, trying again: %s", type(exc).__name__)
            stop.wait(self.timing.poll)

    def busy(self) -> bool:
        """Whether a mirrored incident still awaits its update."""
        with self._lock:
            return bool(self._due)

    def step(self) -> None:
        """Notice newly mirrored incidents, then write on those whose time has come."""
        moment = self.clock()
        for record in self._get("incident", {"sysparm_query": _MIRRORED, "sysparm_fields": "sys_id,number"}):
            sys_id = str(record["sys_id"])
            with self._lock:
                if sys_id not in self._done and sys_id not in self._due:
                    self._due[sys_id] = moment + self.timing.delay(self.timing.service_desk, sys_id)
        with self._lock:
            ready = [sys_id for sys_id, due in self._due.items() if moment >= due]
        for sys_id in ready:
            response = self.session.patch(
                f"{self.base_url}/api/now/table/incident/{sys_id}",
                json={"comments": CUSTOMER_UPDATE, "work_notes": INTERNAL_NOTE},
                params={"sysparm_fields": "number"},
                timeout=10,
            )
            response.raise_for_status()
            with self._lock:
                self._due.pop(sys_id, None)
                self._done.add(sys_id)
            number = response.json()["result"].get("number", sys_id)
            log.info("posted a customer update and a work note on %s", number, extra={"incident": number})

    def _get(self, table: str, params: dict[str, str]) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.base_url}/api/now/table/{table}", params=params, timeout=10)
        response.raise_for_status()
        return list(response.json()["result"])
