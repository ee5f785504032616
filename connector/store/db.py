"""Opening the database: URL handling, SQLite pragmas and writers, the PostgreSQL driver, UTC time."""

from __future__ import annotations

import functools
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, create_engine, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError

from connector.core.errors import StoreError
from connector.core.priority import in_background
from connector.core.secrets import interpolate

SQLITE_TIMEOUT = 30.0
"""Seconds a SQLite writer waits for the database (another process, or another thread here)."""
SQLITE_POOL = (32, 64)
"""Connections kept open and the most at once: reads run in parallel (``polling.workers`` ≤ 64).

As many kept as a backfill's workers use: a connection beyond those kept is opened (with its
pragmas) and closed for every transaction, which cost a third of a 32-worker daemon's store time."""
POSTGRES_EXTRA = "pip install 'mim-connector[postgres]'"
"""How to install the PostgreSQL driver, which is an extra: SQLite needs none."""


T = TypeVar("T")
CHUNK = 500
"""Values per ``IN (...)`` list: well inside SQLite's and PostgreSQL's limits on bound parameters."""


def chunked(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most :data:`CHUNK`, for ``IN`` lists."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def upsert_insert(engine: Engine, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An ``INSERT`` on ``table`` that takes ``ON CONFLICT`` clauses (SQLite ≥ 3.24, PostgreSQL)."""
    return postgresql.insert(table) if engine.dialect.name == "postgresql" else sqlite.insert(table)


@contextmanager
def writing(engine: Engine, conn: Connection | None = None) -> Iterator[Connection]:
    """A transaction of its own on ``engine``, or ``conn``'s when the caller groups several writes in one."""
    if conn is not None:
        yield conn
        return
    with engine.begin() as own:
        yield own


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the store never holds naive datetimes)."""
    return datetime.now(UTC)


def database_now(conn: Connection) -> datetime:
    """The time by the database's clock on PostgreSQL (hosts sharing a store compare one clock), else ours.

    SQLite is one host by construction: its time is this process's UTC clock.
    """
    if conn.dialect.name == "postgresql":
        moment: datetime = conn.execute(select(func.clock_timestamp())).scalar_one()
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return utcnow()


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; they were written as UTC."""
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class StoreLocation:
    """Where a store is: the URL to connect to, the SQLite file (``None`` otherwise), a name for messages."""

    url: URL
    path: Path | None
    label: str
    """The file's path, or the URL with its password hidden: what error messages call the store."""


def locate(url: str, base_dir: Path | None = None) -> StoreLocation:
    """Resolve ``sqlite:///PATH`` (relative to ``base_dir``) or ``postgresql://…`` (``${VAR}`` expanded).

    Raises:
        connector.core.secrets.UnresolvedSecret: a ``${VAR}`` in the URL is unset.
    """
    resolved = make_url(interpolate(url))
    if resolved.drivername == "sqlite":
        database = resolved.database or ""
        if not database or database == ":memory:":
            return StoreLocation(resolved, None, "sqlite (in memory)")
        path = Path(database)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        path = path.resolve()  # "config/../var/x.db" reads badly in a message
        return StoreLocation(resolved.set(database=str(path)), path, str(path))
    label = resolved.render_as_string(hide_password=True)
    if resolved.drivername == "postgresql":
        resolved = resolved.set(drivername="postgresql+psycopg")
    return StoreLocation(resolved, None, label)


