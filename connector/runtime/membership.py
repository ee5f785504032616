"""Several daemons on one store: each knows the others, and together they keep to one budget per site.

A :class:`Membership` registers this daemon in the store's ``instances`` table, beats at every lease
renewal and leaves when the daemon stops. Each beat:

* counts the live instances (seen within the lease TTL), ``N``, and sets every site's limiter to a
  share ``1/N`` of its configured budget (rate, burst never below one request, hourly cap): N
  instances together send at most one budget;
* closes locally every scope another instance (or a previous run) was throttled on, for the time
  the store says is left, without writing it back;
* sets the ``mim_instances`` gauge.

While others share the store (``N > 1``), requests also look at the store's closures first (a read
of a small table, :attr:`Limiter.listen <connector.http.ratelimit.Limiter.listen>`, at most every
:data:`LOOK_EVERY` seconds for all sites at once): a 429 one instance receives silences them all
within that time, not at their next beat. (Read before every request, the closures cost 8-9 % of
each instance's time in the two-instance benchmark.)

The shares are exact only between changes of ``N``. An instance that joins takes ``1/(N+1)`` at
once while the others still use ``1/N`` until their next beat: for at most one heartbeat period the
instances together may send one (new) instance's share above the budget. An instance that dies
stops sending at once; the others keep ``1/N`` (below the budget) until its row is older than the
TTL. A clean stop leaves, so the others take its share at their next beat. A scheme that never
exceeds the budget (tokens kept in the store, one row update per request) would put a database
write on every HTTP call; a platform that still answers 429 in the transient closes the scope for
everyone through the shared closures, so a bounded overshoot of one heartbeat is the cheaper trade.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from connector.store import Store
from connector.store.instances import Instance
from connector.telemetry import metrics

if TYPE_CHECKING:
    from connector.http.transport import Transport

log = logging.getLogger(__name__)
LOOK_EVERY = 0.1
"""Seconds between two reads of the store's closures by the requests of one instance: well within
the time a request already on its way when a 429 arrives may still reach the server (the fault
gate allows 0.2 s), so another instance keeps a 429 about as well as the one that received it."""
PRUNE_AFTER_TTLS = 10
"""Rows of instances not seen for this many lease TTLs (killed ones) are removed at every join."""


def new_instance_id(host: str | None = None, pid: int | None = None) -> str:
    """``HOST-PID-RANDOM``, at most 64 characters: unique per start, readable in ``state show``."""
    host = (host if host is not None else socket.gethostname())[:40]
    return f"{host}-{pid if pid is not None else os.getpid()}-{secrets.token_hex(4)}"


def honour_closures(closures: Mapping[str, float], transports: Sequence[Transport]) -> None:
    """Close locally each ``system|scope`` of ``closures`` (seconds left) on the transport of that system.

    The closures came from the store: they are not written back (no write loop between instances).
    """
    for transport in transports:
        prefix = f"{transport.system}|"
        for key, seconds in closures.items():
            if key.startswith(prefix):
                transport.limiter.honour(key.removeprefix(prefix), seconds)


class Membership:
    """This daemon among the instances sharing ``store``: join, beat at every lease renewal, leave.

    ``workers`` is this daemon's worker count (shown in ``state show``); ``transports`` are its
    sites' transports, whose budgets are shared out; ``ttl`` is the lease TTL: an instance not
    seen for that long is gone.
    """

    def __init__(
        self,
        store: Store,
        instance_id: str,
        workers: int,
        transports: Sequence[Transport],
        ttl: timedelta,
        *,
        host: str | None = None,
        pid: int | None = None,
    ) -> None:
        self.store = store
        self.instance_id = instance_id
        self.workers = workers
        self.transports = list(transports)
        self.ttl = ttl
        self.host = host if host is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.share = 1.0
        """The share of every site's budget this instance uses now."""
        self._looked = -LOOK_EVERY
        self._look_lock = threading.Lock()

    def join(self) -> list[Instance]:
        """Register this daemon, remove long-dead instances' rows, and take its share.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store cannot be written (the daemon cannot start).
        """
        self.store.instances.prune(self.ttl * PRUNE_AFTER_TTLS)
        self.store.instances.register(self.instance_id, self.host, self.pid, self.workers)
        live = self._share_out(joining=True)
        log.info("instance %s joined the store: %s", self.instance_id, _sharing(round(1 / self.share)))
        return live

    def beat(self) -> list[Instance] | None:
        """Mark this daemon seen, set each site's share to ``1/N``, honour the store's closures.

        Returns the live instances, or ``None`` when the store could not be used (logged; the
        last share and closures stay in force until a beat succeeds).
        """
        try:
            self.store.instances.beat(self.instance_id, host=self.host, pid=self.pid, workers=self.workers)
            live = self._share_out()
            honour_closures(self.store.throttles.open_closures(), self.transports)
        except SQLAlchemyError as exc:
            log.warning("instance %s: could not beat on the store: %s", self.instance_id, exc)
            return None
        return live

    def _look(self) -> None:
        """Honour the store's closures on every site, unless they were read less than :data:`LOOK_EVERY` ago."""
        with self._look_lock:
            now = time.monotonic()
            if now - self._looked < LOOK_EVERY:
                return
            self._looked = now
        try:
            closures = self.store.throttles.open_closures(prune=False)
        except SQLAlchemyError as exc:
            log.debug("instance %s: could not read the store's closures: %s", self.instance_id, exc)
            return
        honour_closures(closures, self.transports)

    def leave(self) -> None:
        """Remove this daemon from the store (the others take its share at their next beat); never raises."""
        try:
            self.store.instances.leave(self.instance_id)
        except SQLAlchemyError as exc:  # it will be counted gone once its row is older than the TTL
            log.warning("instance %s: could not leave the store: %s", self.instance_id, exc)

    def _share_out(self, *, joining: bool = False) -> list[Instance]:
        live = self.store.instances.live(self.ttl)
        count = len(live) + (0 if any(i.instance_id == self.instance_id for i in live) else 1)
        share = 1.0 / count
        if share != self.share and not joining:
            log.info("instance %s: %s", self.instance_id, _sharing(count))
        for transport in self.transports:
            transport.limiter.set_share(share)
            # Sharing the store: before each request, the closures the others received (a read).
            transport.limiter.listen = None if share >= 1.0 else self._look
        self.share = share
        metrics.INSTANCES.set(count)
        return live


def _sharing(count: int) -> str:
    if count == 1:
        return "the only instance on the store, it uses every site's whole budget"
    return f"{count} instances share the store, each uses 1/{count} of every site's budget"
