"""What the work queue holds, as Python sees it: a reason to enqueue, an item, and how reasons fold.

Pure (no I/O): :mod:`connector.store.queue` reads and writes these in the ``work`` table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.core.models import JournalEntry
from connector.core.times import parse_stored_time
from connector.store.db import as_utc, utcnow

NEW, BULK, RECONCILE = 0, 1, 2
"""Lanes, most urgent first: a change seen one at a time; one of many (a backfill, retries); a re-check."""
LANES = {NEW: "new", BULK: "bulk", RECONCILE: "reconcile"}
PENDING, DEAD, RESOLVED, DROPPED = "pending", "dead", "resolved", "dropped"
MAX_REASONS = 8
"""Distinct reasons an item remembers (the first ones; the rest only count in ``version``)."""
MAX_JOURNAL_CHARS = 64_000
"""Journal text an item carries; beyond it the item asks for the incident's whole journal instead."""


@dataclass(frozen=True)
class Enqueue:
    """One reason to look at an entity: what observation hands the queue."""

    incident_sys_id: str
    supplier: str
    reason: str
    """Why, for people: ``servicenow``, ``journal``, ``jira``, ``followup``, ``reconcile``..."""
    lane: int = NEW
    due_at: datetime | None = None
    """When to process it (default: now)."""
    polled: int | None = None
    """The ``sys_mod_count`` of the incident version the poll read and the store\'s ``incidents`` keeps
    (a worker may plan from it instead of reading the incident again, while it is still the latest
    and no write of ours may have landed after the read: see :attr:`polled_at`)."""
    polled_at: datetime | None = None
    """When the poll that read :attr:`polled` began to read (this process's clock)."""
    full_journal: bool = False
    """Read the incident's whole journal before planning."""
    journal: Sequence[JournalEntry] = ()
    """New journal entries the poll found for the incident."""
    stamped: Sequence[str] = ()
    """Issue keys a search showed stamped for this entity while the store links none."""

    @property
    def entity(self) -> str:
        """``incident_sys_id:supplier``."""
        return f"{self.incident_sys_id}:{self.supplier}"


@dataclass(frozen=True)
class Item:
    """A queued item as read (claimed, or listed)."""

    item_id: int
    entity: str
    incident_sys_id: str
    supplier: str
    state: str
    lane: int
    reasons: tuple[str, ...]
    due_at: datetime
    enqueued_at: datetime
    version: int
    polled: int | None
    """See :attr:`Enqueue.polled`: ``None`` once a worker processed a version at least as new."""
    polled_at: datetime | None
    """See :attr:`Enqueue.polled_at` (of :attr:`polled`)."""
    full_journal: bool
    journal: tuple[JournalEntry, ...]
    stamped: tuple[str, ...]
    attempts: int = 0
    held_events: int = 0
    error_type: str = ""
    error: str = ""
    first_failed_at: datetime | None = None
    last_failed_at: datetime | None = None
    manual: bool = False


@dataclass
class Merged:
    """An item's values as an enqueue leaves them."""

    lane: int
    due_at: datetime
    reasons: list[str]
    detail: dict[str, Any] = field(default_factory=dict)


def fold(row: Any, reasons: Sequence[Enqueue], now: datetime) -> Merged:
    """An item's lane, due time, reasons and detail once ``reasons`` are added to ``row`` (or to nothing)."""
    if row is not None and row.state in (PENDING, DEAD):
        merged = Merged(row.lane, as_utc(row.due_at) or now, list(row.reasons), dict(row.detail))
    else:
        merged = Merged(min(r.lane for r in reasons), reasons[0].due_at or now, [], {})
    detail = merged.detail
    journal: dict[str, Any] = {entry["sys_id"]: entry for entry in detail.get("journal", [])}
    for reason in reasons:
        merged.lane = min(merged.lane, reason.lane)
        merged.due_at = min(merged.due_at, reason.due_at or now)
        if reason.reason not in merged.reasons and len(merged.reasons) < MAX_REASONS:
            merged.reasons.append(reason.reason)
        if reason.polled is not None:
            _fold_polled(detail, reason)
        detail["full_journal"] = bool(detail.get("full_journal")) or reason.full_journal
        if reason.stamped:
            detail["stamped"] = list(dict.fromkeys([*detail.get("stamped", []), *reason.stamped]))
        for entry in reason.journal:
            journal.setdefault(entry.sys_id, _entry_json(entry))
    if sum(len(entry["value"]) for entry in journal.values()) > MAX_JOURNAL_CHARS:
        detail["full_journal"] = True
    if detail["full_journal"]:  # it reads the whole journal: the entries would only take room
        journal = {}
    detail["journal"] = list(journal.values())
    return merged


def _fold_polled(detail: dict[str, Any], reason: Enqueue) -> None:
    """Keep the newest polled version, with the earliest read that saw it (the safer bound)."""
    known = detail.get("polled")
    read = reason.polled_at.isoformat() if reason.polled_at is not None else None
    if known is None or reason.polled > known:
        detail["polled"], detail["polled_at"] = reason.polled, read
    elif reason.polled == known and read is not None and detail.get("polled_at") is not None:
        detail["polled_at"] = min(detail["polled_at"], read, key=parse_stored_time)


def _entry_json(entry: JournalEntry) -> dict[str, Any]:
    return {
        "sys_id": entry.sys_id,
        "incident_sys_id": entry.incident_sys_id,
        "element": entry.element,
        "value": entry.value,
        "sys_created_on": entry.sys_created_on.isoformat(),
        "created_by": entry.created_by,
    }


def _entry(data: Mapping[str, Any]) -> JournalEntry:
    return JournalEntry(
        data["sys_id"],
        data["incident_sys_id"],
        data["element"],
        data["value"],
        parse_stored_time(data["sys_created_on"]),
        data["created_by"],
    )


def item_of(row: Any) -> Item:
    """An item as a row of ``work`` holds it."""
    detail = row.detail or {}
    now = utcnow()
    return Item(
        item_id=row.item_id,
        entity=row.entity,
        incident_sys_id=row.incident_sys_id,
        supplier=row.supplier,
        state=row.state,
        lane=row.lane,
        reasons=tuple(row.reasons or ()),
        due_at=as_utc(row.due_at) or now,
        enqueued_at=as_utc(row.enqueued_at) or now,
        version=row.version,
        polled=detail.get("polled"),
        polled_at=parse_stored_time(detail["polled_at"]) if detail.get("polled_at") else None,
        full_journal=bool(detail.get("full_journal")),
        journal=tuple(_entry(entry) for entry in detail.get("journal", [])),
        stamped=tuple(detail.get("stamped", [])),
        attempts=row.attempts,
        held_events=row.held_events,
        error_type=row.error_type or "",
        error=row.error or "",
        first_failed_at=as_utc(row.first_failed_at),
        last_failed_at=as_utc(row.last_failed_at),
        manual=bool(row.manual),
    )
