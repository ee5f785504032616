"""The state store (SQLAlchemy Core): SQLite file by default, PostgreSQL by URL.

``Store.open(url)`` migrates the schema and exposes one small repository per concern:
``watermarks``, ``incidents``, ``links``, ``shadows``, ``comments``, ``intents``, ``audit``, ``dlq``,
and for the promotion rules ``decisions``, ``conditions`` and ``clusters``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine

from connector.store.db import engine_for
from connector.store.decisions import Clusters, ConditionState, Decisions
from connector.store.dlq import DeadLetters
from connector.store.intents import AuditLog, Intents
from connector.store.links import CommentLedger, Links, Shadows
from connector.store.migrations import migrate
from connector.store.progress import Incidents, Watermarks
from connector.store.throttles import Throttles


class Store:
    """All persistent state of one connector instance."""

    def __init__(
        self, engine: Engine, actor: str = "mim-connector", *, retry_delay: timedelta | None = None
    ) -> None:
        self.engine = engine
        self.watermarks = Watermarks(engine)
        self.incidents = Incidents(engine)
        self.links = Links(engine)
        self.shadows = Shadows(engine)
        self.comments = CommentLedger(engine)
        self.intents = Intents(engine)
        self.audit = AuditLog(engine, actor)
        self.decisions = Decisions(engine)
        self.conditions = ConditionState(engine)
        self.clusters = Clusters(engine)
        self.throttles = Throttles(engine)
        self.dlq = DeadLetters(engine) if retry_delay is None else DeadLetters(engine, base_delay=retry_delay)

    @classmethod
    def open(
        cls,
        url: str,
        base_dir: Path | None = None,
        *,
        actor: str = "mim-connector",
        retry_delay: timedelta | None = None,
    ) -> Store:
        """Connect to ``url`` (relative SQLite paths against ``base_dir``) and migrate the schema."""
        engine = engine_for(url, base_dir)
        migrate(engine)
        return cls(engine, actor, retry_delay=retry_delay)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def transaction(self) -> AbstractContextManager[Connection]:
        """One transaction for several records that must land together (pass it as ``conn=``)."""
        return self.engine.begin()

    def close(self) -> None:
        """Release all connections."""
        self.engine.dispose()


__all__ = ["Store"]
