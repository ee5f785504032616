"""Pushed deliveries already received, so that a retry or a duplicate does nothing.

Jira names each webhook delivery (``X-Atlassian-Webhook-Identifier``, the same on its retries),
our ServiceNow push each notification (``X-MIM-Delivery``). A delivery is recorded in the
transaction that queues its work: it is either received and queued, or neither.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Engine, delete

from connector.store.db import upsert_insert, writing
from connector.store.tables import deliveries


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

    def forget_before(self, cutoff: datetime) -> int:
        """Remove deliveries received before ``cutoff``; returns how many."""
        with self._engine.begin() as conn:
            return int(conn.execute(delete(deliveries).where(deliveries.c.received_at < cutoff)).rowcount)
