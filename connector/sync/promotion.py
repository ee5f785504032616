"""The promotion rules at work in the daemon: remember time conditions, decide, guard, write, explain.

Each cycle: :meth:`Promoter.track` records since when ``for:`` conditions and "unassigned" hold
for new incident versions; :meth:`Promoter.run` settles decisions a crash or a lost answer left
pending, then decides for every new version (and, when rules depend on time, for every incident
still a candidate). A decision passes the guardrails (dry run, global and per-rule hourly caps)
before it writes, and is recorded before the write it causes. The write is one PATCH setting
``major_incident_state``, the rule's fields and a work note naming the rule and the values that
matched; a cluster also links its members as children of the major incident; ``create-parent``
first creates the major incident, stamped in ``correlation_id`` so a lost answer can be found.

Every write goes through the one write protocol (a :class:`~connector.core.ports.WriteLedger`):
its intent carries the write's stamp (the work note's marker, or the new incident's
``correlation_id``), and a write left open by a crash or a lost answer is settled by looking for it.
What the rules' conditions read from the store (time conditions, clusters) is
:mod:`connector.sync.rule_context`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from connector.config.conditions import AllCondition, AnyCondition, ClusterCondition, NotCondition
from connector.core.errors import ConnectorError, UncertainOutcome
from connector.core.markers import marker, own_ref, stamp_line
from connector.core.models import Incident, JournalEntry
from connector.core.plan import Operation
from connector.core.ports import OpenWrite, ServiceNowPort, Write, WriteLedger, Written
from connector.core.templates import render
from connector.core.times import format_servicenow_time, servicenow_time_or_none
from connector.core.vocabulary import FINISHED_STATES
from connector.rules.book import (
    SETTLED_MIM_STATES,
    Decision,
    RuleBook,
    changed_materially,
    eligibility,
    material_values,
)
from connector.store import Store
from connector.store.decisions import DecisionRecord
from connector.sync.rule_context import RecentIncidents, StoreContext, cluster_members, incident_of
from connector.telemetry import metrics

log = logging.getLogger(__name__)
MIM_STATE = {"propose": "proposed", "promote": "accepted"}
DECIDED = {"propose": "proposed", "promote": "promoted"}
WINDOW_REBUILD = timedelta(minutes=5)
"""How often the cluster window is read again from the store (see :meth:`Promoter._recent`)."""
PAGE = 500
"""Incidents read from the store at a time (candidates, a cluster window)."""
RULES = "rules"
"""The scope of the rules' writes: their intents are the entity ``<incident_sys_id>:rules``."""


@dataclass
class PromotionReport:
    """What the rules did this cycle, by incident number, and which incidents became children."""

    decided: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    children: set[str] = field(default_factory=set)
    """sys_ids linked under a major incident this cycle (not to be mirrored on their own)."""
    touched: set[str] = field(default_factory=set)
    """sys_ids this cycle already decided or linked (their snapshots are stale now)."""

    def say(self, number: str, what: str) -> None:
        """Record (and log) what was written for an incident."""
        self.decided[number] = what
        log.info("%s: %s", number, what, extra={"incident": number})


