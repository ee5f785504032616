"""One sync cycle: observe both sides, decide per incident x supplier, act, then advance the watermarks.

Observe: new incident versions (keyset since the watermark, minus the overlap, de-duplicated by
``sys_mod_count``), new journal entries, and issues updated at each supplier. Each observation
names entities (incident x supplier) to look at, together with due dead letters and, on a sweep,
every open link. Decide: the pure planner, from fresh reads of both sides. Act: the executor.

A failing entity goes to the dead-letter queue and later work for it is held there; every other
entity carries on. Watermarks and processed versions are stored only once the cycle's entities
are done (or queued), so a crash re-reads rather than loses.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from connector.config import LoadedConfig
from connector.config.supplier_file import SupplierMapping
from connector.core.errors import (
    CircuitOpen,
    ConcurrentChange,
    ConnectorError,
    CredentialsRefused,
)
from connector.core.links import Link, entity_key
from connector.core.models import Incident, JournalEntry, SupplierIssue, servicenow_identity
from connector.core.plan import (
    ChangePreview,
    CreateProblem,
    NoteOnIncident,
    Plan,
    Preview,
    UpdateIncident,
    UpdateProblem,
)
from connector.core.ports import JiraPort, ServiceNowPort
from connector.core.secrets import interpolate
from connector.core.templates import placeholders
from connector.core.times import servicenow_precision
from connector.http.breaker import explicit_retry
from connector.mirror.planner import plan
from connector.mirror.recognition import Landed, already_landed, candidate_keys, rebuilt_shadow
from connector.mirror.routing import implicates, route, triggered
from connector.mirror.view import EntityView, ours_in_servicenow
from connector.rules.book import RuleBook, eligibility
from connector.rules.conditions import SimpleContext
from connector.store import Store
from connector.store.db import utcnow
from connector.store.links import CREATED
from connector.store.progress import Watermark
from connector.sync.executor import Executor, Supplier
from connector.sync.failures import Failures
from connector.sync.fields import incident_fields
from connector.sync.promotion import Promoter
from connector.sync.writes import Writes
from connector.telemetry import metrics

log = logging.getLogger(__name__)

INCIDENTS, JOURNAL = "servicenow:incident", "servicenow:journal"
MAX_PASSES = 4
SWEEP_PAGE = 500
"""Incidents whose open links a sweep loads and re-checks at a time (memory stays bounded)."""
POLLS_FAILED = 3
"""Polls of a source failing in a row after which it counts as not being read (``/readyz``)."""
SERVICENOW_ONLY = (UpdateIncident, NoteOnIncident, CreateProblem, UpdateProblem)
"""Writes that leave the supplier issue as it was."""
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


@dataclass
class Work:
    """Why an entity is looked at this cycle."""

    incident_sys_id: str
    supplier: str
    full_journal: bool = False
    journal: list[JournalEntry] = field(default_factory=list)
    stamped: list[str] = field(default_factory=list)
    """Keys of issues a search showed stamped for this entity while the store links none of them."""


@dataclass
class CycleReport:
    """What one cycle saw and did."""

    new_versions: int = 0
    journal_entries: int = 0
    issues_seen: int = 0
    entities: int = 0
    writes: int = 0
    held: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    plans: dict[str, Preview] = field(default_factory=dict)
    """Dry runs: ``INC… @ supplier`` -> the plan as a reviewer reads it."""
    decisions: dict[str, str] = field(default_factory=dict)
    """What the promotion rules decided, by incident number."""


@dataclass
class _SupplierRuntime:
    name: str
    executor: Executor
    site: JiraPort
    account_id: str
    issue_fields: tuple[str, ...]


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
    ) -> None:
        self.loaded = loaded
        self.sweep_page = sweep_page
        """Incidents the sweep re-reads per store query (a parameter so tests can page small sets)."""
        self.store = store
        self.snow = snow
        self.clock = clock
        self.dry_run = dry_run
        self.fields = incident_fields(loaded)
        polling = loaded.connector.polling
        self.overlap = polling.overlap
        self.page_size = polling.page_size
        self.instance_url = loaded.connector.servicenow.instance_url
        self.instance_name = loaded.connector.instance_name
        self.servicenow = servicenow_identity(interpolate(self.instance_url))
        """This ServiceNow instance as our new issue stamps name it."""
        self.servicenow_names = frozenset(
            {self.servicenow}
            | {servicenow_identity(interpolate(url)) for url in loaded.connector.servicenow.former_urls}
        )
        """Every name our stamps may give this instance (its URL now and before)."""
        self.states = loaded.connector.servicenow.incident_states
        self.promoter = Promoter(
            RuleBook(loaded.rules), store, snow, self.fields, writes=Writes(store), dry_run=dry_run
        )
        self.failures = Failures(store, {name: m.display_name for name, m in loaded.suppliers.items()}, clock)
        self._last_sweep: datetime | None = None
        self.workers = polling.workers
        self.poll_failures: dict[str, tuple[int, str]] = {}
        """Per source (``jira:acme``), polls failed in a row and the last error; absent once one works."""
        self.suppliers: dict[str, _SupplierRuntime] = {}
        for name, site_config in loaded.connector.suppliers.items():
            mapping = loaded.suppliers.get(name)
            if not site_config.enabled or mapping is None or name not in sites:
                continue
            site = sites[name]
            supplier = Supplier(name, site, site_config.jira.url, mapping.jira.project, polling.search_lag)
            executor = Executor(
                store, snow, supplier, self.instance_name, self.servicenow, known_as=self.servicenow_names
            )
            self.suppliers[name] = _SupplierRuntime(name, executor, site, "", issue_fields(mapping))

    # --- the cycle ---------------------------------------------------------------------------------

    def cycle(
        self,
        *,
        servicenow: bool = True,
        sites: Iterable[str] | None = None,
        sweep: bool | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> CycleReport:
        """Run one cycle; ``sites`` limits which supplier sites are searched (default: all).

        ``sweep`` forces (True) or skips (False) the re-check of every open link (default: when due);
        ``on_progress(done, total)`` is told after each entity (for progress bars on long backfills).
        """
        cycle = _Cycle(self.clock())
        now = cycle.now
        with metrics.CYCLE_SECONDS.time():
            if servicenow:
                self._observe_servicenow(cycle)
            for name in self.suppliers if sites is None else sites:
                if name in self.suppliers:
                    self._observe_site(cycle, self.suppliers[name])
            due_letters = self.store.dlq.due(now)
            cycle.due = {letter.entity for letter in due_letters}
            cycle.asked = {letter.entity for letter in due_letters if letter.manual}
            for entity in cycle.due:
                incident_sys_id, _, supplier = entity.rpartition(":")
                cycle.work.setdefault(entity, Work(incident_sys_id, supplier)).full_journal = True
            sweeping = bool(sweep or (sweep is None and self._sweep_due(now)))
            if sweeping:
                self._last_sweep = now
                for item in cycle.work.values():
                    item.full_journal = True
            cycle.blocked = self.store.dlq.blocked()
            cycle.progress = _Progress(on_progress, len(cycle.work))
            done = self._rounds(cycle, cycle.work)
            if sweeping:
                self._sweep(cycle, done, remember=servicenow)
            if not self.dry_run:
                for step in cycle.commit:
                    step()
        self._publish_metrics()
        return cycle.report

    def _publish_metrics(self) -> None:
        """Dead letters per supplier and each source's watermark lag, as the store has them now."""
        blocked = self.store.dlq.blocked()
        for name in self.suppliers:
            metrics.DEAD_LETTERS.labels(name).set(sum(1 for e in blocked if e.endswith(f":{name}")))
        now = self.clock()
        for source in (INCIDENTS, JOURNAL, *(f"jira:{name}" for name in self.suppliers)):
            mark = self.store.watermarks.get(source)
            if mark is not None:
                lag = (now - mark.position).total_seconds()
                metrics.WATERMARK_LAG.labels(source).set(max(0.0, lag))
        metrics.LAST_CYCLE.set(now.timestamp())

    def _rounds(self, cycle: _Cycle, batch: Mapping[str, Work]) -> set[str]:
        """Process ``batch``, then once more the entities a sibling's write changed; returns all processed."""
        done = set(batch)
        cycle.followups = {}
        for round_ in range(2):
            self._work_on(cycle, batch)
            if not cycle.followups or round_:
                break
            # Entities done before a sibling changed the incident see the change now, not at the
            # next sweep (our own writes are not polled back as new versions).
            batch, cycle.followups = cycle.followups, {}
            done |= batch.keys()
            cycle.progress.total += len(batch)
        return done

    def _sweep(self, cycle: _Cycle, done: set[str], *, remember: bool) -> None:
        """Re-check every open link not processed yet this cycle, ``sweep_page`` incidents at a time.

        Memory stays bounded however many links the store holds: a page's links, work, journals and
        incidents are let go once it is done (the incidents as processed versions, as the cycle's
        commit would, when ``remember`` says this cycle polled ServiceNow).
        """
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
            swept = {link.incident_sys_id for link in page}
            finished = [cycle.latest.pop(sys_id) for sys_id in swept if sys_id in cycle.latest]
            if remember and not self.dry_run:
                self._remember(finished)
            for sys_id in swept:
                cycle.journals.pop(sys_id, None)

    def _work_on(self, cycle: _Cycle, batch: Mapping[str, Work]) -> None:
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
                    self._process(cycle, item, snapshot, asked=entity in cycle.asked)
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

    # --- observing -----------------------------------------------------------------------------------

    def _observe_servicenow(self, cycle: _Cycle) -> None:
        now, work, report = cycle.now, cycle.work, cycle.report
        mark = self.store.watermarks.get(INCIDENTS)
        since = _start(mark, now - self.loaded.connector.polling.initial_lookback) - self.overlap
        newest: dict[str, Incident] = {}
        for incident in self.snow.incidents_changed(since, self.fields, self.page_size):
            known = newest.get(incident.sys_id)
            if known is None or incident.mod_count > known.mod_count:
                newest[incident.sys_id] = incident
        poll_start = self.snow.server_time() or now
        fresh = []
        for incident in newest.values():
            record = self.store.incidents.get(incident.sys_id)
            if record is None or incident.mod_count > record.mod_count:
                fresh.append(incident)
        report.new_versions = len(fresh)
        self.promoter.track(fresh, now)
        promotion = self.promoter.run(fresh, now)
        report.decisions.update(promotion.decided)
        report.failed.update({f"{number} @ rules": error for number, error in promotion.failed.items()})
        for incident in fresh:
            cycle.snapshots[incident.sys_id] = incident
            if incident.get("parent_incident"):
                self._implicate(incident, now, work)
            linked = {link.supplier for link in self.store.links.for_incident(incident.sys_id)}
            child = incident.sys_id in promotion.children
            for name, runtime in self.suppliers.items():
                if name in linked or (not child and self._routed(name, incident, now)):
                    work.setdefault(
                        entity_key(incident.sys_id, runtime.name), Work(incident.sys_id, runtime.name)
                    )
        journal_mark = self.store.watermarks.get(JOURNAL)
        journal_since = (
            _start(journal_mark, now - self.loaded.connector.polling.initial_lookback) - self.overlap
        )
        seen_before = set(journal_mark.boundary) if journal_mark else set()
        entries = [
            e for e in self.snow.journal_since(journal_since, self.page_size) if e.sys_id not in seen_before
        ]
        journal_start = self.snow.server_time() or now
        for entry in entries:
            if ours_in_servicenow(entry, self.snow.integration_user):
                continue  # our own note: nothing to mirror
            report.journal_entries += 1
            for link in self.store.links.for_incident(entry.incident_sys_id):
                if link.supplier in self.suppliers:
                    work.setdefault(link.entity, Work(entry.incident_sys_id, link.supplier)).journal.append(
                        entry
                    )

        def store_progress() -> None:
            self._remember([*fresh, *cycle.latest.values()])
            self.store.watermarks.set(INCIDENTS, Watermark(servicenow_precision(poll_start)))
            window = servicenow_precision(journal_start - self.overlap)
            recent = sorted(
                {e.sys_id for e in entries if e.sys_created_on >= window} | {s for s in seen_before}
            )
            self.store.watermarks.set(
                JOURNAL, Watermark(servicenow_precision(journal_start), tuple(recent[-5000:]))
            )

        cycle.commit.append(store_progress)

    def _remember(self, incidents: Iterable[Incident]) -> None:
        """Record these incident versions as processed (our own writes included)."""
        for incident in incidents:
            self.store.incidents.remember(
                incident.sys_id,
                incident.number,
                incident.mod_count,
                incident.sys_updated_on,
                incident.fields,
                opened_at=incident.get("opened_at"),
                candidate=eligibility(incident, material_changed=True).eligible,
            )

    def _observe_site(self, cycle: _Cycle, runtime: _SupplierRuntime) -> None:
        now, work, report = cycle.now, cycle.work, cycle.report
        source = f"jira:{runtime.name}"
        mark = self.store.watermarks.get(source)
        since = _start(mark, now - self.loaded.connector.polling.initial_lookback) - self.overlap
        seen_before = set(mark.boundary) if mark else set()
        mapping = self.loaded.suppliers[runtime.name]
        try:
            refs = list(runtime.site.issues_updated_since(mapping.jira.project, since, self.page_size))
        except ConnectorError as exc:
            failed, _ = self.poll_failures.get(source, (0, ""))
            self.poll_failures[source] = (failed + 1, f"{type(exc).__name__}: {exc}")
            # A refusal without a request was logged once by the transport for the whole episode.
            level = logging.DEBUG if isinstance(exc, CircuitOpen | CredentialsRefused) else logging.WARNING
            log.log(level, "cannot search %s: %s", runtime.name, exc, extra={"supplier": runtime.name})
            return
        self.poll_failures.pop(source, None)
        poll_start = runtime.site.server_time() or now
        versions = []
        for ref in refs:
            version = _version(ref.issue_id, ref.updated)
            versions.append((version, ref.updated))
            if version in seen_before:
                continue
            report.issues_seen += 1
            link = self.store.links.by_issue(runtime.name, ref.issue_id)
            if link is not None:
                work.setdefault(link.entity, Work(link.incident_sys_id, runtime.name))
            elif (stamped := ref.identity) is not None and stamped.of_instance(
                self.servicenow_names, self.instance_name
            ):
                # Ours, but unknown to the store (emptied, restored, or a crash before the
                # link-back): the incident is looked at, and the issue read and adopted if its
                # stamp still says so (search alone proves nothing).
                entity = entity_key(stamped.incident_sys_id, runtime.name)
                work.setdefault(entity, Work(stamped.incident_sys_id, runtime.name)).stamped.append(ref.key)

        def store_progress() -> None:
            window = poll_start - self.overlap - timedelta(minutes=1)
            recent = {v for v, updated in versions if updated is None or updated >= window}
            recent |= cycle.seen.get(runtime.name, set())
            self.store.watermarks.set(source, Watermark(poll_start, tuple(sorted(recent))))

        cycle.commit.append(store_progress)

    # --- deciding and acting -------------------------------------------------------------------------

    def _process(self, cycle: _Cycle, item: Work, snapshot: Incident | None, *, asked: bool = False) -> None:
        """Sync one entity; a failure sends it to the dead-letter queue. ``asked``: an operator's retry."""
        runtime = self.suppliers.get(item.supplier)
        if runtime is None:
            return
        entity = entity_key(item.incident_sys_id, item.supplier)
        with cycle.lock:
            cycle.report.entities += 1
        incident = snapshot
        try:
            with explicit_retry() if asked else contextlib.nullcontext():
                incident = incident or self.snow.incident(item.incident_sys_id, self.fields)
                if incident is None:
                    return
                self._sync(cycle, runtime, incident, item)
            self.failures.succeeded(runtime.executor, incident)
        except Exception as exc:
            if not isinstance(exc, ConnectorError):
                log.exception("unexpected failure on %s", entity, extra={"supplier": item.supplier})
            with cycle.lock:
                cycle.report.failed[entity] = f"{type(exc).__name__}: {exc}"
            if not self.dry_run:
                self.failures.failed(runtime.executor, item.incident_sys_id, incident, exc, asked=asked)

    def _sync(self, cycle: _Cycle, runtime: _SupplierRuntime, incident: Incident, item: Work) -> None:
        now = cycle.now
        # The other suppliers' links of this incident: its entities are worked on one after the
        # other by this thread, so they do not change while this one is synced.
        links = self.store.links.for_incident(incident.sys_id)
        link = next((known for known in links if known.supplier == runtime.name), None)
        siblings = [known for known in links if known.supplier != runtime.name]
        adopted: SupplierIssue | None = None
        rebuild = False
        if link is None or link.state == "creating":
            pending = link.stamp if link is not None else None
            link, adopted = self._recognise(cycle, runtime, incident, link, item.stamped)
            if adopted is not None and self.dry_run:
                return
            # An issue carrying the stamp of the create this store has pending is that create,
            # whose answer was lost: nothing was synced to it yet, so the incident as it is now
            # is news to it (as when a lost create is found by search). Any other adopted issue
            # was mirrored by a store that is gone: its shadow is rebuilt from the issue.
            rebuild = adopted is not None and (adopted.identity is None or adopted.identity.stamp != pending)
        if not self.dry_run:
            link = runtime.executor.reconcile(incident, link, now)
        journal: list[JournalEntry] = list(item.journal)
        need_full = item.full_journal or link is None or link.state != "linked" or adopted is not None
        routed = self._routed(runtime.name, incident, now)
        before = incident
        start = _Start(link, adopted, siblings, journal, need_full, routed, rebuild)
        last, incident = self._passes(cycle, runtime, incident, start)
        cycle.latest[incident.sys_id] = incident
        if _fields_changed(before, incident):
            for sibling in siblings:
                if sibling.supplier in self.suppliers:
                    cycle.followups.setdefault(sibling.entity, Work(incident.sys_id, sibling.supplier))
        if last is not None:
            # The issue as we last read it, our own writes included: the next search need not
            # bring it back to us (its `updated` is already known).
            cycle.seen.setdefault(runtime.name, set()).add(_version(last.issue_id, last.updated))

    def _passes(
        self, cycle: _Cycle, runtime: _SupplierRuntime, incident: Incident, start: _Start
    ) -> tuple[SupplierIssue | None, Incident]:
        """Read the issue, plan, apply; again while the last plan wrote something (at most MAX_PASSES).

        Returns the issue as last read (``None`` unless that read came after every write) and the
        incident as our writes left it. A pass that wrote to ServiceNow only leaves the issue as it
        was read, so the next pass plans from that read instead of reading it again (a change the
        supplier made meanwhile comes with the next search, as any other).

        An issue stamped for another incident or instance is not ours: its link is forgotten and
        the entity recognised or created afresh. Before a plan is applied, what it would append
        that is already there (the store did not know it) is recorded instead, and the plan made
        again; the Jira-side shadow of an adopted link, or of one found stale that way, is rebuilt
        (:func:`connector.mirror.recognition.rebuilt_shadow`).
        """
        mapping = self.loaded.suppliers[runtime.name]
        link, siblings, journal, need_full = start.link, start.siblings, start.journal, start.need_full
        issue = start.adopted
        rebuild = start.rebuild
        full = False  # `journal` is the incident's whole journal
        stale = issue is None  # `issue` may not show our latest writes to it: read it (again)
        for _pass in range(MAX_PASSES):
            if link is None or link.state != "linked" or not link.jira_key:
                issue = None
            else:
                if stale or issue is None:
                    issue = runtime.site.issue(link.jira_key, runtime.issue_fields, comments=True)
                    stale = False
                if issue is None:
                    self.store.links.set_state(link.link_id, "unlinked")
                    log.error(
                        "%s is gone or hidden; unlinked", link.jira_key, extra={"supplier": runtime.name}
                    )
                    return None, incident
                if not self._ours(issue, incident):
                    if self.dry_run:
                        reason = "it is stamped for another incident or ServiceNow instance"
                        self._planned(cycle, incident, runtime, f"release the link to {issue.key}", reason)
                        return None, incident
                    runtime.executor.release(incident, link, issue)
                    link, issue = self._recognise(cycle, runtime, incident, None)
                    rebuild = issue is not None
                    need_full = True
                if need_full and issue is not None:
                    journal = self._full_journal(cycle, incident.sys_id)
                    need_full = False
                    full = True
            shadow = self.store.shadows.sides(link.link_id) if link else {}
            mirrored = self.store.comments.settled_both(link.link_id) if link else {}
            view = EntityView(
                incident=incident,
                supplier=runtime.name,
                mapping=mapping,
                states=self.states,
                routed=start.routed,
                link=link,
                issue=issue,
                journal=journal,
                jira_shadow=shadow.get("jira", {}),
                snow_shadow=shadow.get("servicenow", {}),
                mirrored_out=mirrored.get("out", frozenset()),
                mirrored_in=mirrored.get("in", frozenset()),
                created_in_jira=mirrored.get(CREATED, frozenset()),
                account_id=self._account(runtime),
                integration_user=self.snow.integration_user,
                incident_url=f"{self.instance_url}/nav_to.do?uri=incident.do?sys_id={incident.sys_id}",
                instance_url=self.instance_url,
                sibling_keys=(
                    *(other.jira_key for other in (*siblings, *([link] if link else [])) if other.jira_key),
                    *self._listed_keys(runtime.name, incident, siblings),
                ),
            )
            decided = plan(view)
            if link is not None and issue is not None:
                landed = already_landed(decided.changes, issue, journal if full else None)
                if landed or rebuild:
                    view, decided = self._recover(runtime, view, link, landed)
                    rebuild = False
            for alert in decided.alerts:
                metrics.TEXT_WITHHELD.labels(runtime.name).inc()
                log.warning("%s", alert, extra={"incident": incident.number, "supplier": runtime.name})
            if self.dry_run:
                with cycle.lock:
                    cycle.report.plans[f"{incident.number} @ {runtime.name}"] = decided.preview(
                        incident, issue
                    )
                return None, incident
            if decided.changes:
                try:
                    link, incident = runtime.executor.apply(decided, incident, link)
                except ConcurrentChange as exc:
                    if _pass == MAX_PASSES - 1:
                        raise
                    log.info("%s; reading again", exc, extra={"supplier": runtime.name})
                    link = self.store.links.get(incident.sys_id, runtime.name)
                    incident = self.snow.incident(incident.sys_id, self.fields) or incident
                    stale = True
                    continue
                with cycle.lock:
                    cycle.report.writes += len(decided.writes)
                stale = any(not isinstance(change, SERVICENOW_ONLY) for change in decided.writes)
            if not decided.writes:
                return issue, incident
        return None, incident

    def _recognise(
        self,
        cycle: _Cycle,
        runtime: _SupplierRuntime,
        incident: Incident,
        link: Link | None,
        stamped: Sequence[str] = (),
    ) -> tuple[Link | None, SupplierIssue | None]:
        """Before a first create: an issue the incident lists, stamped for it, is adopted instead.

        ``correlation_display`` (read with the incident) names every supplier issue of the
        incident, and the supplier's search may have shown issues ``stamped`` for it; each such
        key costs one direct read, and only an issue whose stamp names this incident of this
        instance is adopted (a key or a search hit alone proves nothing). Returns the link
        (adopted, else as given) and the adopted issue as read (else ``None``).
        """
        project = self.loaded.suppliers[runtime.name].jira.project
        listed = candidate_keys(incident.get("correlation_display"), project)
        for key in dict.fromkeys([*listed, *stamped]):
            issue = runtime.site.issue(key, runtime.issue_fields, comments=True)
            identity = issue.identity if issue is not None else None
            if issue is None or identity is None:
                continue
            if not identity.belongs_to(incident.sys_id, self.servicenow_names, self.instance_name):
                continue
            if self.dry_run:
                reason = f"it already exists for {incident.number}: adopted, not created"
                self._planned(cycle, incident, runtime, f"adopt {issue.key}", reason)
                return link, issue
            return runtime.executor.adopt(incident, issue), issue
        return link, None

    def _planned(
        self, cycle: _Cycle, incident: Incident, runtime: _SupplierRuntime, action: str, reason: str
    ) -> None:
        """A dry run's record of one change to what the store knows (adopt, release), shown like a plan's."""
        with cycle.lock:
            cycle.report.plans[f"{incident.number} @ {runtime.name}"] = Preview(
                (ChangePreview("~", action, reason),)
            )

    def _listed_keys(self, supplier: str, incident: Incident, siblings: Sequence[Link]) -> list[str]:
        """Keys the incident lists for the other suppliers the store has no issue of (yet).

        Kept in ``correlation_display`` when this entity writes it: with an empty or restored
        store, they are how those suppliers' issues will be recognised. A supplier whose link
        the store knows (linked, or unlinked because its issue is gone) is listed from the store.
        """
        known = {link.supplier for link in siblings if link.state != "creating"}
        return [
            key
            for name, other in self.loaded.suppliers.items()
            if name != supplier and name not in known
            for key in candidate_keys(incident.get("correlation_display"), other.jira.project)
        ]

    def _ours(self, issue: SupplierIssue, incident: Incident) -> bool:
        """False only when the issue's stamp names another incident or another ServiceNow instance.

        An issue without our property (created before stamps, or the property deleted) is
        given the benefit of the doubt: the store's link stands.
        """
        identity = issue.identity
        return identity is None or identity.belongs_to(
            incident.sys_id, self.servicenow_names, self.instance_name
        )

    def _recover(
        self, runtime: _SupplierRuntime, view: EntityView, link: Link, landed: Sequence[Landed]
    ) -> tuple[EntityView, Plan]:
        """Record what already landed and a rebuilt Jira-side shadow; plan again from them.

        Appends found already done mean the store had lost track of this link (restored from an
        older copy): its shadows are as stale as its ledger, so they are rebuilt too.
        """
        shadow = rebuilt_shadow(view)
        if not self.dry_run:
            runtime.executor.recover(link, landed, shadow)
        view = replace(
            view,
            jira_shadow={**view.jira_shadow, **shadow},
            mirrored_out=view.mirrored_out | {f.source_id for f in landed if f.direction == "out"},
            mirrored_in=view.mirrored_in | {f.source_id for f in landed if f.direction == "in"},
        )
        return view, plan(view)

    def _full_journal(self, cycle: _Cycle, incident_sys_id: str) -> list[JournalEntry]:
        """The incident's whole journal, read once per cycle for all its suppliers.

        Entries written since the read are ours (marked, never mirrored) or come with the next
        journal poll, so the siblings of the entity that read it may share it.
        """
        journal = cycle.journals.get(incident_sys_id)
        if journal is None:
            journal = cycle.journals[incident_sys_id] = self.snow.journal_of(incident_sys_id)
        return journal

    def _routed(self, supplier: str, incident: Incident, now: datetime) -> bool:
        """Routing says so, a promotion rule engaged the supplier, or a child implicates it."""
        mapping = self.loaded.suppliers[supplier]
        if route(mapping, incident, SimpleContext(now)).routed:
            return True
        if supplier in self.store.decisions.engaged(incident.sys_id):
            return True
        return (
            not incident.get("parent_incident")
            and triggered(mapping, incident)
            and supplier in self.store.decisions.implicated(incident.sys_id)
        )

    def _implicate(self, child: Incident, now: datetime, work: dict[str, Work]) -> None:
        """A child's suppliers become its major incident's: remembered, and looked at this cycle."""
        parent = child.get("parent_incident")
        context = SimpleContext(now)
        suppliers = [
            name for name in self.suppliers if implicates(self.loaded.suppliers[name], child, context)
        ]
        new = set(suppliers) - self.store.decisions.implicated(parent)
        if not new or self.dry_run:
            return
        self.store.decisions.implicate(parent, child.sys_id, sorted(new))
        for name in sorted(new):
            work.setdefault(entity_key(parent, name), Work(parent, name))

    def _account(self, runtime: _SupplierRuntime) -> str:
        if not runtime.account_id:
            runtime.account_id = runtime.site.myself().account_id
        return runtime.account_id


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


