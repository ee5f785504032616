"""The work queue: what observation found to do, durable before any watermark moves past it.

One item per entity (incident x supplier). Observation (each poll, later webhooks, the reconciler,
a sibling's write) only *enqueues*: a second reason for an entity already waiting is merged into
its item (coalesced: the earlier due time, the more urgent lane, the union of what it carries),
and its ``version`` goes up. Workers *claim* an incident (every due item of it at once, so an
incident's suppliers are worked on in turn by one worker, as its writes to the incident need),
process its items, and *complete* them: an item is removed only if its version is still the one
claimed, so work that arrived meanwhile is processed again, after, in order.

Claims are rows of ``claims`` keyed by incident, taken with an upsert that only overwrites an
expired claim, so two workers never hold one incident; on PostgreSQL the candidates are picked
with ``FOR UPDATE SKIP LOCKED`` so concurrent claimers do not queue up on the same rows. A claim
lives until ``until``; the instance extends its claims while it works (:meth:`WorkQueue.extend`),
and the claims of an instance that died expire, which hands its incidents to the survivors.

A failing entity's item becomes a dead letter (``state = dead``): it is due again at its back-off
time (or at once when an operator asks), and new work for it is *held* (counted, merged into the
item) instead of processed apart, which keeps its changes in order. A letter that is retried
successfully stays as ``resolved`` history (or ``dropped``, if the operator gave up on it) until
new work for the entity reuses the row. :class:`connector.store.dlq.DeadLetters` is the dead
letters' view of this table.

Lanes (:data:`NEW`, :data:`BULK`, :data:`RECONCILE`) let workers schedule fairly (see
:mod:`connector.sync.worker`): a fresh change never waits behind a backfill or a reconciliation.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, exists, func, or_, select, update

from connector.core.models import JournalEntry
from connector.core.times import parse_stored_time
from connector.store.db import as_utc, upsert_insert, utcnow, writing
from connector.store.tables import claims, work

NEW, BULK, RECONCILE = 0, 1, 2
"""Lanes, most urgent first: a change seen one at a time; one of many (a backfill, retries); a re-check."""
LANES = {NEW: "new", BULK: "bulk", RECONCILE: "reconcile"}
PENDING, DEAD, RESOLVED, DROPPED = "pending", "dead", "resolved", "dropped"
MAX_REASONS = 8
"""Distinct reasons an item remembers (the first ones; the rest only count in ``version``)."""
MAX_JOURNAL_CHARS = 64_000
"""Journal text an item carries; beyond it the item asks for the incident's whole journal instead."""
ERROR_CHARS = 4000


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
    """The ``sys_mod_count`` of the incident version the poll read and the store's ``incidents`` keeps
    (a worker may plan from it instead of reading the incident again, while it is still the latest)."""
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


@dataclass(frozen=True)
class Claim:
    """An incident's due items, held by one worker until :meth:`WorkQueue.complete` or expiry."""

    incident_sys_id: str
    token: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class LaneDepth:
    """How much waits in a lane: items due now, items not due yet, and how long the oldest due one waited."""

    due: int = 0
    later: int = 0
    oldest_due_seconds: float = 0.0


@dataclass
class _Merged:
    """An item's values as an enqueue leaves them."""

    lane: int
    due_at: datetime
    reasons: list[str]
    detail: dict[str, Any] = field(default_factory=dict)


