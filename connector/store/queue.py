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

import functools
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    delete,
    func,
    select,
    update,
)

from connector.core.errors import ClaimLost
from connector.store import queue_sql as sql
from connector.store.db import as_utc, chunked, upsert_insert, utcnow, writing
from connector.store.tables import claims, work
from connector.store.workitems import (
    BULK,
    DEAD,
    DROPPED,
    LANES,
    MAX_JOURNAL_CHARS,
    MAX_REASONS,
    NEW,
    PENDING,
    RECONCILE,
    RESOLVED,
    Enqueue,
    Item,
    fold,
    item_of,
)

__all__ = [
    "BULK",
    "DEAD",
    "DROPPED",
    "LANES",
    "MAX_JOURNAL_CHARS",
    "MAX_REASONS",
    "NEW",
    "PENDING",
    "RECONCILE",
    "RESOLVED",
    "Claim",
    "Enqueue",
    "Item",
    "LaneDepth",
    "WorkQueue",
    "item_of",
]
ERROR_CHARS = 4000
_FRESH: dict[str, Any] = {
    "state": PENDING,
    "attempts": 0,
    "held_events": 0,
    "error_type": None,
    "error": None,
    "first_failed_at": None,
    "last_failed_at": None,
    "manual": False,
}
"""What an item that is not a letter holds in the letter's columns."""


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


CANDIDATES = 8
"""Candidates a claim tries per lane before it gives up (others took them between read and take)."""


