"""The dead letters: the work queue's items in state ``dead``, seen as operators and the engine ask after them.

A failing entity's item becomes a letter (:meth:`connector.store.queue.WorkQueue.fail`); while it is
dead, new work for the entity is *held* behind it (counted and merged into it) instead of processed,
which keeps its changes in order; because the engine plans from current state, the retry applies
everything that was held. Retries back off exponentially; ``drop`` gives up on an entity's backlog
(its next change starts afresh). A letter's number is its item's.

An operator's ``retry_now`` marks the letter (``manual``): it is due at once, its processing is sent
past any cool-down (see :func:`connector.http.breaker.explicit_retry`), and if it fails the letter keeps
the schedule and back-off step it had, as if the operator had not asked.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, bindparam, or_, select, update

from connector.store.db import as_utc, utcnow
from connector.store.queue import DEAD, DROPPED, PENDING, RESOLVED, Enqueue, Item, WorkQueue, item_of
from connector.store.tables import work

QUEUED = "queued"
"""A letter waiting for its retry (its item is ``dead``)."""
_STATES = {DEAD: QUEUED, RESOLVED: RESOLVED, DROPPED: DROPPED}


@dataclass(frozen=True)
class DeadLetter:
    """An entity whose processing failed."""

    letter_id: int
    entity: str
    state: str
    """``queued``, ``resolved`` or ``dropped``."""
    error_type: str
    error: str
    attempts: int
    held_events: int
    first_failed_at: datetime
    last_failed_at: datetime
    next_attempt_at: datetime
    manual: bool = False
    """An operator asked for a retry now (``state dlq retry``)."""


class DeadLetters:
    """The letters of the work queue; ``base_delay`` and ``max_delay`` pace the retries."""

    def __init__(
        self,
        engine: Engine,
        base_delay: timedelta = timedelta(seconds=30),
        max_delay: timedelta = timedelta(hours=1),
    ) -> None:
        self._engine = engine
        self._queue = WorkQueue(engine)
        self.base_delay = base_delay
        self.max_delay = max_delay

    def fail(self, entity: str, error_type: str, error: str, now: datetime | None = None) -> DeadLetter:
        """Record a failure of ``entity``: a new letter, or one more attempt of its letter.

        The wait doubles with each attempt. A retry the operator asked for that fails before the
        letter was due anyway leaves its schedule and attempt count as they were (the error is
        recorded): asking never pushes the next automatic try further out.
        """
        now = now or utcnow()
        item = self._queue.pending(entity)
        if item is None or item.state not in (PENDING, DEAD):
            incident_sys_id, _, supplier = entity.rpartition(":")
            self._queue.enqueue([Enqueue(incident_sys_id, supplier, "failed")], now)
            item = self._queue.pending(entity)
            assert item is not None
        failed = self._queue.fail(
            item, error_type, error, now, base_delay=self.base_delay, max_delay=self.max_delay
        )
        return _letter(failed)

    def failed(self, item: Item, error_type: str, error: str, now: datetime) -> DeadLetter:
        """Record a failure of a claimed ``item`` (see :meth:`fail`)."""
        failed = self._queue.fail(
            item, error_type, error, now, base_delay=self.base_delay, max_delay=self.max_delay
        )
        return _letter(failed)

    def queued(self, entity: str) -> DeadLetter | None:
        """The entity's active letter, if it is blocked."""
        item = self._queue.pending(entity)
        return _letter(item) if item is not None and item.state == DEAD else None

    def blocked(self) -> set[str]:
        """Every entity currently held."""
        with self._engine.connect() as conn:
            return set(conn.execute(select(work.c.entity).where(work.c.state == DEAD)).scalars())

    def hold(self, entity: str) -> bool:
        """Count one more piece of work waiting behind the entity's letter; ``False`` if not blocked."""
        with self._engine.begin() as conn:
            held = conn.execute(
                update(work)
                .where(work.c.entity == entity, work.c.state == DEAD)
                .values(held_events=work.c.held_events + 1)
            )
        return held.rowcount > 0

    def due(self, now: datetime | None = None) -> list[DeadLetter]:
        """Letters whose retry time has come or that an operator asked to retry, oldest first."""
        now = now or utcnow()
        condition = and_(work.c.state == DEAD, or_(work.c.due_at <= now, work.c.manual.is_(True)))
        return self._select(condition)

    def resolve(self, entity: str) -> None:
        """The entity was processed successfully: its letter becomes history."""
        with self._engine.begin() as conn:
            conn.execute(
                update(work)
                .where(work.c.entity == entity, work.c.state == DEAD)
                .values(state=RESOLVED, manual=False)
            )

    def of_incident(self, incident_sys_id: str) -> list[DeadLetter]:
        """The incident's letters in every state, of every supplier, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(_LETTERS_OF_INCIDENT, {"incident_sys_id": incident_sys_id}).all()
        return [_letter(item_of(row)) for row in rows]

    def list(self, state: str | None = QUEUED) -> list[DeadLetter]:
        """Letters in ``state`` (``queued``, ``resolved``, ``dropped``; all when ``None``), oldest first."""
        if state is None:
            return self._select(work.c.state.in_(tuple(_STATES)))
        wanted = next((stored for stored, shown in _STATES.items() if shown == state), state)
        return self._select(work.c.state == wanted)

    def retry_now(self, letter_id: int) -> bool:
        """Have a queued letter retried at once, past any cool-down; ``False`` when there is no such letter."""
        return self._update(letter_id, manual=True)

    def drop(self, letter_id: int) -> bool:
        """Give up on a letter; its entity is no longer held."""
        return self._update(letter_id, state=DROPPED, manual=False)

    def _update(self, letter_id: int, **values: Any) -> bool:
        condition = and_(work.c.item_id == letter_id, work.c.state == DEAD)
        with self._engine.begin() as conn:
            return conn.execute(update(work).where(condition).values(**values)).rowcount > 0

    def _select(self, condition: Any) -> builtins.list[DeadLetter]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(work).where(condition).order_by(work.c.first_failed_at, work.c.item_id)
            ).all()
        return [_letter(item_of(row)) for row in rows]


# Built once: every claim reads its incident's letters (see connector.store.queue).
_LETTERS_OF_INCIDENT = (
    select(work)
    .where(work.c.incident_sys_id == bindparam("incident_sys_id"), work.c.state.in_(tuple(_STATES)))
    .order_by(work.c.first_failed_at, work.c.item_id)
)


def _letter(item: Item) -> DeadLetter:
    now = utcnow()
    return DeadLetter(
        item.item_id,
        item.entity,
        _STATES.get(item.state, item.state),
        item.error_type,
        item.error,
        item.attempts,
        item.held_events,
        as_utc(item.first_failed_at) or now,
        as_utc(item.last_failed_at) or now,
        item.due_at,
        item.manual,
    )