class Promoter:
    """Runs a :class:`RuleBook` against the incidents the engine observes."""

    def __init__(
        self,
        book: RuleBook,
        store: Store,
        snow: ServiceNowPort,
        fields: list[str],
        *,
        writes: WriteLedger,
        dry_run: bool = False,
    ) -> None:
        """``writes`` records every write to ServiceNow (intent, outcome, audit) and settles lost answers."""
        self.book = book
        self.store = store
        self.snow = snow
        self.fields = fields
        self.writes = writes
        self.dry_run = dry_run
        self._cluster_fields = _cluster_fields(book)
        self._window: RecentIncidents | None = None
        self._window_built: datetime | None = None

    # --- memory of time conditions -------------------------------------------------------------------

    def track(self, incidents: Iterable[Incident], now: datetime) -> None:
        """Record, for new versions, since when each ``for:`` condition and "unassigned" hold."""
        if self.dry_run:
            return
        states: list[tuple[str, str, datetime | None]] = []
        for incident in incidents:
            seen_at = incident.sys_updated_on or now
            for key, holds in self.book.held:
                states.append((incident.sys_id, key, seen_at if holds(incident) else None))
            if not incident.get("assigned_to"):
                opened = servicenow_time_or_none(incident.get("opened_at"))
                first_sight = incident.mod_count <= 1 and opened is not None
                states.append((incident.sys_id, "unassigned", opened if first_sight and opened else seen_at))
            else:
                states.append((incident.sys_id, "unassigned", None))
        self.store.conditions.record(states)

    # --- deciding and acting -------------------------------------------------------------------------

    def run(self, fresh: Iterable[Incident], now: datetime) -> PromotionReport:
        """Decide and act for new versions (and time-dependent candidates); never raises for one incident."""
        report = PromotionReport()
        if not self.book.compiled:
            return report
        fresh_by_id = {incident.sys_id: incident for incident in fresh}
        if not self.dry_run:
            self._settle_pending()
        recent = self._recent(now, fresh_by_id)
        context = StoreContext(now, self.store, recent)
        for incident in self._candidates(fresh_by_id, now):
            if incident.sys_id in report.touched:
                continue
            try:
                self._decide(incident, context, now, report)
            except ConnectorError as exc:
                report.failed[incident.number] = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "promotion of %s failed: %s", incident.number, exc, extra={"incident": incident.number}
                )
        return report

    def _candidates(self, fresh: dict[str, Incident], now: datetime) -> Iterator[Incident]:
        """The new versions, then (when rules depend on time) every other candidate, a page at a time.

        Every open incident is a candidate: read in pages, a cycle holds one page of them, not all.
        """
        yield from fresh.values()
        if self.book.durations:
            for record in self.store.incidents.pages(self.store.incidents.candidates, PAGE):
                if record.sys_id not in fresh:
                    yield incident_of(record)

    def _recent(self, now: datetime, fresh: dict[str, Incident]) -> RecentIncidents:
        """The cluster window: read from the store at most every :data:`WINDOW_REBUILD`, kept up in between.

        Between reads the window takes each cycle's new versions and lets go of what its start
        passed: read at every poll, a storm's thousands of incidents were decoded again every
        2 s (a third of the poller's time in a 5,000-incident backfill). The periodic read takes
        in what another instance observed while it held the poller role.
        """
        if not self.book.uses_clusters:
            return RecentIncidents(self.store, fresh)
        widest = max((d for d in self.book.durations), default=timedelta(hours=1))
        built = self._window_built
        if self._window is None or built is None or not built <= now < built + WINDOW_REBUILD:
            records = self.store.incidents.pages(self.store.incidents.opened_since, PAGE, now - widest)
            self._window = RecentIncidents(self.store, {}, records, self._cluster_fields)
            self._window_built = now
        else:
            self._window.forget_opened_before(format_servicenow_time(now - widest))
        self._window.take(fresh)
        return self._window

    def _material_changed(self, incident: Incident) -> bool:
        if incident.get("major_incident_state") not in SETTLED_MIM_STATES:
            return False
        fields = self.book.settings.material_fields
        baseline = self.store.decisions.latest(incident.sys_id)
        if baseline is None:
            # A rejection we had no part in: what it looked like now is what must change.
            self.store.decisions.record(
                incident.sys_id, "-", "-", "-", "observed", material_values(incident, fields)
            )
            return False
        return changed_materially(baseline.material, incident, fields)

    def _decide(
        self, incident: Incident, context: StoreContext, now: datetime, report: PromotionReport
    ) -> None:
        material_changed = self._material_changed(incident) if not self.dry_run else False
        decision = self.book.decide(
            incident, context, eligibility(incident, material_changed=material_changed)
        )
        if decision.rule is None or decision.action is None:
            return
        rule = decision.rule
        label = f"{DECIDED[decision.action]} by rule {rule.name}"
        if self.dry_run or decision.dry_run(self.book.settings.dry_run):
            self._note_once(incident, decision, "dry_run", f"dry run: would have {label}")
            report.decided[incident.number] = f"dry run: {label}"
            return
        cap = self._cap_reached(rule.name, rule.max_per_hour, now)
        if cap:
            self._note_once(incident, decision, "capped", cap, level=logging.ERROR)
            report.decided[incident.number] = f"capped: {cap}"
            return
        cluster = decision.cluster
        if cluster is not None:
            self._gather(decision, cluster, context, report)
        else:
            self._promote(decision, context, report)
            report.say(incident.number, label)
        metrics.RULE_DECISIONS.labels(rule.name, decision.action).inc()

    def _cap_reached(self, rule: str, per_rule: int | None, now: datetime) -> str:
        hour_ago = now - timedelta(hours=1)
        limit = self.book.settings.max_proposals_per_hour
        if self.store.decisions.written_since(hour_ago) >= limit:
            return f"the global cap of {limit} major-incident decisions per hour is reached"
        if per_rule is not None and self.store.decisions.written_since(hour_ago, rule) >= per_rule:
            return f"rule {rule} reached its cap of {per_rule} decisions per hour; check the rule"
        return ""

    def _note_once(
        self, incident: Incident, decision: Decision, state: str, text: str, level: int = logging.INFO
    ) -> None:
        rule = decision.rule
        assert rule is not None
        if not self.dry_run:  # `sync --dry-run` writes nothing anywhere, the store included
            latest = self.store.decisions.latest(incident.sys_id, [state])
            if latest is not None and latest.rule == rule.name:
                return
            self.store.decisions.record(
                incident.sys_id,
                rule.name,
                decision.action or "",
                decision.mode(self.book.settings.mode),
                state,
                material_values(incident, self.book.settings.material_fields),
                decision.engage,
            )
        log.log(
            level, "%s: %s", incident.number, text, extra={"incident": incident.number, "rule": rule.name}
        )
        if state == "dry_run":
            metrics.RULE_DRY_RUNS.labels(rule.name, decision.action or "").inc()
        else:
            metrics.RULES_CAPPED.labels(rule.name).inc()

    # --- writes --------------------------------------------------------------------------------------

    def _promote(self, decision: Decision, context: StoreContext, report: PromotionReport) -> Incident:
        """Propose or promote one incident (in place, or under a new parent); return the major incident."""
        incident, rule = decision.incident, decision.rule
        assert rule is not None and decision.action is not None
        mode = decision.mode(self.book.settings.mode)
        record = self._pending(incident, decision, mode)
        ref = marker("r", incident.sys_id, str(record.decision_id))
        note = self.book.work_note(decision, context, stamp_line(ref))
        values = self._rule_fields(decision)
        report.touched.add(incident.sys_id)
        try:
            if mode == "create-parent":
                major = self._create_parent(incident, decision, record.decision_id, note, values)
                why = f"created as the major incident for {incident.number}"
                self._link_child(incident, major, rule.name, why, report)
            else:
                fields = {**values, "major_incident_state": MIM_STATE[decision.action], "work_notes": note}
                self._write(incident, Operation(decision.action), fields, f"rule {rule.name} matched", ref)
                major = incident
        except UncertainOutcome:
            raise
        except ConnectorError:
            self.store.decisions.settle(record.decision_id, "failed")
            raise
        parent = major.sys_id if major is not incident else None
        self.store.decisions.settle(record.decision_id, DECIDED[decision.action], parent)
        return major

    def _gather(
        self, decision: Decision, cluster: ClusterCondition, context: StoreContext, report: PromotionReport
    ) -> None:
        """A cluster: one major incident (the earliest member, or a new parent), the others its children."""
        incident, rule = decision.incident, decision.rule
        assert rule is not None and decision.action is not None
        value = incident.get(cluster.cluster.by)
        existing = self.store.clusters.latest(rule.name, value)
        if existing is not None and self._still_major(existing.major_sys_id):
            if existing.major_sys_id != incident.sys_id:
                major = self._known(existing.major_sys_id, context)
                self._link_child(
                    incident, major, rule.name, f"joins the cluster on {cluster.cluster.by}", report
                )
                report.say(incident.number, f"child of {major.number or major.sys_id} (rule {rule.name})")
            return
        members = cluster_members(incident, cluster, context.recent, context)
        head = members[0]
        mode = decision.mode(self.book.settings.mode)
        major = self._promote(Decision(head, decision.eligibility, decision.matched), context, report)
        report.say(head.number, f"{DECIDED[decision.action]} by rule {rule.name} (cluster of {len(members)})")
        self.store.clusters.add(rule.name, value, major.sys_id)
        why = f"{len(members)} incidents share {cluster.cluster.by} within {cluster.cluster.within}"
        for member in members:
            if member.sys_id != major.sys_id and (mode == "create-parent" or member is not head):
                self._link_child(member, major, rule.name, why, report)
                report.say(member.number, f"child of {major.number or major.sys_id} (rule {rule.name})")

    def _known(self, sys_id: str, context: StoreContext) -> Incident:
        """An incident by sys_id from this cycle's or the store's snapshots (its number when known)."""
        found = context.recent.get(sys_id)
        if found is not None:
            return found
        record = self.store.incidents.get(sys_id)
        return incident_of(record) if record is not None else _ref(sys_id)

    def _create_parent(
        self, child: Incident, decision: Decision, decision_id: int, note: str, values: dict[str, str]
    ) -> Incident:
        stamp = f"mim-connector:parent:{decision_id}"
        found = self.snow.incident_where("correlation_id", stamp, self.fields)
        if found is not None:
            return found
        assert decision.action is not None
        fields = {
            "short_description": f"Major incident: {child.get('short_description')}",
            "description": f"Opened by mim-connector for {child.number}.\n\n{child.get('description')}",
            "impact": child.get("impact") or "1",
            "urgency": child.get("urgency") or "1",
            "cmdb_ci": child.get("cmdb_ci"),
            "business_service": child.get("business_service"),
            "assignment_group": child.get("assignment_group"),
            **values,
            "major_incident_state": MIM_STATE[decision.action],
            "correlation_id": stamp,
            "work_notes": note,
        }
        creation = Write(
            _rules_entity(child),
            Operation.CREATE_INCIDENT,
            "servicenow",
            child.number,
            f"major incident for {child.number}",
            stamp,
            {"fields": sorted(k for k, v in fields.items() if v)},
        )

        def create() -> Incident:
            try:
                return self.snow.create_incident({k: v for k, v in fields.items() if v}, self.fields)
            except UncertainOutcome:
                found_later = self.snow.incident_where("correlation_id", stamp, self.fields)
                if found_later is None:
                    raise
                return found_later

        return self.writes.write(
            creation, create, lambda parent: Written({"incident": parent.number}, target=parent.number)
        )

    def _link_child(
        self, child: Incident, major: Incident, rule: str, why: str, report: PromotionReport
    ) -> None:
        report.touched.add(child.sys_id)
        report.children.add(child.sys_id)
        if child.get("parent_incident") == major.sys_id:
            return
        name = major.number or major.sys_id
        ref = marker("c", child.sys_id, major.sys_id)
        note = f"mim-connector linked this incident as a child of {name} (rule {rule}: {why}).\n{stamp_line(ref)}"
        fields = {"parent_incident": major.sys_id, "work_notes": note}
        self._write(child, Operation.LINK_CHILD, fields, f"child of {name}", ref)

    def _write(
        self, incident: Incident, operation: Operation, fields: dict[str, str], reason: str, ref: str
    ) -> None:
        """One PATCH of the incident carrying a work note marked ``ref`` (the write's stamp)."""
        write = Write(
            _rules_entity(incident),
            operation,
            "servicenow",
            incident.number,
            reason,
            ref,
            {"fields": sorted(fields)},
        )
        shown = {k: v for k, v in fields.items() if k != "work_notes"}
        self.writes.write(
            write, lambda: self.snow.update_incident(incident.sys_id, fields), lambda _: Written(after=shown)
        )

    def _pending(self, incident: Incident, decision: Decision, mode: str) -> DecisionRecord:
        rule = decision.rule
        assert rule is not None and decision.action is not None
        material = material_values(incident, self.book.settings.material_fields)
        return self.store.decisions.record(
            incident.sys_id, rule.name, decision.action, mode, "pending", material, decision.engage
        )

    def _rule_fields(self, decision: Decision) -> dict[str, str]:
        rule = decision.rule
        assert rule is not None
        values = {**decision.incident.values(), "rule.name": rule.name, "rule.description": rule.description}
        return {name: render(template, values) for name, template in decision.fields.items()}

    def _still_major(self, sys_id: str) -> bool:
        record = self.store.incidents.get(sys_id)
        if record is None:
            return True
        snapshot = record.snapshot
        return snapshot.get("active") != "false" and snapshot.get("state") not in FINISHED_STATES

    def _settle_pending(self) -> None:
        """Settle what a crash or a lost answer left open, by looking for each write's stamp.

        A decision left ``pending`` wrote or did not: its work note's marker tells which. So does
        an open write's stamp: its work note's marker, or a new major incident's ``correlation_id``.
        """
        landed = _Journals(self.snow)
        for record in self.store.decisions.pending():
            ref = marker("r", record.incident_sys_id, str(record.decision_id))
            try:
                found = landed(record.incident_sys_id, ref)
            except ConnectorError as exc:
                log.warning("cannot settle decision %s yet: %s", record.decision_id, exc)
                continue
            self.store.decisions.settle(
                record.decision_id, DECIDED.get(record.action, "proposed") if found else "failed"
            )
        for open_write in self.writes.open_writes(RULES):
            try:
                outcome = self._look_for(open_write, landed)
            except ConnectorError as exc:
                log.warning("cannot settle the write of intent %s yet: %s", open_write.intent_id, exc)
                continue
            if outcome is None:
                self.writes.settle(open_write.intent_id, "abandoned", {"reason": "not found"})
            else:
                self.writes.settle(open_write.intent_id, "done", {**outcome, "reconciled": True})

    def _look_for(self, open_write: OpenWrite, landed: Callable[[str, str], bool]) -> dict[str, str] | None:
        """What an open write of the rules left on ServiceNow (``None``: nothing, it did not land)."""
        if open_write.operation == Operation.CREATE_INCIDENT:
            parent = self.snow.incident_where("correlation_id", open_write.stamp, self.fields)
            return {"incident": parent.number} if parent is not None else None
        incident_sys_id = open_write.entity.rpartition(":")[0]
        return {} if landed(incident_sys_id, open_write.stamp) else None


