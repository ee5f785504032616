"""The store lease a writing process holds: one daemon (or ``sync --once``) per store at a time.

Until the runtime lets several instances share a store (queue claims, fenced writes), a second
writer on one store is refused: it would observe the same changes and make the same writes twice
(two daemons on one SQLite store wrote 46 duplicate Jira comments and 9 duplicate work notes).

* :func:`hold_store` opens the store and takes its ``daemon`` lease, or raises
  :class:`~connector.core.errors.StoreInUse` naming the holder and when its lease runs out;
* :class:`LeaseKeeper` renews the lease from a thread (a long cycle does not let it lapse), tells
  the process when another holder took it over (the renewal checks the fencing epoch), and
  releases it on a clean stop so that a successor starts at once;
* a holder that was SIGKILLed leaves a lease that expires after ``store.lease.ttl``; when the dead
  holder ran on this machine (same host, boot and PID namespace, and its process is gone) the
  lease is taken over at once, so a supervisor's restart is not refused.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from connector.config import LoadedConfig
from connector.core.errors import LeaseLost, StoreInUse
from connector.runtime.assembly import open_store
from connector.store import Store
from connector.store.leases import ROLE_PREFIX, Holder, Lease
from connector.store.opening import failure

log = logging.getLogger(__name__)

_PROC = Path("/proc")


def uptime() -> float:
    """Seconds on a clock that keeps counting while the host is suspended (Linux's monotonic does not).

    A host that slept for longer than the TTL must not believe it still holds its lease.
    """
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    return time.monotonic()


def this_process(command: str) -> Holder:
    """Who we are, as a lease records it."""
    machine = _machine()
    ticks = _start_ticks(os.getpid())
    key = f"{machine[0]}|{machine[1]}|{ticks[1]}" if machine and ticks else ""
    return Holder(command, socket.gethostname(), os.getpid(), datetime.now(UTC), key)


def vacated(lease: Lease) -> bool:
    """Whether ``lease``'s holder was a process on this machine that no longer runs.

    Only a process we can see is judged: same host name, same boot, same PID namespace; its PID
    gone, a zombie, or reused by a process started at another time. Anything else (another host or
    container, no ``/proc``) is left to the lease's expiry.
    """
    holder = lease.holder
    machine = _machine()
    if holder.host != socket.gethostname() or not holder.process_key or machine is None:
        return False
    boot, namespace, ticks = holder.process_key.split("|")
    if (boot, namespace) != machine:
        return False
    running = _start_ticks(holder.pid)
    return running is None or running[1] != ticks or running[0] in ("Z", "X")


def _machine() -> tuple[str, str] | None:
    """This machine's boot id and our PID namespace (``None`` without ``/proc``)."""
    try:
        boot = (_PROC / "sys/kernel/random/boot_id").read_text().strip()
        namespace = str((_PROC / "self/ns/pid").readlink())
    except OSError:
        return None
    return boot, namespace


def _start_ticks(pid: int) -> tuple[str, str] | None:
    """The state and start time (clock ticks since boot) of process ``pid``, ``None`` if there is none."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": the name may hold spaces
    return (fields[0], fields[19]) if len(fields) > 19 else None


class LeaseKeeper:
    """Holds ``store``'s daemon lease for this process.

    ``acquire`` takes it; ``start`` renews it every ``renew_every`` from a thread; ``holding``
    says whether it is certainly still ours (renewed less than ``ttl`` ago by this process's
    clock); ``release`` ends it. When a renewal finds another epoch, the lease was taken over:
    ``lost`` is set and ``on_lost`` called (the daemon stops with that error).
    """

    def __init__(
        self,
        store: Store,
        command: str,
        ttl: timedelta,
        renew_every: timedelta,
        *,
        clock: Callable[[], float] = uptime,
    ) -> None:
        self.store = store
        self.command = command
        self.ttl = ttl
        self.renew_every = renew_every
        self.lost: LeaseLost | None = None
        self._clock = clock
        self._lease: Lease | None = None
        self._valid_until = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lease(self) -> Lease | None:
        """The lease as last acquired or renewed (``None`` before :meth:`acquire`)."""
        return self._lease

    def acquire(self, advice: str) -> Lease:
        """Take the lease, or raise :class:`~connector.core.errors.StoreInUse` ending with ``advice``.

        Raises:
            connector.core.errors.StoreInUse: another live process holds it.
            connector.core.errors.StoreError: the store refuses the write (read-only, damaged...).
        """
        started = self._clock()
        self._lease = self.store.leases.acquire(
            this_process(self.command), self.ttl, vacated=vacated, label=self.store.label, advice=advice
        )
        self._valid_until = started + self.ttl.total_seconds()
        return self._lease

    def start(self, on_lost: Callable[[LeaseLost], None]) -> None:
        """Renew from a daemon thread until :meth:`release`.

        Said in the log here, not on :meth:`acquire`: a start that fails in between (a credential
        not set) ends in its own one line.
        """
        if self._lease is not None:
            log.info(
                "holding the state store's lease (epoch %d, renewed every %ss)",
                self._lease.epoch,
                self.renew_every.total_seconds(),
            )
        self._thread = threading.Thread(
            target=self._renew_loop, args=(on_lost,), name="store-lease", daemon=True
        )
        self._thread.start()

    def holding(self) -> bool:
        """Whether the lease is certainly ours now: not lost, and renewed within ``ttl``."""
        return self.lost is None and self._lease is not None and self._clock() < self._valid_until

    def renew(self) -> None:
        """Renew now (the thread does this every ``renew_every``).

        Raises:
            connector.core.errors.LeaseLost: another holder took the lease over.
            sqlalchemy.exc.SQLAlchemyError: the store could not be reached; the lease is unchanged.
        """
        if self._lease is None or self.lost is not None:
            return
        started = self._clock()
        try:
            self._lease = self.store.leases.renew(self._lease, self.ttl, label=self.store.label)
        except LeaseLost as exc:
            self.lost = exc
            raise
        self._valid_until = started + self.ttl.total_seconds()

    def release(self) -> None:
        """Stop renewing and end the lease now, so that a successor may start at once."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew_every.total_seconds() + 35)
        if self._lease is None or self.lost is not None:
            return
        try:
            self.store.leases.release(self._lease)
        except SQLAlchemyError as exc:  # it expires on its own
            log.warning("could not release the state store's lease (it expires in %s): %s", self.ttl, exc)
        self._lease = None

    def _renew_loop(self, on_lost: Callable[[LeaseLost], None]) -> None:
        while not self._stopping.wait(self.renew_every.total_seconds()):
            try:
                self.renew()
            except LeaseLost as exc:
                log.error("%s", exc)
                on_lost(exc)
                return
            except SQLAlchemyError as exc:
                left = self._valid_until - self._clock()
                log.warning(
                    "could not renew the state store's lease (%s); %s",
                    type(exc).__name__,
                    f"it holds {left:.0f}s more"
                    if left > 0
                    else "it lapsed: no cycle runs until it is renewed",
                )


def hold_store(loaded: LoadedConfig, command: str, advice: str) -> tuple[Store, LeaseKeeper]:
    """Open ``loaded``'s store and take its lease for ``command``; the caller starts and releases the keeper.

    Raises:
        connector.core.errors.CredentialError: a ``${VAR}`` in the store's URL is unset.
        connector.core.errors.StoreInUse: another process holds the lease (the store is closed again).
        connector.core.errors.StoreError: the store cannot be opened or written (a file this call
            created is removed again).
    """
    settings = loaded.connector.store
    store = open_store(loaded)
    keeper = LeaseKeeper(store, command, settings.lease.ttl, settings.lease.renew_every)
    try:
        keeper.acquire(advice)
    except StoreInUse:
        store.close()  # never discard: the holder may have opened the file this call created
        raise
    except SQLAlchemyError as exc:
        store.discard()
        raise failure(exc, store.label) from exc
    except BaseException:
        store.discard()
        raise
    if store.dialect == "sqlite":
        # The store's only process now: claims left in it are a killed predecessor's.
        store.queue.forget_claims()
    elif command != "run":
        # Daemons on PostgreSQL hold roles, not this lease: a writing command beside them is refused.
        now = store.leases.now()
        running = [
            lease for lease in store.leases.all() if lease.name.startswith(ROLE_PREFIX) and lease.live(now)
        ]
        if running:
            keeper.release()
            store.close()
            raise StoreInUse(
                f"state store {store.label} is in use by {running[0].holder.describe()} (it holds "
                f"{running[0].name} until {running[0].expires_at:%Y-%m-%d %H:%M:%S}Z); {advice}"
            )
    return store, keeper
