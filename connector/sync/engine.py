"""One sync cycle: observe both sides, decide per incident x supplier, act, then advance the watermarks.

Observe (:mod:`connector.sync.observe`): new incident versions, new journal entries, and issues
updated at each supplier name entities (incident x supplier) to look at, together with due dead
letters and, on a sweep, every open link. Decide and act (:mod:`connector.sync.entity`): the pure
planner, from fresh reads of both sides, then the executor. Incidents are worked on in parallel
(``polling.workers``), each incident's suppliers in turn.

A failing entity goes to the dead-letter queue and later work for it is held there; every other
entity carries on. Watermarks and processed versions are stored only once the cycle's entities
are done (or queued), so a crash re-reads rather than loses.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import Connection

from connector.config import LoadedConfig
from connector.config.supplier_file import SupplierMapping
from connector.core.errors import ClaimLost
from connector.core.links import entity_key
from connector.core.models import Incident, servicenow_identity
from connector.core.ports import JiraPort, ServiceNowPort
from connector.core.priority import background
from connector.core.secrets import interpolate
from connector.core.templates import placeholders
from connector.core.vocabulary import FINAL_STATES
from connector.rules.book import RuleBook
from connector.store import Store
from connector.store.db import utcnow
from connector.store.dlq import QUEUED
from connector.store.queue import BULK, DEAD, LANES, NEW, RECONCILE, Claim, Enqueue
from connector.sync.cycle import Cycle, CycleReport, Progress, Scope, SupplierRuntime, Work
from connector.sync.entity import EntitySync
from connector.sync.executor import Executor
from connector.sync.failures import Failures, publish_dead_letters
from connector.sync.fields import incident_fields
from connector.sync.observe import INCIDENTS, JOURNAL, Observer
from connector.sync.promotion import RULES, Promoter
from connector.sync.reconcile import closed_since, retirement
from connector.sync.supplier import Supplier
from connector.sync.worker import drain, report_lock
from connector.sync.writes import Writes, fenced
from connector.telemetry import metrics

log = logging.getLogger(__name__)

REASON_POLL = "servicenow"
"""The reason of work a new incident version named."""
BULK_AFTER = 50
"""Entities one observation may name and still count as fresh changes (more: a burst or a backfill)."""
SWEEP_PAGE = 500
"""Incidents whose open links a sweep loads and re-checks at a time (memory stays bounded)."""
ISSUE_FIELDS = (
    "summary",
    "description",
    "status",
    "priority",
    "labels",
    "components",
    "updated",
    "resolution",
    "assignee",
)
CLOCK_MARGIN = timedelta(seconds=2)
"""How far the clocks of two instances may disagree when one's poll and another's write are compared."""


class Engine:
    """The sync core for one configuration, one store and one adapter per system."""

    def __init__(
        self,
        loaded: LoadedConfig,
        store: Store,
        snow: ServiceNowPort,
        sites: Mapping[str, JiraPort],
        *,
        clock: Callable[[], datetime] = utcnow,
        dry_run: bool = False,
        sweep_page: int = SWEEP_PAGE,
        instance_id: str = "",
    ) -> None:
        self.loaded = loaded
        self.instance_id = instance_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        """Who this engine's workers claim as (one per process)."""
        self.sweep_page = sweep_page
        """Incidents the sweep re-reads per store query (a parameter so tests can page small sets)."""
        self.store = store
        self.snow = snow
        self.clock = clock
        self.dry_run = dry_run
        self.fields = incident_fields(loaded)
        polling = loaded.connector.polling
        self.instance_name = loaded.connector.instance_name
        self.servicenow = servicenow_identity(interpolate(loaded.connector.servicenow.instance_url))
        """This ServiceNow instance as our new issue stamps name it."""
        self.servicenow_names = frozenset(
            {self.servicenow}
            | {servicenow_identity(interpolate(url)) for url in loaded.connector.servicenow.former_urls}
        )
        """Every name our stamps may give this instance (its URL now and before)."""
        self.promoter = Promoter(
            RuleBook(loaded.rules), store, snow, self.fields, writes=Writes(store), dry_run=dry_run
        )
        self.failures = Failures(store, {name: m.display_name for name, m in loaded.suppliers.items()}, clock)
        self._last_sweep: datetime | None = None
        self.workers = polling.workers
        self.claim_ttl = loaded.connector.store.lease.ttl
        """How long a worker's claim on an incident holds without being extended."""
        self.suppliers: dict[str, SupplierRuntime] = {}
        for name, site_config in loaded.connector.suppliers.items():
            mapping = loaded.suppliers.get(name)
            if not site_config.enabled or mapping is None or name not in sites:
                continue
            site = sites[name]
            supplier = Supplier(name, site, site_config.jira.url, mapping.jira.project, polling.search_lag)
            executor = Executor(
                store, snow, supplier, self.instance_name, self.servicenow, known_as=self.servicenow_names
            )
            self.suppliers[name] = SupplierRuntime(name, executor, site, "", issue_fields(mapping))
        scope = Scope(loaded, store, snow, self.suppliers, self.fields, self.servicenow_names, dry_run)
        self.observer = Observer(scope, self.promoter)
        self.entities = EntitySync(scope, self.failures)
        self.poll_failures = self.observer.poll_failures
        """Per source (``jira:acme``), polls failed in a row and the last error; absent once one works."""

    # --- observation: only enqueues ----------------------------------------------------------------

    def observe(self, *, servicenow: bool = True, sites: Iterable[str] | None = None) -> Cycle:
        """Read what changed (ServiceNow when ``servicenow``, the named supplier sites, default all).

        Runs the promotion rules on new incident versions. Nothing is processed and no watermark
        moves: :meth:`enqueue` does that, in one transaction.
        """
        cycle = Cycle(self.clock())
        if servicenow:
            self.observer.observe_servicenow(cycle)
        for name in self.suppliers if sites is None else sites:
            if name in self.suppliers:
                self.observer.observe_site(cycle, self.suppliers[name])
        return cycle

    def enqueue(self, cycle: Cycle, *, fence: Callable[[Connection], None] | None = None) -> int:
        """Make ``cycle``'s observations durable work and store its progress, in one transaction.

        ``fence`` runs first in that transaction (the poller role's fencing check: it raises
        :class:`~connector.core.errors.LeaseLost` when another instance took the role, and then
        nothing is written). Returns how many entities were enqueued.
        """
        items = queued(cycle)
        if items:
            blocked = self.store.dlq.blocked()
            cycle.report.held += sum(1 for item in items if item.entity in blocked)
        with self.store.transaction() as conn:
            if fence is not None:
                fence(conn)
            count = self.store.queue.enqueue(items, cycle.now, conn=conn)
            for step in cycle.commit:
                step(conn)
        return count

    # --- the cycle (sync --once, tests): observe, enqueue, drain --------------------------------

    def cycle(
        self,
        *,
        servicenow: bool = True,
        sites: Iterable[str] | None = None,
        sweep: bool | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> CycleReport:
        """Observe, enqueue, and process every item due; ``sites`` limits the supplier sites searched.

        ``sweep`` forces (True) or skips (False) the re-check of every open link (default: when due);
        ``on_progress(done, total)`` is told after each entity (for progress bars on long backfills).
        A dry run processes what it observed in memory and changes nothing.
        """
        with metrics.CYCLE_SECONDS.time():
            cycle = self.observe(servicenow=servicenow, sites=sites)
            sweeping = bool(sweep or (sweep is None and self._sweep_due(cycle.now)))
            if sweeping:
                self._last_sweep = cycle.now
                for item in cycle.work.values():
                    item.full_journal = True
            if self.dry_run:
                self._dry_run(cycle, sweeping, on_progress)
            else:
                self.enqueue(cycle)
                if sweeping:
                    cycle.report.held += self._enqueue_sweep(cycle.now)
                drain(self, cycle.report, on_progress)
        self.publish_metrics()
        return cycle.report

    def _enqueue_sweep(self, now: datetime) -> int:
        """Every open link, as reconciliation work, ``sweep_page`` incidents per transaction.

        Returns how many of them are held behind a dead letter (not processed now).
        """
        blocked = self.store.dlq.blocked()
        held = 0
        after = ""
        while page := self.store.links.active_page(after, self.sweep_page):
            after = page[-1].incident_sys_id
            items = [
                Enqueue(link.incident_sys_id, link.supplier, "sweep", lane=RECONCILE, full_journal=True)
                for link in page
                if link.supplier in self.suppliers
            ]
            held += sum(1 for item in items if item.entity in blocked)
            self.store.queue.enqueue(items, now)
        return held

    # --- workers ----------------------------------------------------------------------------------

    def work(self, instance_id: str, report: CycleReport, *, lanes: Sequence[int] = ()) -> bool:
        """Claim one incident's due items and process them; ``False`` when nothing was claimable.

        ``lanes``: the lanes to try, in that order (see :mod:`connector.sync.worker`). A claim with
        no item in the new lane is background work (:func:`~connector.core.priority.background`):
        its requests yield the budgets to the polls and to fresh changes.
        Each entity is synced as the cycle always did; a failing one becomes a dead letter, the
        others complete. Every intent is recorded under the claim (:func:`connector.sync.writes.fenced`):
        a worker that stalled past its claim while another took the incident stops before its next
        write and leaves the items to the new holder.
        """
        now = self.clock()
        claim = self.store.queue.claim(instance_id, now, self.claim_ttl, lanes=lanes)
        if claim is None:
            return False
        cycle = Cycle(now)
        nobody_waits = all(item.lane != NEW for item in claim.items)
        try:
            with fenced(lambda conn: self.store.queue.check(conn, claim)), background(nobody_waits):
                self._work_claimed(cycle, claim)
        except ClaimLost as exc:
            log.warning("%s", exc)
        except BaseException:
            self.store.queue.release(claim)
            raise
        finally:
            with report_lock:
                report.absorb(cycle.report)
        return True

    def _work_claimed(self, cycle: Cycle, claim: Claim) -> None:
        """Process a claim's items, remember what the incident became, complete the claim."""
        batch = self._claimed(cycle, claim)
        cycle.progress = Progress(None, len(batch))
        self._rounds(cycle, batch)
        self._retire_or_revive(cycle, claim)
        self.observer.remember(cycle.latest.values())
        for supplier, versions in cycle.seen.items():
            for version in versions:
                self.store.links.note_seen(claim.incident_sys_id, supplier, version)
        done = [item for item in claim.items if item.entity not in cycle.report.failed]
        left = cycle.latest.get(claim.incident_sys_id)
        self.store.queue.complete(claim, done, processed_mod_count=left.mod_count if left else None)

    def _retire_or_revive(self, cycle: Cycle, claim: Claim) -> None:
        """Retire the incident's links closed longer than ``reconcile.retire_after``; revive reopened ones.

        Retired after this last check; a reopened incident (seen by the poll) brings them back.
        """
        incident = cycle.latest.get(claim.incident_sys_id)
        if incident is None:
            return
        state = incident.get("state")
        if state not in FINAL_STATES:
            if any(REASON_POLL in item.reasons for item in claim.items):
                self.store.links.unretire(incident.sys_id)
            return
        after = self.loaded.connector.reconcile.retire_after
        if retirement(state, closed_since(incident.fields), cycle.now, after):
            checked = {item.supplier for item in claim.items}
            for link in self.store.links.for_incident(incident.sys_id):
                if link.supplier in checked:
                    self.store.links.retire(link.link_id, cycle.now)

    def _claimed(self, cycle: Cycle, claim: Claim) -> dict[str, Work]:
        """The claim's items as the entity passes take them; its incident as polled, when the store holds it.

        The polled version is planned from only while no write of ours may have landed after the
        poll read it: none is open (sent, outcome unknown: a crash, a lost answer) or settled since
        the read began (a worker that wrote while the poll was under way, or died before completing
        its claim), and no letter is retried. A plan from a version older than our own write would
        undo it, or a person's later change; then the incident is read afresh.
        """
        batch: dict[str, Work] = {}
        for item in claim.items:
            batch[item.entity] = Work(
                item.incident_sys_id,
                item.supplier,
                full_journal=item.full_journal or item.state == DEAD,
                journal=list(item.journal),
                stamped=list(item.stamped),
                reason=",".join(item.reasons),
            )
            if item.state == DEAD:
                cycle.due.add(item.entity)
                if item.manual:
                    cycle.asked.add(item.entity)
        polled = max(claim.items, key=lambda item: item.polled or -1)
        if (
            polled.polled is not None
            and polled.polled_at is not None
            and all(item.state != DEAD for item in claim.items)
            and not self.store.intents.written_since(
                [entity_key(claim.incident_sys_id, scope) for scope in (*self.suppliers, RULES)],
                polled.polled_at - CLOCK_MARGIN,
            )
        ):
            record = self.store.incidents.get(claim.incident_sys_id)
            if record is not None and record.mod_count == polled.polled:
                cycle.snapshots[claim.incident_sys_id] = Incident(
                    record.sys_id, record.number, record.mod_count, record.sys_updated_on, record.snapshot
                )
        # The incident's other letters, not due: work for them (a sibling's follow-up) is held.
        cycle.blocked = {
            letter.entity
            for letter in self.store.dlq.of_incident(claim.incident_sys_id)
            if letter.state == QUEUED
        }
        return batch

    def publish_metrics(self) -> None:
        """Dead letters per supplier, each source's watermark lag and the queue's depth, as the store has them now."""
        publish_dead_letters(self.store, self.suppliers)
        now = self.clock()
        for source in (INCIDENTS, JOURNAL, *(f"jira:{name}" for name in self.suppliers)):
            mark = self.store.watermarks.get(source)
            if mark is not None:
                lag = (now - mark.position).total_seconds()
                metrics.WATERMARK_LAG.labels(source).set(max(0.0, lag))
        for lane, depth in self.store.queue.depth(now).items():
            metrics.QUEUE_DEPTH.labels(LANES[lane]).set(depth.due + depth.later)
            metrics.QUEUE_OLDEST_DUE.labels(LANES[lane]).set(depth.oldest_due_seconds)
        metrics.LAST_CYCLE.set(now.timestamp())

    # --- dry runs: what was observed, processed in memory -----------------------------------------

    def _dry_run(self, cycle: Cycle, sweeping: bool, on_progress: Callable[[int, int], None] | None) -> None:
        due_letters = self.store.dlq.due(cycle.now)
        cycle.due = {letter.entity for letter in due_letters}
        cycle.asked = {letter.entity for letter in due_letters if letter.manual}
        for entity in cycle.due:
            incident_sys_id, _, supplier = entity.rpartition(":")
            cycle.work.setdefault(entity, Work(incident_sys_id, supplier)).full_journal = True
        cycle.blocked = self.store.dlq.blocked()
        cycle.progress = Progress(on_progress, len(cycle.work))
        done = self._rounds(cycle, cycle.work)
        if sweeping:
            self._sweep(cycle, done)

    def _rounds(self, cycle: Cycle, batch: Mapping[str, Work]) -> set[str]:
        """Process ``batch``, then once more the entities a sibling's write changed; returns all processed."""
        done = set(batch)
        cycle.followups = {}
        for round_ in range(2):
            self._work_on(cycle, batch)
            if not cycle.followups or round_:
                break
            # Entities done before a sibling changed the incident see the change now, not at the
            # next reconciliation (our own writes are not polled back as new versions).
            batch, cycle.followups = cycle.followups, {}
            done |= batch.keys()
            cycle.progress.total += len(batch)
        return done

    def _sweep(self, cycle: Cycle, done: set[str]) -> None:
        """A dry run's re-check of every open link not processed yet, ``sweep_page`` incidents at a time."""
        after = ""
        while page := self.store.links.active_page(after, self.sweep_page):
            after = page[-1].incident_sys_id
            batch = {
                link.entity: Work(link.incident_sys_id, link.supplier, full_journal=True)
                for link in page
                if link.supplier in self.suppliers and link.entity not in done
            }
            cycle.progress.total += len(batch)
            done |= self._rounds(cycle, batch)
            for sys_id in {link.incident_sys_id for link in page}:
                cycle.latest.pop(sys_id, None)
                cycle.journals.pop(sys_id, None)

    def _work_on(self, cycle: Cycle, batch: Mapping[str, Work]) -> None:
        """Process ``batch``: incidents in parallel (``polling.workers``), each incident's suppliers in turn."""
        by_incident: dict[str, list[tuple[str, Work]]] = {}
        for entity, item in batch.items():
            by_incident.setdefault(item.incident_sys_id, []).append((entity, item))

        def one_incident(items: list[tuple[str, Work]]) -> None:
            for entity, item in items:
                if entity in cycle.blocked and entity not in cycle.due:
                    if not self.dry_run:
                        self.store.dlq.hold(entity)
                    with cycle.lock:
                        cycle.report.held += 1
                else:
                    latest = cycle.latest.get(item.incident_sys_id)
                    snapshot = latest or cycle.snapshots.get(item.incident_sys_id)
                    self.entities.process(cycle, item, snapshot, asked=entity in cycle.asked)
                cycle.progress.step(cycle.lock)

        groups = list(by_incident.values())
        if self.workers == 1 or len(groups) < 2:
            for items in groups:
                one_incident(items)
            return
        with ThreadPoolExecutor(
            max_workers=min(self.workers, len(groups)), thread_name_prefix="entity"
        ) as pool:
            for _ in pool.map(one_incident, groups):
                pass

    def _sweep_due(self, now: datetime) -> bool:
        interval = self.loaded.connector.polling.sweep_interval
        return self._last_sweep is None or now - self._last_sweep >= interval


def queued(cycle: Cycle) -> list[Enqueue]:
    """What ``cycle`` observed, as queue items, each in its lane.

    A person's change goes to the new lane, unless one observation found more than
    :data:`BULK_AFTER` of them (a backfill, a burst): then they all go to the bulk lane. Work named
    only by versions our own writes made (sys_updated_by, a hint) goes to the bulk lane: the
    writes of a backfill must not count as fresh changes, nor make one look like a burst.
    """
    fresh = sum(1 for work in cycle.work.values() if not work.ours)
    burst = fresh > BULK_AFTER
    return [
        Enqueue(
            work.incident_sys_id,
            work.supplier,
            work.reason or "observed",
            lane=BULK if burst or work.ours else NEW,
            polled=cycle.snapshots[work.incident_sys_id].mod_count
            if work.incident_sys_id in cycle.snapshots
            else None,
            polled_at=cycle.polled_at if work.incident_sys_id in cycle.snapshots else None,
            full_journal=work.full_journal,
            journal=tuple(work.journal),
            stamped=tuple(work.stamped),
        )
        for work in cycle.work.values()
    ]


def issue_fields(mapping: SupplierMapping) -> tuple[str, ...]:
    """The Jira fields to read for a supplier: the ones we write, compare or copy back."""
    out = mapping.outbound
    names = [*ISSUE_FIELDS, *out.fields, *(shared.jira for shared in mapping.shared)]
    names += [f for f in (out.mim.field, out.mim.bridge_field, out.mim.next_update_field) if f]
    names += [
        n
        for template in mapping.inbound.fields.values()
        for n in placeholders(template)
        if n.startswith("customfield_")
    ]
    if mapping.problem.root_cause_field:
        names.append(mapping.problem.root_cause_field)
    if mapping.problem.root_cause_link:
        names.append("issuelinks")
    return tuple(dict.fromkeys(names))