class _Journals:
    """Whether an incident's journal holds an entry marked ``ref``; each journal read once."""

    def __init__(self, snow: ServiceNowPort) -> None:
        self.snow = snow
        self._read: dict[str, list[JournalEntry]] = {}

    def __call__(self, incident_sys_id: str, ref: str) -> bool:
        if incident_sys_id not in self._read:
            self._read[incident_sys_id] = self.snow.journal_of(incident_sys_id)
        return any(own_ref(entry.value) == ref for entry in self._read[incident_sys_id])


def _rules_entity(incident: Incident) -> str:
    return f"{incident.sys_id}:{RULES}"


def _ref(sys_id: str) -> Incident:
    """An incident known only by its sys_id (a major incident we link children to)."""
    return Incident(sys_id, "", 0, None)


def _cluster_fields(book: RuleBook) -> list[str]:
    """The fields the book's cluster conditions group by, wherever they sit in a rule's tree."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, ClusterCondition):
            found.append(node.cluster.by)
            walk(node.cluster.where)
        elif isinstance(node, AllCondition):
            for child in node.all:
                walk(child)
        elif isinstance(node, AnyCondition):
            for child in node.any:
                walk(child)
        elif isinstance(node, NotCondition):
            walk(node.not_)

    for rule in book.file.rules:
        walk(rule.when)
    return found
