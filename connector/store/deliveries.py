"""Pushed deliveries already received (a retry or a duplicate does nothing), and pushed incident versions.

Jira names each webhook delivery (``X-Atlassian-Webhook-Identifier``, the same on its retries),
our ServiceNow push each notification (``X-MIM-Delivery``). A delivery is recorded in the
transaction that queues its work: it is either received and queued, or neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, select, tuple_

from connector.store.db import as_utc, chunked, upsert_insert, writing
from connector.store.tables import deliveries, pushed


def versions_source(source: str) -> str:
    """Under which source the versions ``source`` pushed are recorded (``jira:acme#version``).

    A delivery names a version of a record (an issue's id and ``updated``, an incident's
    ``sys_id@sys_mod_count``); a poll that finds a version asks whether push announced it.
    """
    return f"{source}#version"


class Deliveries:
    """Record deliveries by identifier and forget them once older than their retries can be."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def first(self, source: str, delivery_id: str, now: datetime, *, conn: Connection | None = None) -> bool:
        """Record ``delivery_id`` of ``source`` as received now; ``False`` if it was already.

        In ``conn``'s transaction when given (with the work the delivery queues).
        """
        statement = (
            upsert_insert(self._engine, deliveries)
            .values(source=source, delivery_id=delivery_id[:128], received_at=now)
            .on_conflict_do_nothing(index_elements=[deliveries.c.source, deliveries.c.delivery_id])
            # A row back means it was inserted (``rowcount`` of a skipped insert is not reliable).
            .returning(deliveries.c.delivery_id)
        )
        with writing(self._engine, conn) as tx:
            return tx.execute(statement).first() is not None

    def known(self, source: str, delivery_ids: Iterable[str]) -> set[str]:
        """Which of ``delivery_ids`` of ``source`` were received."""
        wanted = [delivery_id[:128] for delivery_id in delivery_ids]
        found: set[str] = set()
        with self._engine.connect() as conn:
            for chunk in chunked(wanted):
                found.update(
                    conn.execute(
                        select(deliveries.c.delivery_id).where(
                            deliveries.c.source == source, deliveries.c.delivery_id.in_(chunk)
                        )
                    ).scalars()
                )
        return found

    def forget_before(self, cutoff: datetime) -> int:
        """Remove deliveries received before ``cutoff``; returns how many."""
        with self._engine.begin() as conn:
            return int(conn.execute(delete(deliveries).where(deliveries.c.received_at < cutoff)).rowcount)


@dataclass(frozen=True)
class PushedVersion:
    """An incident version as the ServiceNow push described it (the fields it carried)."""

    sys_id: str
    mod_count: int
    number: str
    updated_on: str
    fields: Mapping[str, str]
    received_at: datetime


class PushedVersions:
    """Incident versions ServiceNow pushed, kept until the ServiceNow poll hands them to the rules.

    A version that lived shorter than a poll is never read by one; its notification still lets the
    promotion rules evaluate it.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def keep(self, version: PushedVersion, *, conn: Connection | None = None) -> None:
        """Remember ``version`` (a repeat of one already kept changes nothing)."""
        statement = (
            upsert_insert(self._engine, pushed)
            .values(
                sys_id=version.sys_id,
                mod_count=version.mod_count,
                number=version.number,
                updated_on=version.updated_on[:19],
                fields=dict(version.fields),
                received_at=version.received_at,
            )
            .on_conflict_do_nothing(index_elements=[pushed.c.sys_id, pushed.c.mod_count])
        )
        with writing(self._engine, conn) as tx:
            tx.execute(statement)

    def waiting(self, limit: int = 1000) -> list[PushedVersion]:
        """The versions kept, oldest received first (at most ``limit``)."""
        statement = select(pushed).order_by(pushed.c.received_at, pushed.c.sys_id).limit(limit)
        with self._engine.connect() as conn:
            return [
                PushedVersion(
                    row.sys_id,
                    int(row.mod_count),
                    row.number,
                    row.updated_on,
                    dict(row.fields or {}),
                    as_utc(row.received_at) or row.received_at,
                )
                for row in conn.execute(statement)
            ]

    def forget(self, versions: Iterable[tuple[str, int]], *, conn: Connection | None = None) -> None:
        """Remove these (sys_id, mod_count) versions: the rules have had them, or they are obsolete."""
        keys = list(versions)
        with writing(self._engine, conn) as tx:
            for chunk in chunked(keys):
                tx.execute(delete(pushed).where(tuple_(pushed.c.sys_id, pushed.c.mod_count).in_(chunk)))
