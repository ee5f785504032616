"""The state store (SQLAlchemy Core): SQLite file by default, PostgreSQL by URL.

``Store.open(url)`` migrates the schema and exposes one small repository per concern:
``watermarks``, ``incidents``, ``links``, ``shadows``, ``comments``, ``intents``, ``audit``, the work
``queue`` and its dead letters ``dlq``, for the promotion rules ``decisions``, ``conditions`` and
``clusters``, ``leases`` (who holds which role) and ``instances`` (the daemons sharing the store).
A store that cannot be opened raises :class:`~connector.core.errors.StoreError` with a one-line message.
"""

from __future__ import annotations

import os
import socket
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from connector.core.errors import CredentialError, StoreError
from connector.core.secrets import UnresolvedSecret
from connector.store.db import engine_for, locate
from connector.store.decisions import Clusters, ConditionState, Decisions
from connector.store.deliveries import Deliveries, PushedVersions
from connector.store.dlq import DeadLetters
from connector.store.instances import Instances
from connector.store.intents import AuditLog, Intents
from connector.store.leases import Leases
from connector.store.links import CommentLedger, Links, Shadows
from connector.store.migrations import migrate
from connector.store.opening import Created, create_file, failure
from connector.store.progress import Incidents, Watermarks
from connector.store.queue import WorkQueue
from connector.store.throttles import Throttles


class Store:
    """All persistent state of one connector instance.

    ``label`` names the store in messages; ``created`` is what :meth:`open` made (a new SQLite
    file and its folders), which :meth:`discard` removes after a failed start.
    """

    def __init__(
        self,
        engine: Engine,
        actor: str = "mim-connector",
        *,
        retry_delay: timedelta | None = None,
        label: str = "",
        created: Created | None = None,
    ) -> None:
        self.engine = engine
        self.label = label or engine.url.render_as_string(hide_password=True)
        self.created = created or Created()
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
        self.leases = Leases(engine)
        self.queue = WorkQueue(engine)
        self.instances = Instances(engine)
        self.deliveries = Deliveries(engine)
        self.pushed = PushedVersions(engine)
        self.dlq = DeadLetters(engine) if retry_delay is None else DeadLetters(engine, base_delay=retry_delay)

    @classmethod
    def open(
        cls,
        url: str,
        base_dir: Path | None = None,
        *,
        actor: str = "mim-connector",
        retry_delay: timedelta | None = None,
        idle_timeout: timedelta | None = None,
    ) -> Store:
        """Connect to ``url`` (relative SQLite paths against ``base_dir``) and migrate the schema.

        ``idle_timeout``: see :func:`connector.store.db.engine_for` (the lease TTL, for a daemon).

        Raises:
            connector.core.errors.CredentialError: a ``${VAR}`` in ``url`` is unset (named like every
                other unresolvable credential: ``store: ${VAR} is not set``).
            connector.core.errors.StoreError: the store cannot be used (one line: which store, what to
                do); a file this call created is removed again.
        """
        try:
            location = locate(url, base_dir)
        except UnresolvedSecret as exc:
            raise CredentialError([f"store: {exc.brief}"]) from None
        created, engine = Created(), None
        try:
            if location.path is not None and not location.path.exists():
                created = create_file(location.path)
            engine = engine_for(location, idle_timeout=idle_timeout)
            migrate(engine)
        except (SQLAlchemyError, OSError, StoreError) as exc:
            if engine is not None:
                engine.dispose()
            created.discard()
            raise failure(exc, location.label) from exc
        return cls(engine, actor, retry_delay=retry_delay, label=location.label, created=created)

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

    def discard(self) -> None:
        """Close, and remove what :meth:`open` created: for a start that failed before it wrote anything.

        A file whose lease another process took meanwhile (it opened the new file too) is kept.
        """
        if self.created.path is not None:
            try:
                lease = self.leases.get()
            except SQLAlchemyError:
                lease = None
            if lease is not None and (lease.holder.host, lease.holder.pid) != (
                socket.gethostname(),
                os.getpid(),
            ):
                self.created = Created()
        self.close()
        self.created.discard()


__all__ = ["Store"]
