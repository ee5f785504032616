"""The daemons sharing this store: who they are and when each was last heard of.

Every ``mim-connector run`` registers itself at start, beats at every lease renewal and leaves
when it stops; one killed without leaving stops beating and counts as gone once its ``seen_at`` is
older than the lease TTL. The live instances share each site's rate budget between them
(:mod:`connector.runtime.membership`). Times are the database server's clock on PostgreSQL
(instances on several hosts compare one clock), the local UTC clock on SQLite (one host).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, select

from connector.store.db import database_now, upsert_insert
from connector.store.tables import instances


@dataclass(frozen=True)
class Instance:
    """One daemon on the store, as last registered."""

    instance_id: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime
    workers: int


class Instances:
    """Register, beat, list and remove instances; ``clock`` replaces the database's clock (tests)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._clock = clock

    def now(self) -> datetime:
        """The time instances are measured by (the database server's clock on PostgreSQL)."""
        with self._engine.connect() as conn:
            return self._now(conn)

    def register(self, instance_id: str, host: str, pid: int, workers: int) -> Instance:
        """Record ``instance_id`` as started and seen now (a row of that id is replaced)."""
        with self._engine.begin() as conn:
            now = self._now(conn)
            values = {"host": host, "pid": pid, "started_at": now, "seen_at": now, "workers": workers}
            conn.execute(
                upsert_insert(self._engine, instances)
                .values(instance_id=instance_id, **values)
                .on_conflict_do_update(index_elements=[instances.c.instance_id], set_=values)
            )
        return Instance(instance_id, host, pid, now, now, workers)

    def beat(self, instance_id: str, *, host: str, pid: int, workers: int) -> bool:
        """Mark ``instance_id`` seen now; ``False`` if its row had vanished and was registered again.

        A row vanishes when another instance pruned it (this one was paused longer than the
        prune age) or an operator removed it; beating brings it back, started now.
        """
        with self._engine.begin() as conn:
            now = self._now(conn)
            seen = conn.execute(
                instances.update().where(instances.c.instance_id == instance_id).values(seen_at=now)
            )
        if seen.rowcount == 1:
            return True
        self.register(instance_id, host, pid, workers)
        return False

    def live(self, ttl: timedelta) -> list[Instance]:
        """The instances seen within ``ttl`` of now, oldest first."""
        with self._engine.connect() as conn:
            now = self._now(conn)
            rows = conn.execute(
                select(instances)
                .where(instances.c.seen_at > now - ttl)
                .order_by(instances.c.started_at, instances.c.instance_id)
            ).all()
        return [_instance(row) for row in rows]

    def leave(self, instance_id: str) -> None:
        """Remove ``instance_id`` (a clean stop: the others count it gone at once)."""
        with self._engine.begin() as conn:
            conn.execute(instances.delete().where(instances.c.instance_id == instance_id))

    def prune(self, older_than: timedelta) -> int:
        """Remove the instances not seen for ``older_than`` (killed ones); return how many."""
        with self._engine.begin() as conn:
            now = self._now(conn)
            pruned = conn.execute(instances.delete().where(instances.c.seen_at <= now - older_than))
        return int(pruned.rowcount)

    def _now(self, conn: Connection) -> datetime:
        return self._clock() if self._clock is not None else database_now(conn)


def _instance(row: Row[Any]) -> Instance:
    return Instance(row.instance_id, row.host, row.pid, _utc(row.started_at), _utc(row.seen_at), row.workers)


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