def engine_for(location: StoreLocation, *, idle_timeout: timedelta | None = None) -> Engine:
    """An engine for ``location``; connecting is left to its first use (a SQLite file's folder must exist).

    ``idle_timeout`` (PostgreSQL): the server ends a transaction of ours idle that long. A process
    frozen in a transaction (SIGSTOP, a paused VM) otherwise holds its row locks for ever, and
    the takeover of the roles it fenced (:func:`connector.store.leases.fence`) waits for them: no
    failover. Our transactions never wait on anything but the store, so the lease TTL is a bound
    no live process reaches.

    Raises:
        connector.core.errors.StoreError: a PostgreSQL URL without its driver installed (one line naming
            the ``postgres`` extra).
    """
    if location.url.drivername == "sqlite":
        pool: dict[str, Any] = {}
        if location.path is not None:
            kept, most = SQLITE_POOL
            pool = {"pool_size": kept, "max_overflow": most - kept, "pool_timeout": SQLITE_TIMEOUT}
        engine = create_engine(location.url, connect_args={"timeout": SQLITE_TIMEOUT}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        _one_writer_at_a_time(engine)
        return engine
    try:
        engine = create_engine(location.url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        # SQLAlchemy imports the driver here; a store on SQLite must not need it installed.
        if exc.name not in ("psycopg", "psycopg2"):
            raise
        remedy = POSTGRES_EXTRA if exc.name == "psycopg" else f"install {exc.name}, or {POSTGRES_EXTRA}"
        raise StoreError(
            f"state store {location.label} needs the PostgreSQL driver {exc.name}, which is not installed: {remedy}"
        ) from None
    if idle_timeout is not None:
        milliseconds = max(1, round(idle_timeout.total_seconds() * 1000))
        event.listen(engine, "connect", functools.partial(_idle_in_transaction_timeout, milliseconds))
    return engine


def _idle_in_transaction_timeout(milliseconds: int, connection: Any, _record: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET idle_in_transaction_session_timeout = {milliseconds:d}")
    connection.commit()


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    # WAL lets the CLI read state while the daemon writes; foreign keys are off by default in SQLite.
    _journal_mode_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _journal_mode_wal(cursor: Any) -> None:
    """Switch to WAL, waiting like a writer for another process switching a new file at the same moment.

    SQLite answers that switch with "database is locked" at once, without its busy handler, while
    another connection holds the file; the mode is persistent, so a later try finds it done.
    """
    deadline = time.monotonic() + SQLITE_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class WriterLock:
    """A lock whose waiters in the background let every other waiter go first.

    See :func:`~connector.core.priority.in_background`: a backfill's 32 workers queueing for
    SQLite's one writer do not hold up the transactions of a poll or a fresh change. Each release
    wakes one waiter (an urgent one if any waits), not all of them.
    """

    def __init__(self) -> None:
        self._state = threading.Lock()
        self._urgent = threading.Condition(self._state)
        self._patient = threading.Condition(self._state)
        self._held = False
        self._waiting = {self._urgent: 0, self._patient: 0}
        """Threads waiting on each condition."""

    def acquire(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` seconds; ``False`` if it could not."""
        urgent = not in_background()
        turn = self._urgent if urgent else self._patient
        deadline = time.monotonic() + timeout
        with self._state:
            while self._held or (not urgent and self._waiting[self._urgent]):
                left = deadline - time.monotonic()
                if left <= 0:
                    if not self._held:
                        self._wake_next()  # a wake-up this waiter took as it gave up is passed on
                    return False
                self._waiting[turn] += 1
                try:
                    turn.wait(left)
                finally:
                    self._waiting[turn] -= 1
            self._held = True
            return True

    def release(self) -> None:
        """Let the lock go and wake the next waiter."""
        with self._state:
            self._held = False
            self._wake_next()

    def _wake_next(self) -> None:
        for turn in (self._urgent, self._patient):
            if self._waiting[turn]:
                turn.notify()
                return


def _one_writer_at_a_time(engine: Engine) -> None:
    """Let the threads of this process write to a SQLite engine one transaction at a time.

    SQLite has one writer. Threads that meet its lock are put to sleep by its busy handler for
    1, 2, 5 ... 100 ms at a time, so with the engine's parallel workers most of the store's time
    went to sleeping rather than writing. A connection takes this lock before its first statement
    that is not a ``SELECT`` and keeps it until it goes back to the pool, i.e. after its commit or
    rollback; reads never take it (WAL lets them run beside the writer). Another process (the
    ``state`` command) still meets SQLite's own lock and busy timeout. A writer that cannot get
    the lock within :data:`SQLITE_TIMEOUT` fails as SQLite would (``database is locked``).
    Background work (:mod:`connector.core.priority`) lets every other writer waiting go first.
    """
    lock = WriterLock()

    def before_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        info = conn.connection.info
        if info.get("writer") or statement.lstrip()[:6].upper() == "SELECT":
            return
        if not lock.acquire(timeout=SQLITE_TIMEOUT):
            raise OperationalError(statement, None, Exception("database is locked (waited for a writer)"))
        info["writer"] = True

    def release(_dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop("writer", False):
            lock.release()

    event.listen(engine, "before_cursor_execute", before_execute)
    event.listen(engine, "checkin", release)
    # A connection invalidated or closed while writing never comes back through checkin.
    event.listen(engine, "close", release)
    event.listen(engine, "invalidate", lambda dbapi, record, _exc: release(dbapi, record))
