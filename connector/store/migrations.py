"""Bring a database to :data:`~connector.store.schema.SCHEMA_VERSION`, one numbered step at a time.

Each step is idempotent (it creates what is missing), so a fresh database and an upgraded one end
in the same shape, which a test checks against :mod:`connector.store.schema`. On PostgreSQL an
advisory lock keeps two daemons from migrating at once.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select, text

from connector.store import schema

MIGRATION_LOCK = 0x6D696D  # "mim"


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer connector; this one must not touch it."""


def _v1(conn: Connection) -> None:
    schema.metadata.create_all(conn, checkfirst=True)


def _v2(conn: Connection) -> None:
    """Promotion rules: decisions, condition state, clusters, and candidate columns on incidents."""
    schema.metadata.create_all(conn, checkfirst=True)
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
    schema.metadata.create_all(conn, checkfirst=True)


STEPS: dict[int, Callable[[Connection], None]] = {1: _v1, 2: _v2, 3: _v3}


def current_version(conn: Connection) -> int:
    """The schema version recorded in the database (0 for an empty one)."""
    if not inspect(conn).has_table("meta"):
        return 0
    value = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
    return int(value) if value is not None else 0


def migrate(engine: Engine) -> int:
    """Apply the missing steps; return the resulting version.

    Raises:
        SchemaTooNew: the database is ahead of this code.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        version = current_version(conn)
        if version > schema.SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the state store is at schema v{version}; this connector knows v{schema.SCHEMA_VERSION}"
            )
        for step in range(version + 1, schema.SCHEMA_VERSION + 1):
            STEPS[step](conn)
            _set_version(conn, step)
    return schema.SCHEMA_VERSION


def _set_version(conn: Connection, version: int) -> None:
    table = schema.meta
    updated = conn.execute(table.update().where(table.c.key == "schema_version").values(value=str(version)))
    if updated.rowcount == 0:
        conn.execute(table.insert().values(key="schema_version", value=str(version)))
