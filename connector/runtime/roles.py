"""Singleton roles: which instance polls ServiceNow, each supplier's Jira, and runs the reconciler.

Instances sharing a store contend for each role's lease (:mod:`connector.store.leases`):
:class:`RoleKeeper` takes the free ones and renews the ones it holds from one thread, so that when
an instance stops (cleanly: it releases at once; killed or cut off: its leases expire after
``ttl``) another takes its roles over within ``ttl`` + ``renew_every``.

Holding is judged by this process's clock, not the store's: :meth:`RoleKeeper.held` answers a lease
only while it was renewed less than ``ttl`` ago (measured from before the renewal was sent, on a
clock that counts while the host sleeps), so a paused process stops acting as holder by itself.
A pause can still fall between that check and a write; the write's transaction therefore checks the
lease's epoch with :func:`connector.store.leases.fence`, which refuses it once another holds the role.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from connector.core.errors import LeaseLost
from connector.runtime.lease import uptime, vacated
from connector.store.leases import Holder, Lease, Leases
from connector.telemetry.metrics import ROLE_HELD

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoleChange:
    """This process started or stopped holding ``role`` (what :meth:`RoleKeeper.held` answers changed)."""

    role: str
    held: bool
    lease: Lease
    """The lease taken or renewed (``held``), else the one last held."""
    reason: str
    """``taken``, ``renewed after a lapse``, ``taken over by …``, ``lapsed``, ``released`` or
    ``no longer configured``."""


@dataclass
class _Holding:
    lease: Lease
    valid_until: float
    """On the keeper's clock: when this process stops counting the lease as its own unless renewed."""
    lapsed: bool = field(default=False)
    """Reported as lost (not renewed in time) while its row may still carry our epoch."""


