"""Replay an incident event log into a (simulated) ServiceNow through its Table API, at N times real speed.

Each incident's first event becomes a ``POST /api/now/table/incident`` (keeping its number),
later events become ``PATCH`` requests carrying only what changed. Referenced records (groups,
users, CIs, business services, problems) are looked up by name and created when missing. The
original spacing of events is kept, divided by ``speed`` and, with ``max_gap``, never longer than
that (quiet nights and weeks of a log pass quickly); ``speed=0`` replays as fast as the server
answers. :func:`first_incidents` cuts a log down to its first incidents.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from connector.rules.backtest.eventlog import REFERENCE_COLUMNS, IncidentEvent, changed

log = logging.getLogger(__name__)

TABLE = "/api/now/table"
_DISPLAY_FIELD = {
    "sys_user": "name",
    "sys_user_group": "name",
    "cmdb_ci": "name",
    "cmdb_ci_service": "name",
    "problem": "short_description",
}
# Exports rarely carry the business service; a cast log (connector.sandbox.casting) does.
_REFERENCE_TABLES = {**REFERENCE_COLUMNS, "business_service": "cmdb_ci_service"}


@dataclass
class ReplayStats:
    """What a replay did."""

    created: int = 0
    updated: int = 0
    references_created: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def first_incidents(events: Sequence[IncidentEvent], limit: int | None) -> list[IncidentEvent]:
    """The events of the first ``limit`` incidents to appear in ``events`` (all of them for ``None``)."""
    if limit is None:
        return list(events)
    kept: set[str] = set()
    for event in events:
        if len(kept) == limit:
            break
        kept.add(event.number)
    return [event for event in events if event.number in kept]


def schedule(events: Sequence[IncidentEvent], speed: float, max_gap: float | None = None) -> list[float]:
    """Seconds after the start at which each event is due: logged gaps / ``speed``, capped at ``max_gap``.

    ``speed=0`` means no waiting at all (every event is due at once).
    """
    due: list[float] = []
    offset = 0.0
    for index, event in enumerate(events):
        if index and speed > 0:
            gap = (event.updated_at - events[index - 1].updated_at).total_seconds() / speed
            offset += gap if max_gap is None else min(gap, max_gap)
        due.append(offset)
    return due


class Replayer:
    """Writes events to a ServiceNow instance as one user (normally the sandbox ``admin``)."""

    def __init__(
        self,
        base_url: str,
        auth: tuple[str, str],
        *,
        speed: float = 0.0,
        max_gap: float | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.speed = speed
        self.max_gap = max_gap
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json"})
        self.sleep = sleep
        self.timeout = timeout
        self._sys_ids: dict[tuple[str, str], str] = {}
        self._incidents: dict[str, tuple[str, IncidentEvent]] = {}

    def run(self, events: Sequence[IncidentEvent], stop: threading.Event | None = None) -> ReplayStats:
        """Replay ``events`` in order, pacing them by ``speed``; stops early when ``stop`` is set."""
        stats = ReplayStats()
        start_wall = time.monotonic()
        for event, due in zip(events, schedule(events, self.speed, self.max_gap), strict=True):
            if stop is not None and stop.is_set():
                break
            wait = due - (time.monotonic() - start_wall)
            if wait > 0:
                self._pause(wait, stop)
            try:
                self._apply(event, stats)
            except (requests.RequestException, KeyError, ValueError) as exc:
                stats.failed += 1
                stats.errors.append(f"{event.number}#{event.mod_count}: {exc}")
                log.warning("replay of %s (update %s) failed: %s", event.number, event.mod_count, exc)
        return stats

    def _pause(self, seconds: float, stop: threading.Event | None) -> None:
        """Sleep, but wake at once when ``stop`` is set (a slow replay must not delay shutdown)."""
        if self.sleep is not None:
            self.sleep(seconds)
        elif stop is not None:
            stop.wait(seconds)
        else:
            time.sleep(seconds)

    def _apply(self, event: IncidentEvent, stats: ReplayStats) -> None:
        known = self._incidents.get(event.number)
        fields, references = changed(known[1] if known else None, event)
        payload: dict[str, str] = dict(fields)
        for column, name in references.items():
            payload[column] = self._reference(_REFERENCE_TABLES[column], name, stats) if name else ""
        if known is None:
            payload |= {
                "number": event.number,
                "short_description": _summary(event),
                "description": _description(event),
            }
            record = self._call("POST", f"{TABLE}/incident", payload)
            self._incidents[event.number] = (record["sys_id"], event)
            stats.created += 1
            return
        sys_id = known[0]
        if payload:
            self._call("PATCH", f"{TABLE}/incident/{sys_id}", payload)
            stats.updated += 1
        self._incidents[event.number] = (sys_id, event)

    def _reference(self, table: str, name: str, stats: ReplayStats) -> str:
        key = (table, name)
        if key in self._sys_ids:
            return self._sys_ids[key]
        display = _DISPLAY_FIELD[table]
        found = self._call(
            "GET",
            f"{TABLE}/{table}",
            params={"sysparm_query": f"{display}={name}", "sysparm_limit": "1", "sysparm_fields": "sys_id"},
        )
        if found:
            sys_id = str(found[0]["sys_id"])
        else:
            sys_id = str(self._call("POST", f"{TABLE}/{table}", {display: name})["sys_id"])
            stats.references_created += 1
        self._sys_ids[key] = sys_id
        return sys_id

    def _call(
        self,
        method: str,
        path: str,
        payload: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        response = self.session.request(
            method, f"{self.base_url}{path}", json=payload, params=params, timeout=self.timeout
        )
        if response.status_code >= 400:
            raise ValueError(f"{method} {path} -> {response.status_code} {response.text[:200]}")
        return response.json()["result"]


def _summary(event: IncidentEvent) -> str:
    category = event.fields.get("category") or "Uncategorised"
    symptom = event.fields.get("u_symptom")
    return f"{category} / {event.fields.get('subcategory') or 'general'}" + (
        f": {symptom}" if symptom else ""
    )


def _description(event: IncidentEvent) -> str:
    return (
        f"Replayed from the incident event log (original {event.number}, recorded priority "
        f"{event.priority or 'unknown'}). Source: Amaral, Fantinato, Peres, UCI Machine Learning Repository."
    )
