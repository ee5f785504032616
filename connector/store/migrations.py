"""Bring a database to :data:`~connector.store.tables.SCHEMA_VERSION`, one numbered step at a time.

Each step is idempotent (it creates what is missing), so a fresh database and an upgraded one end
in the same shape, which a test checks against :mod:`connector.store.tables`. Migrations are
serialised: an advisory lock on PostgreSQL, the database's write lock (``BEGIN IMMEDIATE``) on
SQLite, and the version is read again under the lock, so processes opening a new store at the same
moment migrate it once (SQLite runs DDL outside a transaction unless told otherwise: two daemons
started together on a new file used to die on ``table meta already exists``).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from connector.core.errors import StoreError
from connector.store import tables

MIGRATION_LOCK = 0x6D696D  # "mim"


class SchemaTooNew(StoreError):
    """The database was migrated by a newer connector; this one must not touch it."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"the state store is at schema v{version}; this connector knows v{tables.SCHEMA_VERSION}"
        )
        self.version = version


def _v1(conn: Connection) -> None:
    tables.metadata.create_all(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    """Promotion rules: decisions, condition state, clusters, and candidate columns on incidents."""
    tables.metadata.create_all(conn, checkfirst=True)
    present = {column["name"] for column in inspect(conn).get_columns("incidents")}
    if "opened_at" not in present:
        conn.execute(text("ALTER TABLE incidents ADD COLUMN opened_at VARCHAR(19)"))
    if "candidate" not in present:
        conn.execute(text("ALTER TABLE incidents ADD COLUMN candidate BOOLEAN DEFAULT false NOT NULL"))
    indexes = {index["name"] for index in inspect(conn).get_indexes("incidents")}
    if "ix_incidents_candidate" not in indexes:
        conn.execute(text("CREATE INDEX ix_incidents_candidate ON incidents (candidate, opened_at)"))


def _v3(conn: Connection) -> None:
    """Throttle closures kept across restarts."""
    tables.metadata.create_all(conn, checkfirst=True)


def _v4(conn: Connection) -> None:
    """Leases: one daemon per store, with a fencing epoch."""
    tables.metadata.create_all(conn, checkfirst=True)


def _v5(conn: Connection) -> None:
    """The work queue (dead letters become its ``dead`` items), claims, instances, the reconciler's links."""
    tables.metadata.create_all(conn, checkfirst=True)
    present = {column["name"] for column in inspect(conn).get_columns("links")}
    stamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" else "DATETIME"
    for column, kind in (("checked_at", stamp), ("retired_at", stamp), ("seen_version", "VARCHAR(80)")):
        if column not in present:
            conn.execute(text(f"ALTER TABLE links ADD COLUMN {column} {kind}"))
    indexes = {index["name"] for index in inspect(conn).get_indexes("links")}
    if "ix_links_reconcile" not in indexes:
        conn.execute(text("CREATE INDEX ix_links_reconcile ON links (retired_at, checked_at)"))
    # The letters still queued become the queue's dead items (the old table stays, as history).
    letters = tables.dead_letters
    moved = set(conn.execute(select(tables.work.c.entity)).scalars())
    for row in conn.execute(select(letters).where(letters.c.state == "queued").order_by(letters.c.letter_id)):
        if row.entity in moved:
            continue
        moved.add(row.entity)
        incident_sys_id, _, supplier = row.entity.rpartition(":")
        conn.execute(
            tables.work.insert().values(
                entity=row.entity,
                incident_sys_id=incident_sys_id,
                supplier=supplier,
                state="dead",
                lane=1,
                reasons=["failed"],
                due_at=row.next_attempt_at,
                enqueued_at=row.first_failed_at,
                version=1,
                detail={"full_journal": True},
                attempts=row.attempts,
                held_events=row.held_events,
                error_type=row.error_type,
                error=row.error,
                first_failed_at=row.first_failed_at,
                last_failed_at=row.last_failed_at,
                manual=row.manual,
            )
        )


def _v6(conn: Connection) -> None:
    """Push: the deliveries already received, the incident versions pushed for the rules."""
    tables.metadata.create_all(conn, checkfirst=True)


STEPS: dict[int, Callable[[Connection], None]] = {1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6}


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 for an empty one)."""
    if not inspect(conn).has_table("meta"):
        return 0
    value = conn.execute(select(tables.meta.c.value).where(tables.meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0


def migrate(engine: Engine) -> int:
    """Apply the missing steps under the migration lock; return the resulting version.

    A store already at this version is only read (no lock): the read-only commands open it beside
    a running daemon without waiting for its writes.

    Raises:
        SchemaTooNew: the database is ahead of this code.
    """
    with engine.connect() as conn:
        if _checked_version(conn) == tables.SCHEMA_VERSION:
            return tables.SCHEMA_VERSION
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # pysqlite would run the DDL below in autocommit; take the write lock first, and hold it.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        for step in range(_checked_version(conn) + 1, tables.SCHEMA_VERSION + 1):
            STEPS[step](conn)
            _set_version(conn, step)
        conn.commit()
    return tables.SCHEMA_VERSION


def _checked_version(conn: Connection) -> int:
    version = current_version(conn)
    if version > tables.SCHEMA_VERSION:
        raise SchemaTooNew(version)
    return version


def _set_version(conn: Connection, version: int) -> None:
    table = tables.meta
    updated = conn.execute(table.update().where(table.c.key == "schema_version").values(value=str(version)))
    if updated.rowcount == 0:
        conn.execute(table.insert().values(key="schema_version", value=str(version)))