class WorkQueue:
    """The ``work`` and ``claims`` tables."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # SQLite has no row locks to skip: threads reading candidates at once all found the same
        # few and raced for them, most came away with nothing and idled while work waited. One
        # claim at a time in this process (the only one on a SQLite store) reads only what is free.
        self._claiming: AbstractContextManager[object] = (
            threading.Lock() if engine.dialect.name == "sqlite" else nullcontext()
        )

    # --- observation ----------------------------------------------------------------------------

    def enqueue(self, items: Iterable[Enqueue], now: datetime, *, conn: Connection | None = None) -> int:
        """Add ``items`` (coalesced per entity with what waits already); returns how many entities.

        In ``conn``'s transaction when given: a poll enqueues and moves its watermark together.
        """
        grouped: dict[str, list[Enqueue]] = {}
        for item in items:
            grouped.setdefault(item.entity, []).append(item)
        with writing(self._engine, conn) as tx:
            # Sorted: every writer locks rows in one order (PostgreSQL would find deadlocks otherwise).
            waiting = sorted(grouped)
            while waiting:
                waiting = self._merge(tx, {entity: grouped[entity] for entity in waiting}, now)
        return len(grouped)

    def _merge(self, tx: Connection, grouped: Mapping[str, list[Enqueue]], now: datetime) -> list[str]:
        """Fold ``grouped`` into the items as read; returns the entities another writer changed meanwhile.

        Each write is conditional on the version read (the read takes no lock, and a SQLite writer
        takes its lock only at its first write), so a concurrent enqueue, complete or insert makes
        it miss, and the caller folds that entity again into what is there now.
        """
        keys = list(grouped)
        existing: dict[str, Any] = {}
        for chunk in chunked(keys):
            existing |= {row.entity: row for row in tx.execute(select(work).where(work.c.entity.in_(chunk)))}
        missed: list[str] = []
        fresh: list[dict[str, Any]] = []
        for entity, reasons in grouped.items():
            row = existing.get(entity)
            values = fold(row, reasons, now)
            merged = {"lane": values.lane, "reasons": values.reasons, "detail": values.detail}
            if row is None:
                first = reasons[0]
                fresh.append(
                    {
                        **merged,
                        **_FRESH,
                        "entity": entity,
                        "incident_sys_id": first.incident_sys_id,
                        "supplier": first.supplier,
                        "due_at": values.due_at,
                        "enqueued_at": now,
                        "version": 1,
                    }
                )
                continue
            changes: dict[str, Any] = merged | {"version": row.version + 1}
            if row.state == DEAD:
                # Held behind its letter: it comes with the retry, at the letter's time.
                changes["held_events"] = row.held_events + 1
            elif row.state == PENDING:
                changes["due_at"] = values.due_at
            else:  # a resolved or dropped letter's row starts afresh
                changes |= _FRESH | {"due_at": values.due_at, "enqueued_at": now}
            same = and_(work.c.item_id == row.item_id, work.c.version == row.version)
            if tx.execute(update(work).where(same).values(**changes)).rowcount == 0:
                missed.append(entity)
        if fresh:
            # A concurrent enqueue may have inserted one of these meanwhile: fold into it instead.
            insert = upsert_insert(self._engine, work).on_conflict_do_nothing(index_elements=["entity"])
            inserted = set(tx.execute(insert.returning(work.c.entity), fresh).scalars())
            missed += [values_["entity"] for values_ in fresh if values_["entity"] not in inserted]
        return sorted(missed)

    # --- workers --------------------------------------------------------------------------------

    def claim(
        self,
        instance_id: str,
        now: datetime,
        ttl: timedelta,
        *,
        lanes: Sequence[int] = (),
    ) -> Claim | None:
        """Claim the incident with the earliest due item and all its due items.

        ``lanes`` are tried in that order, the others not at all (each lane: items pending and due
        first, then letters due for a retry or asked for); none given: every lane, most urgent
        first. Each candidate is read through the index on (lane, state, due_at): a claim costs
        the same however long the queue. Candidates are read one at a time, so that workers
        claiming at once each find their own: on PostgreSQL a candidate row stays locked until the
        claim commits and the others skip it (``SKIP LOCKED``); on SQLite, which has no row locks,
        a process claims one at a time. ``None`` when nothing is due, or every due incident is
        claimed by someone else.
        """
        order = tuple(lanes) or tuple(LANES)
        token = secrets.token_hex(8)
        with self._claiming, self._engine.begin() as conn:
            for wanted in order:
                for candidates in (sql.PENDING_CANDIDATE, sql.LETTER_CANDIDATE):
                    passed: list[str] = []
                    for _ in range(CANDIDATES):
                        incident_sys_id = conn.execute(
                            candidates, {"lane": wanted, "now": now, "passed": passed}
                        ).scalar()
                        if incident_sys_id is None:
                            break
                        claim = self._claim(conn, incident_sys_id, instance_id, token, now, ttl)
                        if claim is not None:
                            return claim
                        passed.append(incident_sys_id)
        return None

    def _claim(
        self,
        conn: Connection,
        incident_sys_id: str,
        instance_id: str,
        token: str,
        now: datetime,
        ttl: timedelta,
    ) -> Claim | None:
        """Take ``incident_sys_id`` with its due items; ``None`` if someone else took it first, or none is due."""
        values = {"instance_id": instance_id, "token": token, "claimed_at": now, "until": now + ttl}
        taken = conn.execute(self._take_claim, {"incident_sys_id": incident_sys_id, **values}).first()
        if taken is None or taken.token != token:
            return None
        rows = conn.execute(sql.DUE_OF_INCIDENT, {"incident_sys_id": incident_sys_id, "now": now}).all()
        if rows:
            return Claim(incident_sys_id, token, tuple(item_of(row) for row in rows))
        conn.execute(sql.UNCLAIM, {"incident_sys_id": incident_sys_id})
        return None

    @functools.cached_property
    def _take_claim(self) -> Any:
        """Insert a claim, or take over one that expired (``until <= :claimed_at``); returns its token."""
        insert = upsert_insert(self._engine, claims)
        return insert.on_conflict_do_update(
            index_elements=["incident_sys_id"],
            set_={name: insert.excluded[name] for name in ("instance_id", "token", "claimed_at", "until")},
            where=claims.c.until <= insert.excluded.claimed_at,
        ).returning(claims.c.token)

    def check(self, conn: Connection, claim: Claim) -> None:
        """Refuse ``conn``'s transaction unless ``claim`` is still its incident's claim.

        Called in the transaction that records a write's intent, before the write is sent: a
        worker whose claim expired while it was stalled, and was taken by another worker, sends
        nothing more for that incident. The claim's row is locked until the transaction ends
        (``FOR SHARE`` on PostgreSQL; SQLite serialises writers), so a take-over waits for it and
        every intent after the take-over is ordered after ours. An expired claim nobody took
        still passes (nobody else works on the incident).

        Raises:
            connector.core.errors.ClaimLost: another worker holds the incident now.
        """
        token = conn.execute(sql.CLAIM_TOKEN, {"incident_sys_id": claim.incident_sys_id}).scalar()
        if token != claim.token:
            raise ClaimLost(
                f"the claim on incident {claim.incident_sys_id} was taken by another worker; "
                "this one stops writing to it"
            )

    def complete(
        self,
        claim: Claim,
        done: Sequence[Item],
        *,
        now: datetime | None = None,
        processed_mod_count: int | None = None,
    ) -> bool:
        """Finish ``claim``: remove ``done`` items (unless new work came), then let the incident go.

        An item kept because new work came meanwhile forgets a polled version no newer than
        ``processed_mod_count`` (the version the worker left the incident at: the store's copy may
        no longer show our own writes).

        A dead letter that succeeded becomes ``resolved`` history; if work was held behind it
        meanwhile, it is pending instead, due at ``now`` (default: the clock). Failures are recorded
        by :meth:`fail` as they happen. Returns ``False`` when
        the claim is no longer this one (it expired and another worker took the incident, or it
        was released): nothing is changed then (the holder processes the items again; every write
        is idempotent by the write protocol).
        """
        done = sorted(done, key=lambda item: item.entity)
        with self._engine.begin() as conn:
            # The items first, in enqueue's order, then the claim: a claimer holds its candidates'
            # rows while it takes a claim, so the other order could deadlock on PostgreSQL.
            conn.execute(sql.LOCK_ITEMS, {"item_ids": [item.item_id for item in done]}).all()
            # A write, not a read: on SQLite only a write is serialised with a claimer's take-over.
            mine = {"incident_sys_id": claim.incident_sys_id, "token": claim.token}
            if conn.execute(sql.RELEASE, mine).rowcount == 0:
                return False
            for item in done:
                same = and_(work.c.item_id == item.item_id, work.c.version == item.version)
                if item.state != DEAD:
                    conn.execute(sql.REMOVE_PENDING, {"item_id": item.item_id, "version": item.version})
                    continue
                dead = and_(work.c.item_id == item.item_id, work.c.state == DEAD)
                if not conn.execute(
                    update(work).where(same, dead).values(state=RESOLVED, manual=False)
                ).rowcount:
                    # New work held meanwhile: it is pending now, due at once.
                    conn.execute(update(work).where(dead).values(_FRESH | {"due_at": now or utcnow()}))
            self._forget_polled(conn, claim.incident_sys_id, processed_mod_count)
        return True

    def _forget_polled(self, conn: Connection, incident_sys_id: str, processed: int | None) -> None:
        rows = conn.execute(sql.DETAILS_OF_INCIDENT, {"incident_sys_id": incident_sys_id}).all()
        for item_id, detail in rows:
            polled = (detail or {}).get("polled")
            if polled is not None and (processed is None or polled <= processed):
                kept = {**detail, "polled": None}
                conn.execute(sql.SET_DETAIL, {"id": item_id, "detail": kept})

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

        The wait doubles with each attempt, up to ``max_delay``. A retry the operator asked for
        that fails before the letter was due anyway keeps its schedule and attempt count (the
        error is recorded): asking never pushes the next automatic try further out. An item that
        is gone (completed meanwhile by the worker that holds its incident now) is returned as given.
        """
        with writing(self._engine, conn) as tx:
            while True:
                row = tx.execute(select(work).where(work.c.item_id == item.item_id)).one_or_none()
                if row is None:
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
                        "due_at": now + _backoff(row.attempts, base_delay, max_delay),
                    }
                else:
                    values |= {
                        "state": DEAD,
                        "attempts": 1,
                        "held_events": 0,
                        "first_failed_at": now,
                        "due_at": now + base_delay,
                    }
                # Unless an enqueue or an operator changed it since the read: then again.
                same = and_(
                    work.c.item_id == row.item_id,
                    work.c.version == row.version,
                    work.c.state == row.state,
                    work.c.manual == row.manual,
                )
                if tx.execute(update(work).where(same).values(**values)).rowcount:
                    return item_of(tx.execute(select(work).where(work.c.item_id == item.item_id)).one())

    def release(self, claim: Claim) -> None:
        """Let ``claim``'s incident go without completing anything (a stop in the middle)."""
        with self._engine.begin() as conn:
            conn.execute(sql.RELEASE, {"incident_sys_id": claim.incident_sys_id, "token": claim.token})

    def extend(self, instance_id: str, until: datetime) -> int:
        """Keep every claim of ``instance_id`` until ``until`` (its heartbeat); returns how many."""
        with self._engine.begin() as conn:
            return conn.execute(
                update(claims).where(claims.c.instance_id == instance_id).values(until=until)
            ).rowcount

    def forget_claims(self) -> int:
        """Drop every claim; returns how many there were.

        For the only process a store takes (SQLite, its lease held): claims left there are a
        killed predecessor's.
        """
        with self._engine.begin() as conn:
            return conn.execute(delete(claims)).rowcount

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
            row = conn.execute(sql.ITEM_OF_ENTITY, {"entity": entity}).one_or_none()
        return item_of(row) if row else None

    def size(self) -> int:
        """Items pending or dead."""
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(work).where(work.c.state.in_((PENDING, DEAD)))
                ).scalar_one()
            )


def _backoff(attempts: int, base_delay: timedelta, max_delay: timedelta) -> timedelta:
    """The wait after failure number ``attempts + 1``: doubling from ``base_delay``, at most ``max_delay``."""
    wait = base_delay
    for _ in range(attempts):  # not 2**attempts: a long-failing entity would overflow timedelta
        if wait >= max_delay:
            break
        wait *= 2
    return min(wait, max_delay)


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite's aggregate of a datetime column comes back as text
        return as_utc(datetime.fromisoformat(value))
    return as_utc(value)
