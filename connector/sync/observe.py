"""Observation: what changed on each side since its watermark, as the entities a cycle looks at.

New incident versions (keyset since the watermark, minus the overlap, de-duplicated by
``sys_mod_count``), new journal entries, and issues updated at each supplier name entities
(incident x supplier) in :attr:`Cycle.work <connector.sync.cycle.Cycle.work>`; promotion rules run on
the new versions. Nothing advances here: each source appends to ``Cycle.commit`` the step that stores
its watermark (and the processed versions), which the engine runs once the cycle's entities are done,
so a crash re-reads rather than loses. A source failing to be searched is counted in ``poll_failures``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection

from connector.config import LoadedConfig
from connector.core.errors import CircuitOpen, ConnectorError, CredentialsRefused
from connector.core.links import entity_key
from connector.core.models import Incident
from connector.core.times import servicenow_precision, servicenow_time_or_none
from connector.mirror.routing import implicates, route, triggered
from connector.mirror.view import ours_in_servicenow
from connector.rules.book import eligibility
from connector.rules.conditions import SimpleContext
from connector.store import Store
from connector.store.db import utcnow
from connector.store.deliveries import PushedVersion, versions_source
from connector.store.progress import IncidentRecord, Watermark
from connector.sync.cycle import Cycle, Scope, SupplierRuntime, Work, issue_version
from connector.sync.promotion import Promoter
from connector.sync.pushwatch import PushWatch

log = logging.getLogger(__name__)

INCIDENTS, JOURNAL = "servicenow:incident", "servicenow:journal"
SERVICENOW = "servicenow"
"""The ServiceNow push's source name (``jira:<supplier>`` for a site's)."""
POLLS_FAILED = 3
"""Polls of a source failing in a row after which it counts as not being read (``/readyz``)."""


class Observer:
    """Reads both sides for one engine: its configuration, store, ServiceNow adapter and suppliers."""

    def __init__(self, scope: Scope, promoter: Promoter) -> None:
        self.scope = scope
        self.promoter = promoter
        polling = scope.loaded.connector.polling
        self.overlap = polling.overlap
        self.page_size = polling.page_size
        self.instance_name = scope.loaded.connector.instance_name
        self.push_watch = PushWatch()
        self.poll_failures: dict[str, tuple[int, str]] = {}
        """Per source (``jira:acme``), polls failed in a row and the last error; absent once one works."""

    def observe_servicenow(self, cycle: Cycle) -> None:
        """Run the promotion rules; name the entities new incident versions and journal entries concern."""
        now, work, report = cycle.now, cycle.work, cycle.report
        mark = self.scope.store.watermarks.get(INCIDENTS)
        since = _start(mark, now - self.scope.loaded.connector.polling.initial_lookback) - self.overlap
        newest: dict[str, Incident] = {}
        cycle.polled_at = utcnow()
        for incident in self.scope.snow.incidents_changed(since, self.scope.fields, self.page_size):
            known = newest.get(incident.sys_id)
            if known is None or incident.mod_count > known.mod_count:
                newest[incident.sys_id] = incident
        poll_start = self.scope.snow.server_time() or now
        pushed = self.scope.store.pushed.waiting() if self._servicenow_pushes() else []
        records = self.scope.store.incidents.get_many({*newest, *(version.sys_id for version in pushed)})
        fleeting, settled = pushed_versions(pushed, newest, records, now)
        if fleeting:
            # Versions this poll did not read (they changed again first): the rules see them first.
            self.promoter.track(fleeting, now)
            early = self.promoter.run(fleeting, now)
            report.decisions.update(early.decided)
            report.failed.update({f"{number} @ rules": error for number, error in early.failed.items()})
        fresh = []
        for incident in newest.values():
            record = records.get(incident.sys_id)
            if record is None or incident.mod_count > record.mod_count:
                fresh.append(incident)
        report.new_versions = len(fresh)
        if self._servicenow_pushes():
            found = {f"{i.sys_id}@{i.mod_count}": i.sys_updated_on for i in fresh}
            self.push_watch.judge(SERVICENOW, found, self._delivered(SERVICENOW), poll_start)
        self.promoter.track(fresh, now)
        promotion = self.promoter.run(fresh, now)
        report.decisions.update(promotion.decided)
        report.failed.update({f"{number} @ rules": error for number, error in promotion.failed.items()})
        linked_by_incident = self.scope.store.links.for_incidents(incident.sys_id for incident in fresh)
        for incident in fresh:
            cycle.snapshots[incident.sys_id] = incident
            # Updated last by our own write (a hint, never a filter): no fresh change of a person.
            ours = incident.get("sys_updated_by") == self.scope.snow.integration_user
            if incident.get("parent_incident"):
                self._implicate(incident, now, work)
            linked = {link.supplier for link in linked_by_incident.get(incident.sys_id, ())}
            child = incident.sys_id in promotion.children
            for name, runtime in self.scope.suppliers.items():
                if name in linked or (
                    not child and routed_to(self.scope.loaded, self.scope.store, name, incident, now)
                ):
                    work.setdefault(
                        entity_key(incident.sys_id, runtime.name),
                        Work(incident.sys_id, runtime.name, reason="servicenow", ours=ours),
                    )
        journal_mark = self.scope.store.watermarks.get(JOURNAL)
        journal_since = (
            _start(journal_mark, now - self.scope.loaded.connector.polling.initial_lookback) - self.overlap
        )
        seen_before = set(journal_mark.boundary) if journal_mark else set()
        entries = [
            e
            for e in self.scope.snow.journal_since(journal_since, self.page_size)
            if e.sys_id not in seen_before
        ]
        journal_start = self.scope.snow.server_time() or now
        theirs = [e for e in entries if not ours_in_servicenow(e, self.scope.snow.integration_user)]
        noted = self.scope.store.links.for_incidents({e.incident_sys_id for e in theirs})
        for entry in theirs:  # our own notes have nothing to mirror
            report.journal_entries += 1
            for link in noted.get(entry.incident_sys_id, ()):
                if link.supplier in self.scope.suppliers:
                    named = work.setdefault(
                        link.entity, Work(entry.incident_sys_id, link.supplier, reason="journal")
                    )
                    named.ours = False
                    named.journal.append(entry)

        def store_progress(conn: Connection) -> None:
            self.remember(fresh, conn=conn)
            if settled:
                self.scope.store.pushed.forget(settled, conn=conn)
            self.scope.store.watermarks.set(INCIDENTS, Watermark(servicenow_precision(poll_start)), conn=conn)
            window = servicenow_precision(journal_start - self.overlap)
            recent = sorted(
                {e.sys_id for e in entries if e.sys_created_on >= window} | {s for s in seen_before}
            )
            self.scope.store.watermarks.set(
                JOURNAL, Watermark(servicenow_precision(journal_start), tuple(recent[-5000:])), conn=conn
            )

        cycle.commit.append(store_progress)

    def _servicenow_pushes(self) -> bool:
        return SERVICENOW in self.scope.loaded.connector.push_sources()

    def _site_pushes(self, supplier: str) -> bool:
        return f"jira:{supplier}" in self.scope.loaded.connector.push_sources()

    def _delivered(self, source: str) -> Callable[[Iterable[str]], set[str]]:
        """Which versions push announced for ``source`` (a read of the store)."""
        return lambda versions: self.scope.store.deliveries.known(versions_source(source), versions)

    def remember(self, incidents: Iterable[Incident], *, conn: Connection | None = None) -> None:
        """Record these incident versions as processed (our own writes included), in ``conn`` if given."""
        for incident in incidents:
            self.scope.store.incidents.remember(
                incident.sys_id,
                incident.number,
                incident.mod_count,
                incident.sys_updated_on,
                incident.fields,
                opened_at=incident.get("opened_at"),
                candidate=eligibility(incident, material_changed=True).eligible,
                conn=conn,
            )

    def observe_site(self, cycle: Cycle, runtime: SupplierRuntime) -> None:
        """Name the entities of the issues updated at a supplier: linked, or stamped for an incident of ours.

        A failing search is counted in ``poll_failures`` and leaves the watermark where it was.
        """
        now, work, report = cycle.now, cycle.work, cycle.report
        source = f"jira:{runtime.name}"
        mark = self.scope.store.watermarks.get(source)
        since = _start(mark, now - self.scope.loaded.connector.polling.initial_lookback) - self.overlap
        seen_before = set(mark.boundary) if mark else set()
        mapping = self.scope.loaded.suppliers[runtime.name]
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
        found: dict[str, datetime | None] = {}
        for ref in refs:
            version = issue_version(ref.issue_id, ref.updated)
            versions.append((version, ref.updated))
            if version in seen_before:
                continue
            link = self.scope.store.links.by_issue(runtime.name, ref.issue_id)
            if link is not None and self.scope.store.links.seen_version(link.link_id) == version:
                continue  # the issue as a worker read it after its own writes: nothing new
            report.issues_seen += 1
            found[version] = ref.updated
            if link is not None:
                work.setdefault(
                    link.entity, Work(link.incident_sys_id, runtime.name, reason="jira")
                ).ours = False
            elif (stamped := ref.identity) is not None and stamped.of_instance(
                self.scope.servicenow_names, self.instance_name
            ):
                # Ours, but unknown to the store (emptied, restored, or a crash before the
                # link-back): the incident is looked at, and the issue read and adopted if its
                # stamp still says so (search alone proves nothing).
                entity = entity_key(stamped.incident_sys_id, runtime.name)
                named = work.setdefault(entity, Work(stamped.incident_sys_id, runtime.name, reason="jira"))
                named.stamped.append(ref.key)

        if self._site_pushes(runtime.name):
            self.push_watch.judge(source, found, self._delivered(source), poll_start)

        def store_progress(conn: Connection) -> None:
            window = poll_start - self.overlap - timedelta(minutes=1)
            recent = {v for v, updated in versions if updated is None or updated >= window}
            recent |= cycle.seen.get(runtime.name, set())
            self.scope.store.watermarks.set(source, Watermark(poll_start, tuple(sorted(recent))), conn=conn)

        cycle.commit.append(store_progress)

    def _implicate(self, child: Incident, now: datetime, work: dict[str, Work]) -> None:
        """A child's suppliers become its major incident's: remembered, and looked at this cycle."""
        parent = child.get("parent_incident")
        context = SimpleContext(now)
        suppliers = [
            name
            for name in self.scope.suppliers
            if implicates(self.scope.loaded.suppliers[name], child, context)
        ]
        new = set(suppliers) - self.scope.store.decisions.implicated(parent)
        if not new or self.scope.dry_run:
            return
        self.scope.store.decisions.implicate(parent, child.sys_id, sorted(new))
        for name in sorted(new):
            work.setdefault(entity_key(parent, name), Work(parent, name, reason="implicated"))


def routed_to(loaded: LoadedConfig, store: Store, supplier: str, incident: Incident, now: datetime) -> bool:
    """Routing says so, a promotion rule engaged the supplier, or a child implicates it."""
    mapping = loaded.suppliers[supplier]
    if route(mapping, incident, SimpleContext(now)).routed:
        return True
    if supplier in store.decisions.engaged(incident.sys_id):
        return True
    return (
        not incident.get("parent_incident")
        and triggered(mapping, incident)
        and supplier in store.decisions.implicated(incident.sys_id)
    )


PUSHED_WAIT = timedelta(hours=1)
"""How long a pushed version newer than any read may wait for a poll to read it; then it is dropped."""


def pushed_versions(
    pushed: Iterable[PushedVersion],
    polled: Mapping[str, Incident],
    records: Mapping[str, IncidentRecord],
    now: datetime,
) -> tuple[list[Incident], list[tuple[str, int]]]:
    """Which pushed versions the rules must see beside the poll's, and which are done with.

    Returns the *fleeting* versions (newer than any processed, older than the one this poll read:
    they lived shorter than a poll), each with the pushed fields over what the store knew of the
    incident, and the (sys_id, sys_mod_count) of every version that needs no more waiting: the
    fleeting ones, those already processed or read by this poll, and those no poll has read for
    :data:`PUSHED_WAIT`. A version newer than what the poll read waits (the read may lag the push).
    """
    fleeting: dict[str, Incident] = {}
    settled = []
    for version in sorted(pushed, key=lambda v: (v.sys_id, v.mod_count)):
        record, read = records.get(version.sys_id), polled.get(version.sys_id)
        processed = record.mod_count if record is not None else -1
        key = (version.sys_id, version.mod_count)
        if version.mod_count <= processed or (read is not None and version.mod_count == read.mod_count):
            settled.append(key)
        elif read is not None and version.mod_count < read.mod_count:
            settled.append(key)
            # The newest fleeting version of an incident stands for it (the rules judge versions).
            fleeting[version.sys_id] = Incident(
                version.sys_id,
                version.number or (record.number if record else ""),
                version.mod_count,
                servicenow_time_or_none(version.updated_on),
                {**(record.snapshot if record else {}), **version.fields},
            )
        elif now - version.received_at > PUSHED_WAIT:
            settled.append(key)
    return list(fleeting.values()), settled


def _start(mark: Watermark | None, default: datetime) -> datetime:
    return default if mark is None else mark.position