class WorkQueue:
    """The ``work`` and ``claims`` tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._one_process = engine.dialect.name == "sqlite"
        """SQLite stores take one process (the store's lease refuses a second): a claim another
        instance left there is stale by construction (it was killed), not held."""

    # --- observation ----------------------------------------------------------------------------

    def enqueue(self, items: Iterable[Enqueue], now: datetime, *, conn: Connection | None = None) -> int:
        """Add ``items`` (coalesced per entity with what waits already); returns how many entities.

        In ``conn``'s transaction when given: a poll enqueues and moves its watermark together.
        """
        merged: dict[str, Enqueue] = {}
        extra: dict[str, list[Enqueue]] = {}
        for item in items:
            if item.entity in merged:
                extra.setdefault(item.entity, []).append(item)
            else:
                merged[item.entity] = item
        if not merged:
            return 0
        with writing(self._engine, conn) as tx:
            keys = list(merged)
            existing: dict[str, Any] = {}
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                for found in tx.execute(select(work).where(work.c.entity.in_(chunk))).all():
                    existing[found.entity] = found
            fresh: list[dict[str, Any]] = []
            for entity, first in merged.items():
                row = existing.get(entity)
                values = _fold(row, [first, *extra.get(entity, [])], now)
                if row is None:
                    fresh.append(
                        {
                            "entity": entity,
                            "incident_sys_id": first.incident_sys_id,
                            "supplier": first.supplier,
                            "state": PENDING,
                            "lane": values.lane,
                            "reasons": values.reasons,
                            "due_at": values.due_at,
                            "enqueued_at": now,
                            "version": 1,
                            "detail": values.detail,
                            "attempts": 0,
                            "held_events": 0,
                            "manual": False,
                        }
                    )
                    continue
                changes: dict[str, Any] = {
                    "lane": values.lane,
                    "reasons": values.reasons,
                    "detail": values.detail,
                    "version": row.version + 1,
                }
                if row.state == DEAD:
                    # Held behind its letter: it comes with the retry, at the letter's time.
                    changes["held_events"] = row.held_events + 1
                elif row.state == PENDING:
                    changes["due_at"] = values.due_at
                else:  # a resolved or dropped letter's row starts afresh
                    changes |= {
                        "state": PENDING,
                        "due_at": values.due_at,
                        "enqueued_at": now,
                        "attempts": 0,
                        "held_events": 0,
                        "error_type": None,
                        "error": None,
                        "first_failed_at": None,
                        "last_failed_at": None,
                        "manual": False,
                    }
                tx.execute(update(work).where(work.c.item_id == row.item_id).values(**changes))
            if fresh:
                # A concurrent enqueue may have inserted one of these meanwhile: fold into it instead.
                insert = upsert_insert(self._engine, work)
                for values_ in fresh:
                    inserted = tx.execute(
                        insert.values(**values_).on_conflict_do_nothing(index_elements=["entity"])
                    )
                    if inserted.rowcount == 0:
                        raced = merged[values_["entity"]]
                        self.enqueue([raced, *extra.get(raced.entity, [])], now, conn=tx)
        return len(merged)

    # --- workers --------------------------------------------------------------------------------

    def claim(
        self, instance_id: str, now: datetime, ttl: timedelta, *, lane: int | None = None
    ) -> Claim | None:
        """Claim the incident with the earliest due item (in ``lane``, else any) and all its due items.

        ``None`` when nothing is due, or every due incident is claimed by someone else.
        """
        held = and_(claims.c.incident_sys_id == work.c.incident_sys_id, claims.c.until > now)
        if self._one_process:
            held = and_(held, claims.c.instance_id == instance_id)
        claimable = and_(_due(now), ~exists().where(held))
        if lane is not None:
            claimable = and_(claimable, work.c.lane == lane)
        candidates = (
            select(work.c.incident_sys_id)
            .where(claimable)
            .order_by(work.c.due_at, work.c.item_id)
            .limit(8)
            .with_for_update(skip_locked=True, of=work)
        )
        token = secrets.token_hex(8)
        with self._engine.begin() as conn:
            for incident_sys_id in dict.fromkeys(conn.execute(candidates).scalars()):
                if not self._take(conn, incident_sys_id, instance_id, token, now, ttl):
                    continue
                rows = conn.execute(
                    select(work)
                    .where(work.c.incident_sys_id == incident_sys_id, _due(now))
                    .order_by(work.c.item_id)
                ).all()
                if rows:
                    return Claim(incident_sys_id, token, tuple(item_of(row) for row in rows))
                conn.execute(delete(claims).where(claims.c.incident_sys_id == incident_sys_id))
        return None

    def _take(
        self,
        conn: Connection,
        incident_sys_id: str,
        instance_id: str,
        token: str,
        now: datetime,
        ttl: timedelta,
    ) -> bool:
        values = {"instance_id": instance_id, "token": token, "claimed_at": now, "until": now + ttl}
        insert = upsert_insert(self._engine, claims).values(incident_sys_id=incident_sys_id, **values)
        free = claims.c.until <= now
        if self._one_process:
            free = or_(free, claims.c.instance_id != instance_id)
        taken = conn.execute(
            insert.on_conflict_do_update(
                index_elements=["incident_sys_id"], set_=values, where=free
            ).returning(claims.c.token)
        ).first()
        return taken is not None and taken.token == token

    def complete(self, claim: Claim, done: Sequence[Item], processed_mod_count: int | None = None) -> bool:
        """Finish ``claim``: remove ``done`` items (unless new work came), then let the incident go.

        A dead letter that succeeded becomes ``resolved`` history. An item kept because new work
        came meanwhile forgets a polled version no newer than ``processed_mod_count`` (the version
        the worker left the incident at: the store's copy may no longer show our own writes).
        Returns ``False`` when the claim had expired and another worker took the incident: nothing
        is changed then (it processes the items again; every write is idempotent by the write
        protocol).
        """
        with self._engine.begin() as conn:
            mine = conn.execute(
                select(claims.c.token)
                .where(claims.c.incident_sys_id == claim.incident_sys_id)
                .with_for_update()
            ).scalar()
            if mine != claim.token:
                return False
            for item in done:
                same = and_(work.c.item_id == item.item_id, work.c.version == item.version)
                if item.state == DEAD:
                    conn.execute(
                        update(work).where(same, work.c.state == DEAD).values(state=RESOLVED, manual=False)
                    )
                    # New work held meanwhile: it is pending now, due at once.
                    conn.execute(
                        update(work)
                        .where(work.c.item_id == item.item_id, work.c.state == DEAD)
                        .values(state=PENDING, due_at=utcnow(), manual=False, attempts=0)
                    )
                else:
                    conn.execute(delete(work).where(same, work.c.state == PENDING))
            self._forget_polled(conn, claim.incident_sys_id, processed_mod_count)
            conn.execute(delete(claims).where(claims.c.incident_sys_id == claim.incident_sys_id))
        return True

    def _forget_polled(self, conn: Connection, incident_sys_id: str, processed: int | None) -> None:
        rows = conn.execute(
            select(work.c.item_id, work.c.detail).where(
                work.c.incident_sys_id == incident_sys_id, work.c.state.in_((PENDING, DEAD))
            )
        ).all()
        for item_id, detail in rows:
            polled = (detail or {}).get("polled")
            if polled is not None and (processed is None or polled <= processed):
                kept = {**detail, "polled": None}
                conn.execute(update(work).where(work.c.item_id == item_id).values(detail=kept))

    def fail(
        self,
        item: Item,
        error_type: str,
        error: str,
        now: datetime,
        *,
        base_delay: timedelta,
        max_delay: timedelta,
        conn: Connection | None = None,
    ) -> Item:
        """Make ``item`` a dead letter (or count one more failure of it); returns it as it is now.

        The wait doubles with each attempt. A retry the operator asked for that fails before the
        letter was due anyway keeps its schedule and attempt count (the error is recorded):
        asking never pushes the next automatic try further out.
        """
        with writing(self._engine, conn) as tx:
            row = tx.execute(select(work).where(work.c.item_id == item.item_id)).one_or_none()
            if row is None:  # completed by another worker meanwhile: a fresh letter
                return item
            values: dict[str, Any] = {
                "error_type": error_type[:128],
                "error": error[:ERROR_CHARS],
                "last_failed_at": now,
                "manual": False,
            }
            due = as_utc(row.due_at) or now
            if row.state == DEAD and row.manual and due > now:
                pass
            elif row.state == DEAD:
                values |= {
                    "attempts": row.attempts + 1,
                    "due_at": now + min(base_delay * (2**row.attempts), max_delay),
                }
            else:
                values |= {
                    "state": DEAD,
                    "attempts": 1,
                    "held_events": 0,
                    "first_failed_at": now,
                    "due_at": now + base_delay,
                }
            tx.execute(update(work).where(work.c.item_id == item.item_id).values(**values))
            return item_of(tx.execute(select(work).where(work.c.item_id == item.item_id)).one())

    def release(self, claim: Claim) -> None:
        """Let ``claim``'s incident go without completing anything (a stop in the middle)."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(claims).where(
                    claims.c.incident_sys_id == claim.incident_sys_id, claims.c.token == claim.token
                )
            )

    def extend(self, instance_id: str, until: datetime) -> int:
        """Keep every claim of ``instance_id`` until ``until`` (its heartbeat); returns how many."""
        with self._engine.begin() as conn:
            return conn.execute(
                update(claims).where(claims.c.instance_id == instance_id).values(until=until)
            ).rowcount

    def release_all(self, instance_id: str) -> None:
        """Let every claim of ``instance_id`` go (a clean stop)."""
        with self._engine.begin() as conn:
            conn.execute(delete(claims).where(claims.c.instance_id == instance_id))

    # --- reading --------------------------------------------------------------------------------

    def depth(self, now: datetime) -> dict[int, LaneDepth]:
        """Per lane: pending items due and not yet due, and the wait of the oldest due one."""
        due = and_(work.c.state == PENDING, work.c.due_at <= now)
        query = select(
            work.c.lane,
            func.count().filter(due),
            func.count().filter(and_(work.c.state == PENDING, work.c.due_at > now)),
            func.min(work.c.due_at).filter(due),
        ).group_by(work.c.lane)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        out = {lane: LaneDepth() for lane in LANES}
        for lane, due_count, later, oldest in rows:
            oldest_at = _when(oldest)
            waited = (now - oldest_at).total_seconds() if oldest_at is not None else 0.0
            out[int(lane)] = LaneDepth(int(due_count), int(later), max(0.0, waited))
        return out

    def pending(self, entity: str) -> Item | None:
        """The entity's item in any state, if there is one."""
        with self._engine.connect() as conn:
            row = conn.execute(select(work).where(work.c.entity == entity)).one_or_none()
        return item_of(row) if row else None

    def next_due(self) -> datetime | None:
        """When the earliest item not claimed falls due (for a worker deciding how long to sleep)."""
        with self._engine.connect() as conn:
            value = conn.execute(
                select(func.min(work.c.due_at)).where(work.c.state.in_((PENDING, DEAD)))
            ).scalar()
        return _when(value)

    def size(self) -> int:
        """Items pending or dead."""
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(work).where(work.c.state.in_((PENDING, DEAD)))
                ).scalar_one()
            )


