"""Write intents (a row before every external write, its outcome after) and the audit log."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, bindparam, or_, select

from connector.store.db import as_utc, utcnow, writing
from connector.store.tables import audit, intents

IntentState = Literal["pending", "done", "failed", "uncertain", "abandoned"]


@dataclass(frozen=True)
class Intent:
    """A planned external write.

    ``pending`` after a crash or ``uncertain`` after a lost answer means the write may have
    happened: reconcile by looking for ``stamp``, never repeat blindly.
    """

    intent_id: int
    entity: str
    operation: str
    target: str
    stamp: str
    payload: Mapping[str, Any]
    state: str
    attempts: int
    created_at: datetime


class Intents:
    """The write-ahead log of external side effects."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def begin(
        self,
        entity: str,
        operation: str,
        target: str,
        stamp: str,
        payload: Mapping[str, Any],
        *,
        conn: Connection | None = None,
    ) -> Intent:
        """Record that we are about to write; its transaction (``conn``'s if given) commits before the write is sent."""
        now = utcnow()
        with writing(self._engine, conn) as tx:
            result = tx.execute(
                _INSERT_INTENT,
                {
                    "entity": entity,
                    "operation": operation,
                    "target": target,
                    "stamp": stamp,
                    "payload": dict(payload),
                    "state": "pending",
                    "attempts": 1,
                    "created_at": now,
                    "updated_at": now,
                },
            )
            intent_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        return Intent(intent_id, entity, operation, target, stamp, dict(payload), "pending", 1, now)

    def finish(
        self,
        intent_id: int,
        state: IntentState,
        outcome: Mapping[str, Any] | None = None,
        *,
        conn: Connection | None = None,
    ) -> None:
        """Record what became of the write (in ``conn``'s transaction if given)."""
        params = {"id": intent_id, "state": state, "outcome": dict(outcome or {}), "updated_at": utcnow()}
        with writing(self._engine, conn) as tx:
            tx.execute(_FINISH_INTENT, params)

    def unfinished(self, entity: str | None = None) -> list[Intent]:
        """Intents whose outcome is unknown (``pending`` from a crash, or ``uncertain``), oldest first."""
        statement = _UNFINISHED_INTENTS if entity is None else _UNFINISHED_INTENTS_OF_ENTITY
        with self._engine.connect() as conn:
            rows = conn.execute(statement, {"entity": entity}).all()
        return [_intent(row) for row in rows]

    def unfinished_of_incident(self, incident_sys_id: str) -> list[Intent]:
        """The incident's intents whose outcome is unknown, of every supplier and of the rules, oldest first."""
        statement = _UNFINISHED_INTENTS.where(
            intents.c.entity.startswith(f"{incident_sys_id}:", autoescape=True)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(statement).all()
        return [_intent(row) for row in rows]

    def written_since(self, entities: Sequence[str], since: datetime) -> bool:
        """Whether a write of ``entities`` is open, or was settled at or after ``since``."""
        with self._engine.connect() as conn:
            found = conn.execute(_WRITTEN_SINCE, {"entities": list(entities), "since": since}).first()
        return found is not None

    def unfinished_in_scope(self, scope: str) -> list[Intent]:
        """Intents of the entities ``<incident_sys_id>:<scope>`` whose outcome is unknown, oldest first."""
        statement = _UNFINISHED_INTENTS.where(intents.c.entity.endswith(f":{scope}", autoescape=True))
        with self._engine.connect() as conn:
            rows = conn.execute(statement).all()
        return [_intent(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many intents are in each state."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(intents.c.state)).all()
        out: dict[str, int] = {}
        for row in rows:
            out[row.state] = out.get(row.state, 0) + 1
        return out


# Built once: an intent and an audit entry go with every write, and every entity's sync looks for
# unfinished intents (see connector.store.links).
_INSERT_INTENT = intents.insert()
_FINISH_INTENT = (
    intents.update()
    .where(intents.c.intent_id == bindparam("id"))
    .values(state=bindparam("state"), outcome=bindparam("outcome"), updated_at=bindparam("updated_at"))
)
_UNFINISHED_INTENTS = (
    select(intents).where(intents.c.state.in_(("pending", "uncertain"))).order_by(intents.c.intent_id)
)
_UNFINISHED_INTENTS_OF_ENTITY = _UNFINISHED_INTENTS.where(intents.c.entity == bindparam("entity"))
_WRITTEN_SINCE = (
    select(intents.c.intent_id)
    .where(
        intents.c.entity.in_(bindparam("entities", expanding=True)),
        or_(intents.c.state.in_(("pending", "uncertain")), intents.c.updated_at >= bindparam("since")),
    )
    .limit(1)
)
_INSERT_AUDIT = audit.insert()


def _intent(row: Any) -> Intent:
    return Intent(
        row.intent_id,
        row.entity,
        row.operation,
        row.target,
        row.stamp,
        dict(row.payload or {}),
        row.state,
        row.attempts,
        as_utc(row.created_at) or utcnow(),
    )


@dataclass(frozen=True)
class AuditEntry:
    """One write as the audit log shows it."""

    audit_id: int
    at: datetime
    actor: str
    system: str
    operation: str
    target: str
    before: Any
    after: Any
    reason: str
    intent_id: int | None
    outcome: str


class AuditLog:
    """Append-only record of every write: who, what, before, after, why."""

    def __init__(self, engine: Engine, actor: str) -> None:
        self._engine = engine
        self.actor = actor

    def record(
        self,
        system: str,
        operation: str,
        target: str,
        *,
        reason: str,
        before: Any = None,
        after: Any = None,
        intent_id: int | None = None,
        outcome: str = "done",
        conn: Connection | None = None,
    ) -> None:
        """Append an entry (``outcome``: done, failed, uncertain, dry-run; in ``conn``'s transaction if given)."""
        with writing(self._engine, conn) as tx:
            tx.execute(
                _INSERT_AUDIT,
                {
                    "at": utcnow(),
                    "actor": self.actor,
                    "system": system,
                    "operation": operation,
                    "target": target,
                    "before": before,
                    "after": after,
                    "reason": reason,
                    "intent_id": intent_id,
                    "outcome": outcome,
                },
            )

    def entries(self, target: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest entries first, optionally for one target."""
        query = select(audit).order_by(audit.c.audit_id.desc()).limit(limit)
        if target is not None:
            query = query.where(audit.c.target == target)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AuditEntry(
                r.audit_id,
                as_utc(r.at) or utcnow(),
                r.actor,
                r.system,
                r.operation,
                r.target,
                r.before,
                r.after,
                r.reason,
                r.intent_id,
                r.outcome,
            )
            for r in rows
        ]
