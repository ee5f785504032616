"""One daemon's part of the work on a store: the roles it holds, its workers, its heartbeat.

Several daemons may share a PostgreSQL store (a SQLite store takes one: its lease refuses a
second). Each is an *instance*:

* **roles** - the ServiceNow poller, each supplier's poller and the reconciler are singletons,
  each held by one instance at a time through a lease with a fencing epoch
  (:class:`~connector.runtime.roles.RoleKeeper`). An instance observes only the sources whose role
  it holds, and every watermark it stores is written in the transaction that enqueues the work
  it found, after :func:`~connector.store.leases.fence` checked the role is still its own; a
  holder that was paused past its lease and lost the role writes nothing;
* **workers** - ``polling.workers`` threads claim incidents from the shared queue
  (:class:`~connector.sync.worker.Workers`): every instance works, whatever roles it holds;
* **heartbeat** - every ``store.lease.renew_every`` the instance tells the store it lives
  (:class:`~connector.runtime.membership.Membership`: shares of the rate budgets, 429 closures),
  extends the claims its workers hold, and publishes the queue's metrics. While other instances
  share the store, each request first looks at the store's 429 closures (a read), so a 429 one
  instance receives silences the others at once.

An instance that dies (SIGKILL, a lost host) stops renewing: its roles and claims expire after
``store.lease.ttl`` and the others take them over; work it had claimed is processed again (the
write protocol makes every write idempotent).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from connector.core.errors import ConnectorError, LeaseLost
from connector.runtime.assembly import Runtime
from connector.runtime.lease import this_process
from connector.runtime.membership import Membership
from connector.runtime.roles import RoleChange, RoleKeeper
from connector.store.db import utcnow
from connector.store.leases import RECONCILER_ROLE, SERVICENOW_ROLE, Lease, fence, supplier_role
from connector.sync.cycle import CycleReport
from connector.sync.reconcile import Reconciler
from connector.sync.worker import Workers, report_lock

log = logging.getLogger(__name__)


def roles_of(runtime: Runtime) -> list[str]:
    """The singleton roles a runtime's configuration has: ServiceNow, each enabled supplier, the reconciler."""
    return [SERVICENOW_ROLE, *(supplier_role(name) for name in runtime.engine.suppliers), RECONCILER_ROLE]


