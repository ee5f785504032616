"""Leases: which process may write to this store now, until when, under which fencing epoch.

One row per lease name: ``daemon`` (a second daemon on a SQLite store is refused) and the singleton
roles (:data:`SERVICENOW_ROLE`, :func:`supplier_role`, :data:`RECONCILER_ROLE`) that instances
sharing a PostgreSQL store contend for. Every change is a compare-and-set on the row's epoch, so
two processes racing for a free lease cannot both win, on SQLite or PostgreSQL, without any lock
held across statements. Acquiring a free (expired or released) lease adds one to its epoch;
renewing and releasing only succeed while the epoch is still the caller's, which is how a holder
learns it was taken over. Times are the database server's clock on PostgreSQL (daemons on several
hosts compare one clock), the local clock on SQLite (one host by construction).

The epoch is the fencing token: :func:`fence`, called in the transaction that writes a watermark
or an outcome under a lease, locks the lease's row and refuses the transaction when the epoch has
moved on, so a holder that was paused or cut off while its lease passed to another cannot
overwrite its successor's work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, select

from connector.core.errors import LeaseLost, StoreInUse
from connector.store.db import upsert_insert, utcnow
from connector.store.tables import leases

DAEMON = "daemon"
"""The lease a process holds while it writes to the store (``run``, ``sync --once``)."""
ROLE_PREFIX = "role:"
"""What every singleton role's lease name starts with."""
SERVICENOW_ROLE = "role:servicenow"
"""The instance that polls ServiceNow's incidents."""
RECONCILER_ROLE = "role:reconciler"
"""The instance that re-checks linked incidents in the background."""
_NAME_LENGTH = 64  # leases.name is a String(64)


def supplier_role(supplier: str) -> str:
    """The role of the instance that polls ``supplier``'s Jira: ``role:jira:<supplier>``.

    A supplier name too long for the lease's name column keeps its first characters and a digest
    of the whole, so that two long names still make two roles.
    """
    name = f"{ROLE_PREFIX}jira:{supplier}"
    if len(name) <= _NAME_LENGTH:
        return name
    digest = hashlib.sha256(supplier.encode()).hexdigest()[:12]
    return f"{name[: _NAME_LENGTH - len(digest) - 1]}~{digest}"


@dataclass(frozen=True)
class Holder:
    """A process that holds (or held) a lease."""

    command: str
    """What it runs, e.g. ``run`` or ``sync --once``."""
    host: str
    pid: int
    started_at: datetime
    process_key: str
    """Boot id, PID namespace and start ticks of the process ('' where unknown)."""

    def describe(self) -> str:
        """``mim-connector run on HOST (pid N, started …Z)``."""
        return (
            f"mim-connector {self.command} on {self.host} "
            f"(pid {self.pid}, started {self.started_at:%Y-%m-%d %H:%M:%S}Z)"
        )


@dataclass(frozen=True)
class Lease:
    """One lease as last written."""

    name: str
    epoch: int
    holder: Holder
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def live(self, now: datetime) -> bool:
        """Whether it still binds others at ``now``."""
        return self.expires_at > now

    @property
    def fence(self) -> Fence:
        """The fencing token that writes made under this lease carry (see :func:`fence`)."""
        return Fence(self.name, self.epoch)


@dataclass(frozen=True)
class Fence:
    """A lease's name and the epoch under which its holder writes: what :func:`fence` checks."""

    name: str
    epoch: int


