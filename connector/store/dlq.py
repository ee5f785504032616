"""Per-entity dead-letter queue: a failing incident x supplier is held, retried later, never blocks others.

While an entity has a ``queued`` letter, new work for it is *held* (counted on the letter) instead
of processed, which keeps its changes in order; because the engine plans from current state, the
retry applies everything that was held. Retries back off exponentially; ``drop`` gives up on an
entity's backlog (its next change starts afresh).

An operator's ``retry_now`` marks the letter (``manual``): it is due at once, its processing is sent
past any cool-down (see :func:`connector.http.breaker.explicit_retry`), and if it fails the letter keeps
the schedule and back-off step it had, as if the operator had not asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, bindparam, or_, select

from connector.store.db import as_utc, utcnow
from connector.store.tables import dead_letters

QUEUED, RESOLVED, DROPPED = "queued", "resolved", "dropped"


@dataclass(frozen=True)
class DeadLetter:
    """An entity whose processing failed."""

    letter_id: int
    entity: str
    state: str
    error_type: str
    error: str
    attempts: int
    held_events: int
    first_failed_at: datetime
    last_failed_at: datetime
    next_attempt_at: datetime
    manual: bool = False
    """An operator asked for a retry at the next cycle (``state dlq retry``)."""


class DeadLetters:
    """The queue of failed entities."""

    def __init__(
        self,
        engine: Engine,
        base_delay: timedelta = timedelta(seconds=30),
        max_delay: timedelta = timedelta(hours=1),
    ) -> None:
        self._engine = engine
        self.base_delay = base_delay
        self.max_delay = max_delay

    def fail(self, entity: str, error_type: str, error: str, now: datetime | None = None) -> DeadLetter:
        """Queue ``entity`` (or count another failed attempt) and schedule its next retry.

        The wait doubles with each attempt. A retry the operator asked for that fails before the
        letter was due anyway leaves its schedule and attempt count as they were (the error is
        recorded): asking never pushes the next automatic try further out.
        """
        now = now or utcnow()
        current = self.queued(entity)
        if current is not None and current.manual and current.next_attempt_at > now:
            with self._engine.begin() as conn:
                conn.execute(
                    dead_letters.update()
                    .where(dead_letters.c.letter_id == current.letter_id)
                    .values(error_type=error_type, error=error[:4000], last_failed_at=now, manual=False)
                )
            letter = self.queued(entity)
            assert letter is not None
            return letter
        with self._engine.begin() as conn:
            if current is None:
                conn.execute(
                    dead_letters.insert().values(
                        entity=entity,
                        state=QUEUED,
                        error_type=error_type,
                        error=error[:4000],
                        attempts=1,
                        held_events=0,
                        first_failed_at=now,
                        last_failed_at=now,
                        next_attempt_at=now + self.base_delay,
                        manual=False,
                    )
                )
            else:
                delay = min(self.base_delay * (2**current.attempts), self.max_delay)
                conn.execute(
                    dead_letters.update()
                    .where(dead_letters.c.letter_id == current.letter_id)
                    .values(
                        error_type=error_type,
                        error=error[:4000],
                        attempts=current.attempts + 1,
                        last_failed_at=now,
                        next_attempt_at=now + delay,
                        manual=False,
                    )
                )
        letter = self.queued(entity)
        assert letter is not None
        return letter

    def queued(self, entity: str) -> DeadLetter | None:
        """The entity's active letter, if it is blocked."""
        with self._engine.connect() as conn:
            row = conn.execute(_QUEUED_LETTER, {"entity": entity}).one_or_none()
        return _letter(row) if row else None

    def blocked(self) -> set[str]:
        """Every entity currently held."""
        with self._engine.connect() as conn:
            return set(
                conn.execute(select(dead_letters.c.entity).where(dead_letters.c.state == QUEUED)).scalars()
            )

    def hold(self, entity: str) -> bool:
        """Count one more piece of work waiting behind the entity's letter; ``False`` if not blocked."""
        letter = self.queued(entity)
        if letter is None:
            return False
        with self._engine.begin() as conn:
            conn.execute(
                dead_letters.update()
                .where(dead_letters.c.letter_id == letter.letter_id)
                .values(held_events=letter.held_events + 1)
            )
        return True

    def due(self, now: datetime | None = None) -> list[DeadLetter]:
        """Queued letters whose retry time has come or that an operator asked to retry, oldest first."""
        now = now or utcnow()
        condition = and_(
            dead_letters.c.state == QUEUED,
            or_(dead_letters.c.next_attempt_at <= now, dead_letters.c.manual.is_(True)),
        )
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(dead_letters).where(condition).order_by(dead_letters.c.letter_id)
            ).all()
        return [_letter(row) for row in rows]

    def resolve(self, entity: str) -> None:
        """The entity was processed successfully: release it."""
        self._set_state(entity, RESOLVED)

    def of_incident(self, incident_sys_id: str) -> list[DeadLetter]:
        """The incident's letters in every state, of every supplier, oldest first."""
        query = (
            select(dead_letters)
            .where(dead_letters.c.entity.startswith(f"{incident_sys_id}:", autoescape=True))
            .order_by(dead_letters.c.letter_id)
        )
        with self._engine.connect() as conn:
            return [_letter(row) for row in conn.execute(query).all()]

    def list(self, state: str | None = QUEUED) -> list[DeadLetter]:
        """Letters in ``state`` (all when ``None``), oldest first."""
        query = select(dead_letters).order_by(dead_letters.c.letter_id)
        if state is not None:
            query = query.where(dead_letters.c.state == state)
        with self._engine.connect() as conn:
            return [_letter(row) for row in conn.execute(query).all()]

    def retry_now(self, letter_id: int) -> bool:
        """Have a queued letter retried at the next cycle, past any cool-down; ``False`` when there is no such letter."""
        return self._update(letter_id, manual=True)

    def drop(self, letter_id: int) -> bool:
        """Give up on a letter; its entity is no longer held."""
        return self._update(letter_id, state=DROPPED)

    def _update(self, letter_id: int, **values: Any) -> bool:
        condition = and_(dead_letters.c.letter_id == letter_id, dead_letters.c.state == QUEUED)
        with self._engine.begin() as conn:
            return conn.execute(dead_letters.update().where(condition).values(**values)).rowcount > 0

    def _set_state(self, entity: str, state: str) -> None:
        condition = and_(dead_letters.c.entity == entity, dead_letters.c.state == QUEUED)
        with self._engine.begin() as conn:
            conn.execute(dead_letters.update().where(condition).values(state=state))


# Built once: the engine asks after every entity it processed (see connector.store.links).
_QUEUED_LETTER = select(dead_letters).where(
    dead_letters.c.entity == bindparam("entity"), dead_letters.c.state == QUEUED
)


def _letter(row: Any) -> DeadLetter:
    now = utcnow()
    return DeadLetter(
        row.letter_id,
        row.entity,
        row.state,
        row.error_type,
        row.error,
        row.attempts,
        row.held_events,
        as_utc(row.first_failed_at) or now,
        as_utc(row.last_failed_at) or now,
        as_utc(row.next_attempt_at) or now,
        bool(row.manual),
    )
