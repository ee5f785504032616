"""One entity (incident x supplier) synced: read both sides, plan, apply; again while the plan wrote.

Before a first create, an issue the incident lists or a search showed stamped for it is recognised
and adopted; an issue stamped for another incident or instance is released. What a plan would append
that is already there is recorded instead (the store lost track) and the plan made again. A failing
entity goes to the dead-letter queue (:class:`connector.sync.failures.Failures`); the others carry on.
Dry runs change nothing and record in the cycle's report what they would do.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from connector.core.errors import ClaimLost, ConcurrentChange, ConnectorError
from connector.core.links import Link, entity_key
from connector.core.models import Incident, JournalEntry, SupplierIssue
from connector.core.plan import (
    ChangePreview,
    CreateProblem,
    NoteOnIncident,
    Plan,
    Preview,
    UpdateIncident,
    UpdateProblem,
)
from connector.http.breaker import explicit_retry
from connector.mirror.planner import plan
from connector.mirror.recognition import Landed, already_landed, candidate_keys, rebuilt_shadow
from connector.mirror.view import EntityView
from connector.store.links import CREATED
from connector.sync.cycle import Cycle, Scope, SupplierRuntime, Work, issue_version
from connector.sync.failures import Failures
from connector.sync.observe import routed_to
from connector.telemetry import metrics

log = logging.getLogger(__name__)

MAX_PASSES = 4
SERVICENOW_ONLY = (UpdateIncident, NoteOnIncident, CreateProblem, UpdateProblem)
"""Writes that leave the supplier issue as it was."""


class EntitySync:
    """Syncs entities for one engine: its configuration, store, ServiceNow adapter and suppliers."""

    def __init__(self, scope: Scope, failures: Failures) -> None:
        self.scope = scope
        self.failures = failures
        self.instance_url = scope.loaded.connector.servicenow.instance_url
        self.instance_name = scope.loaded.connector.instance_name
        self.states = scope.loaded.connector.servicenow.incident_states

    def process(self, cycle: Cycle, item: Work, snapshot: Incident | None, *, asked: bool = False) -> None:
        """Sync one entity; a failure sends it to the dead-letter queue. ``asked``: an operator's retry."""
        runtime = self.scope.suppliers.get(item.supplier)
        if runtime is None:
            return
        entity = entity_key(item.incident_sys_id, item.supplier)
        with cycle.lock:
            cycle.report.entities += 1
        incident = snapshot
        try:
            with explicit_retry() if asked else contextlib.nullcontext():
                incident = incident or self.scope.snow.incident(item.incident_sys_id, self.scope.fields)
                if incident is None:
                    return
                self._sync(cycle, runtime, incident, item)
            if entity in cycle.due:  # only a letter due now has one to release (others are held)
                self.failures.succeeded(runtime.executor, incident)
        except ClaimLost:
            raise  # another worker has the incident now: nothing to record here
        except Exception as exc:
            if not isinstance(exc, ConnectorError):
                log.exception("unexpected failure on %s", entity, extra={"supplier": item.supplier})
            with cycle.lock:
                cycle.report.failed[entity] = f"{type(exc).__name__}: {exc}"
            if not self.scope.dry_run:
                self.failures.failed(runtime.executor, item.incident_sys_id, incident, exc, asked=asked)

    def _sync(self, cycle: Cycle, runtime: SupplierRuntime, incident: Incident, item: Work) -> None:
        now = cycle.now
        # The other suppliers' links of this incident: its entities are worked on one after the
        # other by this thread, so they do not change while this one is synced.
        links = self.scope.store.links.for_incident(incident.sys_id)
        link = next((known for known in links if known.supplier == runtime.name), None)
        siblings = [known for known in links if known.supplier != runtime.name]
        adopted: SupplierIssue | None = None
        rebuild = False
        if link is None or link.state == "creating":
            pending = link.stamp if link is not None else None
            link, adopted = self._recognise(cycle, runtime, incident, link, item.stamped)
            if adopted is not None and self.scope.dry_run:
                return
            # An issue carrying the stamp of the create this store has pending is that create,
            # whose answer was lost: nothing was synced to it yet, so the incident as it is now
            # is news to it (as when a lost create is found by search). Any other adopted issue
            # was mirrored by a store that is gone: its shadow is rebuilt from the issue.
            rebuild = adopted is not None and (adopted.identity is None or adopted.identity.stamp != pending)
        if not self.scope.dry_run:
            link = runtime.executor.reconcile(incident, link, now)
        journal: list[JournalEntry] = list(item.journal)
        need_full = item.full_journal or link is None or link.state != "linked" or adopted is not None
        routed = routed_to(self.scope.loaded, self.scope.store, runtime.name, incident, now)
        before = incident
        start = _Start(link, adopted, siblings, journal, need_full, routed, rebuild)
        last, incident = self._passes(cycle, runtime, incident, start)
        cycle.latest[incident.sys_id] = incident
        if _fields_changed(before, incident):
            for sibling in siblings:
                if sibling.supplier in self.scope.suppliers:
                    cycle.followups.setdefault(sibling.entity, Work(incident.sys_id, sibling.supplier))
        if last is not None:
            # The issue as we last read it, our own writes included: the next search need not
            # bring it back to us (its `updated` is already known).
            cycle.seen.setdefault(runtime.name, set()).add(issue_version(last.issue_id, last.updated))

    def _passes(
        self, cycle: Cycle, runtime: SupplierRuntime, incident: Incident, start: _Start
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
        mapping = self.scope.loaded.suppliers[runtime.name]
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
                    self.scope.store.links.set_state(link.link_id, "unlinked")
                    log.error(
                        "%s is gone or hidden; unlinked", link.jira_key, extra={"supplier": runtime.name}
                    )
                    return None, incident
                if not self._ours(issue, incident):
                    if self.scope.dry_run:
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
            shadow = self.scope.store.shadows.sides(link.link_id) if link else {}
            mirrored = self.scope.store.comments.settled_both(link.link_id) if link else {}
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
                integration_user=self.scope.snow.integration_user,
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
            if self.scope.dry_run:
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
                    link = self.scope.store.links.get(incident.sys_id, runtime.name)
                    incident = self.scope.snow.incident(incident.sys_id, self.scope.fields) or incident
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
        cycle: Cycle,
        runtime: SupplierRuntime,
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
        project = self.scope.loaded.suppliers[runtime.name].jira.project
        listed = candidate_keys(incident.get("correlation_display"), project)
        for key in dict.fromkeys([*listed, *stamped]):
            issue = runtime.site.issue(key, runtime.issue_fields, comments=True)
            identity = issue.identity if issue is not None else None
            if issue is None or identity is None:
                continue
            if not identity.belongs_to(incident.sys_id, self.scope.servicenow_names, self.instance_name):
                continue
            if self.scope.dry_run:
                reason = f"it already exists for {incident.number}: adopted, not created"
                self._planned(cycle, incident, runtime, f"adopt {issue.key}", reason)
                return link, issue
            return runtime.executor.adopt(incident, issue), issue
        return link, None

    def _planned(
        self, cycle: Cycle, incident: Incident, runtime: SupplierRuntime, action: str, reason: str
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
            for name, other in self.scope.loaded.suppliers.items()
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
            incident.sys_id, self.scope.servicenow_names, self.instance_name
        )

    def _recover(
        self, runtime: SupplierRuntime, view: EntityView, link: Link, landed: Sequence[Landed]
    ) -> tuple[EntityView, Plan]:
        """Record what already landed and a rebuilt Jira-side shadow; plan again from them.

        Appends found already done mean the store had lost track of this link (restored from an
        older copy): its shadows are as stale as its ledger, so they are rebuilt too.
        """
        shadow = rebuilt_shadow(view)
        if not self.scope.dry_run:
            runtime.executor.recover(link, landed, shadow)
        view = replace(
            view,
            jira_shadow={**view.jira_shadow, **shadow},
            mirrored_out=view.mirrored_out | {f.source_id for f in landed if f.direction == "out"},
            mirrored_in=view.mirrored_in | {f.source_id for f in landed if f.direction == "in"},
        )
        return view, plan(view)

    def _full_journal(self, cycle: Cycle, incident_sys_id: str) -> list[JournalEntry]:
        """The incident's whole journal, read once per cycle for all its suppliers.

        Entries written since the read are ours (marked, never mirrored) or come with the next
        journal poll, so the siblings of the entity that read it may share it.
        """
        journal = cycle.journals.get(incident_sys_id)
        if journal is None:
            journal = cycle.journals[incident_sys_id] = self.scope.snow.journal_of(incident_sys_id)
        return journal

    def _account(self, runtime: SupplierRuntime) -> str:
        if not runtime.account_id:
            runtime.account_id = runtime.site.myself().account_id
        return runtime.account_id


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


def _fields_changed(before: Incident, after: Incident) -> bool:
    """Whether our writes changed incident fields that other suppliers' plans read.

    Journal entries and the list of supplier keys (``correlation_display``) do not count.
    """
    journal = ("work_notes", "comments", "correlation_display")
    return {k: v for k, v in before.fields.items() if k not in journal} != {
        k: v for k, v in after.fields.items() if k not in journal
    }