def fence(conn: Connection, token: Fence | Lease) -> None:
    """Refuse the caller's transaction unless ``token``'s lease is still at ``token``'s epoch.

    Call it inside the transaction that writes under the lease (``with store.transaction() as
    conn:``), before its writes (it then holds the lease's row from the start) or at the latest
    before the commit. It locks the lease's row until the transaction ends: ``SELECT … FOR SHARE``
    on PostgreSQL (fenced transactions under one lease do not wait for each other, a takeover's
    ``UPDATE`` waits for them all), a no-op ``UPDATE`` on SQLite (which takes the store's single
    writer lock; a plain ``SELECT`` there would take no lock at all and leave a gap before the first
    write).

    Only the epoch is compared, not the expiry: a lease that expired while nobody took it still
    passes. That is safe because nobody wrote under another epoch meanwhile, and no one can start
    to: a successor's acquisition updates this row, so it waits for this transaction's lock and then
    adds one to the epoch; every write under the new epoch is therefore ordered after ours, and our
    later fenced transactions fail. Whether the holder may still *act* as holder (start polling) is
    its local clock's business (:class:`connector.runtime.roles.RoleKeeper`), not this check's.

    Raises:
        connector.core.errors.LeaseLost: the lease's row holds another epoch (taken over) or is
            gone; the caller's ``with`` block then rolls its transaction back.
    """
    token = token.fence if isinstance(token, Lease) else token
    if conn.dialect.name == "postgresql":
        row = conn.execute(
            select(leases).where(leases.c.name == token.name).with_for_update(read=True)
        ).one_or_none()
        if row is not None and row.epoch == token.epoch:
            return
    else:
        kept = conn.execute(
            leases.update()
            .where(leases.c.name == token.name, leases.c.epoch == token.epoch)
            .values(epoch=leases.c.epoch)
        )
        if kept.rowcount == 1:
            return
        row = conn.execute(select(leases).where(leases.c.name == token.name)).one_or_none()
    taker = (
        "nobody (its row is gone)" if row is None else f"{_lease(row).holder.describe()} (epoch {row.epoch})"
    )
    raise LeaseLost(
        f"the {token.name} lease (epoch {token.epoch}) was taken over by {taker}; this write is rolled back"
    )