class Instance:
    """One runtime working on its store beside any other instance: observe (roles held), work, beat.

    ``allowed()`` says whether this process may write at all (on SQLite: its store lease is
    certainly held); while it says no, nothing is observed or claimed.
    """

    def __init__(
        self, runtime: Runtime, instance_id: str, *, allowed: Callable[[], bool] = lambda: True
    ) -> None:
        self.runtime = runtime
        self.instance_id = instance_id
        self.allowed = allowed
        runtime.engine.instance_id = instance_id
        settings = runtime.loaded.connector.store.lease
        self.ttl: timedelta = settings.ttl
        self.renew_every: timedelta = settings.renew_every
        self.report = CycleReport()
        self.roles = RoleKeeper(
            runtime.store.leases,
            this_process("run"),
            roles_of(runtime),
            self.ttl,
            self.renew_every,
            on_change=self._role_changed,
        )
        transports = [runtime.snow.transport, *(site.transport for site in runtime.sites.values())]
        self.membership = Membership(
            runtime.store, instance_id, runtime.loaded.connector.polling.workers, transports, self.ttl
        )
        self.workers = Workers(
            runtime.engine, runtime.loaded.connector.polling.workers, self.report, allowed=allowed
        )
        self.reconciler = Reconciler(runtime.store, runtime.loaded, list(runtime.engine.suppliers))
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # --- life -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Join the store's instances, take the free roles, start the workers and the heartbeat."""
        self.membership.join()
        self.roles.acquire_now()
        self.roles.start()
        self.workers.start()
        self._beat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        self._beat.start()

    def stop(self) -> None:
        """Finish the claims in hand, hand the roles and claims over at once, leave the store."""
        self._stop.set()
        self.workers.stop()
        if self._beat is not None:
            self._beat.join(timeout=self.renew_every.total_seconds() + 5)
        self.roles.release_all()
        try:
            self.runtime.store.queue.release_all(self.instance_id)
        except SQLAlchemyError as exc:  # they expire on their own
            log.warning("could not release this instance's claims (they expire in %s): %s", self.ttl, exc)
        self.membership.leave()

    def reload(self, runtime: Runtime) -> None:
        """Work with ``runtime`` (a reloaded configuration) from now on, keeping roles and membership.

        The workers finish their claims in hand and start again on the new engine; roles of
        suppliers no longer configured are released, new ones taken.
        """
        self.workers.stop()
        self.runtime = runtime
        runtime.engine.instance_id = self.instance_id
        polling = runtime.loaded.connector.polling
        self.membership.transports = [runtime.snow.transport, *(s.transport for s in runtime.sites.values())]
        self.membership.workers = polling.workers
        self.roles.set_roles(roles_of(runtime))
        self.roles.acquire_now()
        self.reconciler = Reconciler(runtime.store, runtime.loaded, list(runtime.engine.suppliers))
        self.workers = Workers(runtime.engine, polling.workers, self.report, allowed=self.allowed)
        self.workers.start()
        self.membership.beat()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.renew_every.total_seconds()):
            try:
                self.membership.beat()
                self.runtime.store.queue.extend(self.instance_id, utcnow() + self.ttl)
                self.runtime.engine.publish_metrics()
            except SQLAlchemyError as exc:
                log.warning("heartbeat: the store did not answer (%s); claims expire in %s", exc, self.ttl)
            except Exception:  # the heartbeat outlives a bug
                log.exception("heartbeat failed")

    def _role_changed(self, change: RoleChange) -> None:
        if change.held:
            log.info("holding the %s role (epoch %d)", change.role, change.lease.epoch)
        elif change.reason.startswith("taken over"):
            log.warning("the %s role was %s", change.role, change.reason)
        else:
            log.info("no longer holding the %s role: %s", change.role, change.reason)

    # --- observation ----------------------------------------------------------------------------

    def observe(self, servicenow: bool, sites: list[str]) -> CycleReport:
        """Observe the due sources whose role this instance holds, and enqueue what they found.

        Each source is enqueued in its own transaction, fenced by its role. Returns what the
        observations saw; a lost role is logged and skipped.
        """
        report = CycleReport()
        sources: list[tuple[str, bool, list[str]]] = []
        if servicenow:
            sources.append((SERVICENOW_ROLE, True, []))
        sources += [(supplier_role(name), False, [name]) for name in sites]
        engine = self.runtime.engine
        for role, from_servicenow, names in sources:
            lease = self.roles.held(role)
            if lease is None:
                continue
            cycle = engine.observe(servicenow=from_servicenow, sites=names)
            try:
                if engine.enqueue(cycle, fence=_fenced(lease)):
                    self.workers.wake()
            except LeaseLost as exc:
                log.warning("%s", exc)
            report.absorb(cycle.report)
        return report

    def reconcile(self, now: datetime | None = None) -> int:
        """Hand the queue the next links to re-check, if this instance holds the reconciler role."""
        lease = self.roles.held(RECONCILER_ROLE)
        if lease is None:
            return 0
        now = now or utcnow()
        store = self.runtime.store
        try:
            with store.transaction() as conn:
                fence(conn, lease)
                items = self.reconciler.tick(now, conn=conn)
                store.queue.enqueue(items, now, conn=conn)
        except (LeaseLost, ConnectorError) as exc:
            log.warning("reconciler: %s", exc)
            return 0
        if items:
            self.workers.wake()
        return len(items)

    def done(self) -> CycleReport:
        """What the workers did since the last call (a fresh report gathers from now on)."""
        with report_lock:
            done, self.report = self.report, CycleReport()
            self.workers.report = self.report
        return done

    def holds(self) -> dict[str, Lease]:
        """The roles this instance holds now."""
        return self.roles.holding()


def _fenced(lease: Lease) -> Callable[..., None]:
    return lambda conn: fence(conn, lease)
