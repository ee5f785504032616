"""Throttle closures (a 429's ``Retry-After``) kept in the store, so that a restart honours them.

A daemon killed while a platform has it throttled must not come back and call that scope before
the time is up. Times are wall-clock (UTC): the monotonic clock of the process that received the
429 died with it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from connector.store.db import database_now, upsert_insert, utcnow
from connector.store.tables import throttles


class Throttles:
    """``system|scope`` -> closed until."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def close(self, scope: str, seconds: float) -> None:
        """Keep ``scope`` closed for ``seconds`` from now (extends, never shortens).

        Instances sharing the store may close one scope at the same moment: the row is inserted
        if missing, then moved later only if this closure ends later (no read-then-write race).
        """
        with self._engine.begin() as conn:
            until = database_now(conn) + timedelta(seconds=seconds)
            conn.execute(
                upsert_insert(self._engine, throttles)
                .values(scope=scope, until=until)
                .on_conflict_do_nothing()
            )
            conn.execute(
                throttles.update()
                .where(throttles.c.scope == scope, throttles.c.until < until)
                .values(until=until)
            )

    def open_closures(self, *, prune: bool = True) -> dict[str, float]:
        """Scopes still closed and the seconds left.

        Expired rows are removed, unless ``prune`` is false: a read only, for frequent looks.
        """
        with self._engine.begin() as conn:
            now = database_now(conn)
            rows = conn.execute(select(throttles).where(throttles.c.until > now)).all()
            if prune:
                conn.execute(throttles.delete().where(throttles.c.until <= now))
        return {
            row.scope: (_aware(row.until) - now).total_seconds() for row in rows if _aware(row.until) > now
        }


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every time stored here is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=utcnow().tzinfo)