@dataclass(frozen=True)
class _Start:
    """What an entity's passes start from."""

    link: Link | None
    adopted: SupplierIssue | None
    """The issue just adopted, as read (no need to read it again)."""
    siblings: Sequence[Link]
    journal: list[JournalEntry]
    need_full: bool
    """Read the incident's whole journal before planning."""
    routed: bool
    rebuild: bool = False
    """Rebuild the adopted link's Jira-side shadow from the issue (the store never knew it)."""


@dataclass
class _Progress:
    """Counts processed entities for an ``on_progress(done, total)`` callback."""

    callback: Callable[[int, int], None] | None
    total: int
    done: int = 0

    def step(self, lock: threading.Lock) -> None:
        with lock:
            self.done += 1
            if self.callback is not None:
                self.callback(self.done, self.total)


@dataclass
class _Cycle:
    """What one cycle observes, works against and gathers: made per :meth:`Engine.cycle`, let go after it.

    Incidents are worked on in parallel: ``lock`` guards the report and the progress; the other
    gatherings are keyed by incident, and one incident's entities are worked on by one thread.
    """

    now: datetime
    report: CycleReport = field(default_factory=CycleReport)
    work: dict[str, Work] = field(default_factory=dict)
    """Entities to look at, by entity key, as observation named them."""
    snapshots: dict[str, Incident] = field(default_factory=dict)
    """New incident versions as the poll read them."""
    commit: list[Callable[[], None]] = field(default_factory=list)
    """What stores the cycle's progress (watermarks, processed versions), once its entities are done."""
    blocked: set[str] = field(default_factory=set)
    """Entities in the dead-letter queue..."""
    due: set[str] = field(default_factory=set)
    """...of which these are due for a retry now..."""
    asked: set[str] = field(default_factory=set)
    """...of which an operator asked for these (sent past any cool-down)."""
    progress: _Progress = field(default_factory=lambda: _Progress(None, 0))
    seen: dict[str, set[str]] = field(default_factory=dict)
    """Per supplier, issue versions read after our last write to them in this cycle."""
    latest: dict[str, Incident] = field(default_factory=dict)
    """Incidents as this cycle left them (our own writes included when nobody else wrote)."""
    followups: dict[str, Work] = field(default_factory=dict)
    """Entities to look at again this cycle because a sibling's write changed their incident."""
    journals: dict[str, list[JournalEntry]] = field(default_factory=dict)
    """Full journals read this cycle, by incident."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _fields_changed(before: Incident, after: Incident) -> bool:
    """Whether our writes changed incident fields that other suppliers' plans read.

    Journal entries and the list of supplier keys (``correlation_display``) do not count.
    """
    journal = ("work_notes", "comments", "correlation_display")
    return {k: v for k, v in before.fields.items() if k not in journal} != {
        k: v for k, v in after.fields.items() if k not in journal
    }


def _version(issue_id: str, updated: datetime | None) -> str:
    """How a search result and a direct read name the same issue version."""
    return f"{issue_id}@{updated.astimezone(UTC).isoformat(timespec='milliseconds') if updated else ''}"


def _start(mark: Watermark | None, default: datetime) -> datetime:
    return default if mark is None else mark.position