class Leases:
    """Acquire, renew and release leases; ``clock`` replaces the database's clock (tests)."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime] | None = None) -> None:
        self._engine = engine
        self._clock = clock

    def get(self, name: str = DAEMON) -> Lease | None:
        """The lease's row (live, expired or released), or ``None`` if it was never taken."""
        with self._engine.connect() as conn:
            row = conn.execute(select(leases).where(leases.c.name == name)).one_or_none()
        return None if row is None else _lease(row)

    def all(self) -> list[Lease]:
        """Every lease's row (live, expired or released), by name: what ``state show`` lists."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(leases).order_by(leases.c.name)).all()
        return [_lease(row) for row in rows]

    def held_by(self, host: str, pid: int) -> list[Lease]:
        """The leases live now (by the lease clock) whose holder is process ``pid`` on ``host``, by name."""
        with self._engine.connect() as conn:
            now = self._now(conn)
            rows = conn.execute(
                select(leases)
                .where(leases.c.host == host, leases.c.pid == pid, leases.c.expires_at > now)
                .order_by(leases.c.name)
            ).all()
        return [_lease(row) for row in rows]

    def now(self) -> datetime:
        """The time leases are measured by (the database server's clock on PostgreSQL)."""
        with self._engine.connect() as conn:
            return self._now(conn)

    def acquire(
        self,
        holder: Holder,
        ttl: timedelta,
        *,
        name: str = DAEMON,
        vacated: Callable[[Lease], bool] = lambda _lease: False,
        label: str = "",
        advice: str = "stop it first",
    ) -> Lease:
        """Take ``name`` for ``holder`` until now + ``ttl``, under a new epoch.

        A live lease is taken over only if ``vacated(lease)`` says its holder is gone (a process
        on this machine that no longer runs).

        Raises:
            connector.core.errors.StoreInUse: another holder's lease is live (the message names it,
                says when it expires and ends with ``advice``; ``label`` names the store).
        """
        taken = self._take(holder, ttl, name, vacated)
        if isinstance(taken, Lease):
            return taken
        if taken is None:
            raise StoreInUse(
                f"state store {label}: the {name} lease changes hands too fast to take; {advice}"
            )
        raise StoreInUse(_in_use(taken[0], label, advice))

    def try_acquire(
        self,
        holder: Holder,
        ttl: timedelta,
        *,
        name: str,
        vacated: Callable[[Lease], bool] = lambda _lease: False,
    ) -> Lease | None:
        """Take ``name`` for ``holder`` until now + ``ttl`` if it is free, under a new epoch; else ``None``.

        Free: never taken, expired, released, or live but ``vacated(lease)``. Of several processes
        trying at once exactly one wins. An acquisition waits for transactions fenced on the old
        epoch (:func:`fence`) to end first (PostgreSQL's row lock; SQLite's single writer).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store could not be reached or written.
        """
        taken = self._take(holder, ttl, name, vacated)
        return taken if isinstance(taken, Lease) else None

    def _take(
        self, holder: Holder, ttl: timedelta, name: str, vacated: Callable[[Lease], bool]
    ) -> Lease | tuple[Lease] | None:
        """The lease taken; or ``(live lease,)`` that binds us; or ``None`` after losing five races."""
        for _attempt in range(5):
            with self._engine.begin() as conn:
                now = self._now(conn)
                row = conn.execute(select(leases).where(leases.c.name == name)).one_or_none()
                values = _holder_values(holder) | {
                    "acquired_at": now,
                    "renewed_at": now,
                    "expires_at": now + ttl,
                }
                if row is None:
                    insert = upsert_insert(self._engine, leases).values(name=name, epoch=1, **values)
                    # RETURNING, not rowcount: psycopg reports -1 for an INSERT here.
                    if conn.execute(insert.on_conflict_do_nothing().returning(leases.c.epoch)).first():
                        return _lease_of(name, 1, holder, values)
                    continue
                current = _lease(row)
                if current.live(now) and not vacated(current):
                    return (current,)
                epoch = current.epoch + 1
                taken = conn.execute(
                    leases.update()
                    .where(leases.c.name == name, leases.c.epoch == current.epoch)
                    .values(epoch=epoch, **values)
                )
                if taken.rowcount == 1:
                    return _lease_of(name, epoch, holder, values)
        return None

    def renew(self, lease: Lease, ttl: timedelta, *, label: str = "") -> Lease:
        """Extend ``lease`` to now + ``ttl`` if its epoch is still the current one.

        An expired lease nobody took is renewed too: its epoch proves nobody wrote under another.

        Raises:
            connector.core.errors.LeaseLost: another holder acquired the lease since (fencing).
        """
        with self._engine.begin() as conn:
            now = self._now(conn)
            renewed = conn.execute(
                leases.update()
                .where(leases.c.name == lease.name, leases.c.epoch == lease.epoch)
                .values(renewed_at=now, expires_at=now + ttl)
            )
            if renewed.rowcount == 1:
                return Lease(lease.name, lease.epoch, lease.holder, lease.acquired_at, now, now + ttl)
            row = conn.execute(select(leases).where(leases.c.name == lease.name)).one_or_none()
        taker = "nobody (its row is gone)" if row is None else _lease(row).holder.describe()
        raise LeaseLost(
            f"state store {label}: the {lease.name} lease (epoch {lease.epoch}) was taken over by {taker}; "
            "this process stops writing"
        )

    def release(self, lease: Lease) -> bool:
        """End ``lease`` now (another process may take it at once); ``False`` if it was already lost."""
        with self._engine.begin() as conn:
            now = self._now(conn)
            released = conn.execute(
                leases.update()
                .where(leases.c.name == lease.name, leases.c.epoch == lease.epoch)
                .values(expires_at=now)
            )
        return released.rowcount == 1

    def _now(self, conn: Connection) -> datetime:
        if self._clock is not None:
            return self._clock()
        if conn.dialect.name == "postgresql":
            return _utc(conn.execute(select(func.clock_timestamp())).scalar_one())
        return utcnow()


def _in_use(lease: Lease, label: str, advice: str) -> str:
    return (
        f"state store {label} is in use by {lease.holder.describe()}: its lease runs until "
        f"{lease.expires_at:%Y-%m-%d %H:%M:%S}Z and is renewed while it runs; {advice}"
    )


def _holder_values(holder: Holder) -> dict[str, Any]:
    return {
        "command": holder.command,
        "host": holder.host,
        "pid": holder.pid,
        "process_started_at": holder.started_at,
        "process_key": holder.process_key,
    }


def _lease_of(name: str, epoch: int, holder: Holder, values: dict[str, Any]) -> Lease:
    return Lease(name, epoch, holder, values["acquired_at"], values["renewed_at"], values["expires_at"])


def _lease(row: Row[Any]) -> Lease:
    holder = Holder(row.command, row.host, row.pid, _utc(row.process_started_at), row.process_key)
    return Lease(
        row.name, row.epoch, holder, _utc(row.acquired_at), _utc(row.renewed_at), _utc(row.expires_at)
    )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