class RoleKeeper:
    """Takes and keeps this process's share of the singleton ``roles`` on ``leases``.

    :meth:`acquire_now` renews every role held (compare-and-set on its epoch) and tries to take
    every free one; :meth:`start` does that every ``renew_every`` from a daemon thread until
    :meth:`stop` or :meth:`release_all`. A renewal that meets another epoch drops the role (logged
    once at WARNING; not fatal, the daemon carries on with its other roles). A store error leaves a
    role held until its local validity (``ttl`` from the last successful renewal's start) runs out;
    a later renewal that still finds our epoch takes it back. ``on_change`` hears every change of
    :meth:`held`'s answer that a tick notices, from the thread that made the tick; the gauge
    ``mim_role_held{role}`` follows the same changes. ``on_change`` runs inside the tick: it may call
    :meth:`held` and :meth:`holding`, not the methods that tick, reload or release.

    A role still held by a process of this machine that no longer runs (a supervisor's restart after
    a SIGKILL) is taken at once, as the daemon lease is (:func:`connector.runtime.lease.vacated`).

    Methods are safe to call from any thread; ``held`` and ``holding`` never wait for the store.
    """

    def __init__(
        self,
        leases: Leases,
        holder: Holder,
        roles: Sequence[str],
        ttl: timedelta,
        renew_every: timedelta,
        *,
        clock: Callable[[], float] = uptime,
        on_change: Callable[[RoleChange], None] = lambda _change: None,
    ) -> None:
        self.leases = leases
        self.holder = holder
        self.ttl = ttl
        self.renew_every = renew_every
        self._clock = clock
        self._on_change = on_change
        self._roles: tuple[str, ...] = ()
        self._held: dict[str, _Holding] = {}
        self._state = threading.Lock()  # guards _held for readers; held briefly, never across I/O
        self._io = threading.Lock()  # one tick, reload or release at a time
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.set_roles(roles)

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles this process contends for, in the order given."""
        return self._roles

    def held(self, role: str) -> Lease | None:
        """``role``'s lease while it is certainly ours (renewed within ``ttl`` by our clock, not lost), else ``None``."""
        with self._state:
            holding = self._held.get(role)
        if holding is None or self._clock() >= holding.valid_until:
            return None
        return holding.lease

    def holding(self) -> dict[str, Lease]:
        """Every role :meth:`held` answers a lease for now, with that lease."""
        now = self._clock()
        with self._state:
            return {role: held.lease for role, held in self._held.items() if now < held.valid_until}

    def acquire_now(self) -> None:
        """Renew the roles held and try to take the free ones, now (the thread does it every ``renew_every``).

        Called by the daemon at start, so that an instance alone gets every role at once. Store
        errors are logged, never raised.
        """
        with self._io:
            failures = [error for role in self._roles if (error := self._tick(role)) is not None]
            if failures and not self._failing:
                log.warning(
                    "could not renew or take %d role(s) (%s); held roles count until their lease time runs out",
                    len(failures),
                    type(failures[0]).__name__,
                )
            elif not failures and self._failing:
                log.info("the roles' leases are renewed and taken again")
            self._failing = bool(failures)

    def set_roles(self, roles: Sequence[str]) -> None:
        """Contend for ``roles`` from now on (a reload that adds or removes suppliers).

        Roles dropped are released at once; roles added are tried at the next tick (call
        :meth:`acquire_now` to try them at once).
        """
        wanted = tuple(dict.fromkeys(roles))
        with self._io:
            for role in self._roles:
                if role not in wanted:
                    self._release(role, "no longer configured")
                    ROLE_HELD.remove(role)
            for role in wanted:
                if role not in self._roles:
                    ROLE_HELD.labels(role=role).set(0)
            self._roles = wanted

    def start(self) -> None:
        """Tick every ``renew_every`` from a daemon thread until :meth:`stop` or :meth:`release_all`."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="role-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; the roles held stay held in the store until their leases expire."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.renew_every.total_seconds() + 35)
            self._thread = None

    def release_all(self) -> None:
        """Stop the thread and end every role's lease now, so that another instance takes them at once."""
        self.stop()
        with self._io:
            for role in list(self._held):
                self._release(role, "released")

    def _loop(self) -> None:
        while not self._stopping.wait(self.renew_every.total_seconds()):
            try:
                self.acquire_now()
            except Exception:  # the thread must outlive a bug in an on_change callback
                log.exception("the role keeper's tick failed")

    def _tick(self, role: str) -> SQLAlchemyError | None:
        """Renew or try to take ``role``; the store's error, if it failed."""
        with self._state:
            holding = self._held.get(role)
        started = self._clock()
        if holding is None:
            try:
                lease = self.leases.try_acquire(self.holder, self.ttl, name=role, vacated=vacated)
            except SQLAlchemyError as exc:
                return exc
            if lease is not None:
                self._keep(role, _Holding(lease, started + self.ttl.total_seconds()))
                log.info("holding role %s (epoch %d)", role, lease.epoch)
                self._changed(RoleChange(role, True, lease, "taken"))
            return None
        try:
            lease = self.leases.renew(holding.lease, self.ttl)
        except LeaseLost:
            self._drop(role)
            taker = self._taker(role)
            log.warning("role %s taken over by %s; this instance no longer acts on it", role, taker)
            if not holding.lapsed:
                self._changed(RoleChange(role, False, holding.lease, f"taken over by {taker}"))
            return None
        except SQLAlchemyError as exc:
            if not holding.lapsed and started >= holding.valid_until:
                holding.lapsed = True
                log.warning("role %s lapsed: its lease could not be renewed within %s", role, self.ttl)
                self._changed(RoleChange(role, False, holding.lease, "lapsed"))
            return exc
        self._keep(role, _Holding(lease, started + self.ttl.total_seconds()))
        if holding.lapsed:
            log.info("holding role %s again (epoch %d: nobody took it meanwhile)", role, lease.epoch)
            self._changed(RoleChange(role, True, lease, "renewed after a lapse"))
        return None

    def _release(self, role: str, reason: str) -> None:
        holding = self._drop(role)
        if holding is None:
            return
        try:
            self.leases.release(holding.lease)
        except SQLAlchemyError as exc:  # it expires on its own
            log.warning("could not release role %s (its lease expires within %s): %s", role, self.ttl, exc)
        if not holding.lapsed:
            self._changed(RoleChange(role, False, holding.lease, reason))

    def _taker(self, role: str) -> str:
        try:
            current = self.leases.get(role)
        except SQLAlchemyError:
            return "another instance"
        return (
            "nobody (its row is gone)"
            if current is None
            else f"{current.holder.describe()} (epoch {current.epoch})"
        )

    def _keep(self, role: str, holding: _Holding) -> None:
        with self._state:
            self._held[role] = holding

    def _drop(self, role: str) -> _Holding | None:
        with self._state:
            return self._held.pop(role, None)

    def _changed(self, change: RoleChange) -> None:
        ROLE_HELD.labels(role=change.role).set(1 if change.held else 0)
        self._on_change(change)