def _due(now: datetime) -> Any:
    return or_(
        and_(work.c.state == PENDING, work.c.due_at <= now),
        and_(work.c.state == DEAD, or_(work.c.due_at <= now, work.c.manual.is_(True))),
    )


def _fold(row: Any, reasons: Sequence[Enqueue], now: datetime) -> _Merged:
    """An item's lane, due time, reasons and detail once ``reasons`` are added to ``row`` (or to nothing)."""
    if row is not None and row.state in (PENDING, DEAD):
        merged = _Merged(row.lane, as_utc(row.due_at) or now, list(row.reasons), dict(row.detail))
    else:
        merged = _Merged(min(r.lane for r in reasons), reasons[0].due_at or now, [], {})
    detail = merged.detail
    journal: dict[str, Any] = {entry["sys_id"]: entry for entry in detail.get("journal", [])}
    for reason in reasons:
        merged.lane = min(merged.lane, reason.lane)
        merged.due_at = min(merged.due_at, reason.due_at or now)
        if reason.reason not in merged.reasons and len(merged.reasons) < MAX_REASONS:
            merged.reasons.append(reason.reason)
        if reason.polled is not None:
            detail["polled"] = max(detail.get("polled") or 0, reason.polled)
        detail["full_journal"] = bool(detail.get("full_journal")) or reason.full_journal
        if reason.stamped:
            detail["stamped"] = list(dict.fromkeys([*detail.get("stamped", []), *reason.stamped]))
        for entry in reason.journal:
            journal.setdefault(entry.sys_id, _entry_json(entry))
    if sum(len(entry["value"]) for entry in journal.values()) > MAX_JOURNAL_CHARS:
        detail["full_journal"], journal = True, {}
    detail["journal"] = list(journal.values())
    return merged


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


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's aggregate of a datetime column comes back as text
        return as_utc(datetime.fromisoformat(value))
    return as_utc(value)


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
