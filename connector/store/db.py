"""Opening the database: URL handling, SQLite pragmas, the PostgreSQL driver, UTC time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from connector.secrets import interpolate


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the store never holds naive datetimes)."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were written as UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def engine_for(url: str, base_dir: Path | None = None) -> Engine:
    """An engine for ``sqlite:///PATH`` (relative to ``base_dir``) or ``postgresql://…`` (``${VAR}`` expanded).

    Raises:
        connector.secrets.UnresolvedSecret: a ``${VAR}`` in the URL is unset.
    """
    resolved = make_url(interpolate(url))
    if resolved.drivername == "sqlite":
        database = resolved.database or ""
        if database and database != ":memory:":
            path = Path(database)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            path.parent.mkdir(parents=True, exist_ok=True)
            resolved = resolved.set(database=str(path))
        engine = create_engine(resolved, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if resolved.drivername == "postgresql":
        resolved = resolved.set(drivername="postgresql+psycopg")
    return create_engine(resolved, pool_pre_ping=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets the CLI read state while the daemon writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
