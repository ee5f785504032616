"""The sandboxes' request journals, collected while the scenario runs.

Each simulator keeps only its newest requests, so :class:`JournalCollector` pages through both
journals in the background and keeps a compact :class:`Request` per entry. It scans every body,
path and query the Jira server received for the canary prefix on the way (a leak is a canary in
*any* request to a supplier), and converts the journal's server times back to real time with the
skew each entry was journaled under.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from connector.sandbox.control import SandboxControl
from tests.scenarios.stage import HUMAN_PARAM, JIRA_USER, SN_USER

log = logging.getLogger(__name__)
CANARY_PREFIX = "CANARY-"
SYSTEMS = ("servicenow", "jira")


@dataclass(frozen=True, slots=True)
class Request:
    """One journal entry, compact; ``start``/``end`` are real (unskewed) epoch seconds."""

    system: str
    seq: int
    method: str
    path: str
    status: int
    user: str
    fault: int | None
    start: float
    end: float
    incident_poll: bool
    skew: float
    """The server clock's skew when it answered, as the server journaled it (to read HTTP-dates it sent)."""


@dataclass(frozen=True)
class Leak:
    """A canary found in a request to a supplier."""

    seq: int
    method: str
    path: str
    user: str
    excerpt: str


class JournalCollector:
    """Collects both journals every ``interval`` seconds until stopped; thread-safe."""

    def __init__(
        self, controls: dict[str, SandboxControl], interval: float = 1.0, sink: Path | None = None
    ) -> None:
        self.controls = controls
        self.sink = sink
        """A folder to append every raw entry to (``<system>.jsonl``), for a post-mortem."""
        self.interval = interval
        self.requests: list[Request] = []
        self.leaks: list[Leak] = []
        self.faulted = 0
        """Requests a fault rule matched (any rule, kills' held writes included)."""
        self._cursor = {system: control.last_seq() for system, control in controls.items()}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Collect in the background."""
        self._thread = threading.Thread(target=self._run, name="journal-collector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and collect what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.collect()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.collect()
            except Exception:
                log.exception("journal collection failed; retrying")

    def collect(self) -> None:
        """Fetch every entry newer than the cursors."""
        with self._lock:
            for system, control in self.controls.items():
                while True:
                    batch = control.requests(since=self._cursor[system], limit=5000)
                    if not batch:
                        break
                    for entry in batch:
                        self._take(system, entry)
                    if self.sink is not None:
                        with (self.sink / f"{system}.jsonl").open("a") as out:
                            out.writelines(json.dumps(entry) + "\n" for entry in batch)
                    self._cursor[system] = batch[-1]["seq"]

    def since(self, system: str, seq: int) -> list[Request]:
        """Collected requests of ``system`` after ``seq``."""
        with self._lock:
            return [r for r in self.requests if r.system == system and r.seq > seq]

    def after(self, moment: float) -> list[Request]:
        """Requests (collected first) that the servers received after ``moment`` (epoch seconds)."""
        self.collect()
        with self._lock:
            return [r for r in self.requests if r.start > moment]

    def last_seq(self, system: str) -> int:
        """The newest sequence number of ``system`` right now (collects first)."""
        self.collect()
        with self._lock:
            return self._cursor[system]

    def _take(self, system: str, entry: dict[str, Any]) -> None:
        skew = float(entry["skew_seconds"])
        end = datetime.fromisoformat(entry["time"]).timestamp() - skew
        start = end - float(entry.get("duration_ms") or 0) / 1000
        query = entry.get("query") or ""
        poll = (
            system == "servicenow"
            and entry["method"] == "GET"
            and entry["path"] == "/api/now/table/incident"
            and parse_qs(query).get("sysparm_query", [""])[0].startswith("sys_updated_on>=")
        )
        self.faulted += entry.get("fault") is not None
        user = entry.get("user") or ""
        if not user and HUMAN_PARAM not in query:
            # A request answered by a fault before it was authenticated: every person's request
            # is tagged, so an untagged one is the connector's.
            user = SN_USER if system == "servicenow" else JIRA_USER
        self.requests.append(
            Request(
                system,
                entry["seq"],
                entry["method"],
                entry["path"],
                int(entry["status"]),
                user,
                entry.get("fault"),
                start,
                end,
                poll,
                skew,
            )
        )
        if system == "jira":
            text = f"{entry['path']} {query} {entry.get('body')}"
            at = text.find(CANARY_PREFIX)
            if at >= 0:
                self.leaks.append(
                    Leak(
                        entry["seq"],
                        entry["method"],
                        entry["path"],
                        entry.get("user") or "",
                        text[at : at + 80],
                    )
                )
