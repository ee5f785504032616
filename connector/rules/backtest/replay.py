"""Back-test promotion rules against incident history with a simulated clock. Pure.

History arrives as :class:`Observation` values (an incident's fields at a moment), in time order:
from a ServiceNow audit export (:func:`observations_from_events`, every update of every incident)
or from a live instance (:func:`observations_from_incidents`, each incident once, at its opening,
with its current values). :func:`run_backtest` replays them through a
:class:`~connector.rules.book.RuleBook` and returns a :class:`~connector.rules.backtest.summary.BacktestResult`.

**Time.** The clock jumps from one observation to the next. A time condition (``for:``,
``unassigned_for``, ``open_for``) can become true between two updates, so after each update the
incident is also re-checked at every moment a threshold may be crossed: the update's time, the
incident's opening and the start of each condition it is holding, plus each threshold the rules
use. Checks past the last observation are dropped: the log does not say what happened then.

**MIM.** As :func:`connector.rules.book.eligibility`: a proposed or promoted incident, a child and a
resolved or closed one are not evaluated. A cluster decision makes its earliest-opened member the
major incident (``promote-in-place``) and the others its children, or creates one new parent with
every member as a child (``create-parent``). Nobody accepts or rejects proposals in the simulation.

**Guardrails.** ``settings.max_proposals_per_hour`` and each rule's ``max_per_hour`` are sliding
one-hour windows of simulated time over every decision (dry-run ones too: the back-test shows what
the rules would do once live). A capped incident stays eligible and is decided later if its rule
still matches when there is room. Dry-run decisions are applied like the others, so each incident
is counted once, and are reported as dry-run.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from connector.config.conditions import (
    ClusterCondition,
    FieldCondition,
    OpenForCondition,
    UnassignedForCondition,
)
from connector.config.fieldcheck import walk_conditions
from connector.config.rules_file import Rule
from connector.core.models import Incident
from connector.core.times import format_servicenow_time, servicenow_time_or_none
from connector.core.vocabulary import FINISHED_STATES, STATE_CLOSED, STATE_IN_PROGRESS
from connector.rules.backtest.eventlog import IncidentEvent
from connector.rules.backtest.p1 import P1Watch
from connector.rules.backtest.summary import BacktestResult, DecisionRecord, RunInfo, summarise
from connector.rules.book import (
    Decision,
    Predicate,
    RuleBook,
    compile_condition,
    eligibility,
)
from connector.rules.conditions import compare, condition_key

Progress = Callable[[int, int], None]
UNASSIGNED = "unassigned"
HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Observation:
    """An incident's values at one moment (without MIM fields: the simulation owns those)."""

    at: datetime
    incident: Incident
    opened_at: datetime
    """When the incident opened (the first observation's time when the source does not say)."""


def incident_from_event(event: IncidentEvent) -> Incident:
    """The incident after one audited update, as rules see it.

    Plain fields as stored values, ``priority`` as recorded, each reference by its display name both
    as the column (the log has no sys_ids) and dot-walked (``assignment_group.name``), ``opened_at``
    in ServiceNow's format, ``active`` false once closed. The number doubles as the sys_id.
    """
    fields = dict(event.fields)
    fields["priority"] = event.priority
    fields["active"] = "false" if event.fields.get("state") == STATE_CLOSED else "true"
    if event.opened_at is not None:
        fields["opened_at"] = format_servicenow_time(event.opened_at)
    for column, name in event.references.items():
        fields[column] = name
        fields[f"{column}.name"] = name
    return Incident(event.number, event.number, event.mod_count, event.updated_at, MappingProxyType(fields))


def observations_from_events(events: Iterable[IncidentEvent]) -> list[Observation]:
    """One observation per audited update, in time order."""
    first_seen: dict[str, datetime] = {}
    out: list[Observation] = []
    for event in sorted(events, key=lambda e: (e.updated_at, e.number, e.mod_count)):
        opened = event.opened_at or first_seen.setdefault(event.number, event.updated_at)
        out.append(Observation(event.updated_at, incident_from_event(event), opened))
    return out


def observations_from_incidents(incidents: Iterable[Incident]) -> list[Observation]:
    """Live incidents (current values only) as one observation each, at their opening.

    The Table API gives no history: every incident is replayed as it is now, as if it had looked
    like that since it opened. Resolved and closed ones are replayed as open (``state`` 2), and the
    MIM fields are cleared so that the rules, not past decisions, decide.
    """
    out: list[Observation] = []
    for incident in incidents:
        opened = servicenow_time_or_none(incident.get("opened_at")) or incident.sys_updated_on
        if opened is None:
            continue
        fields = {
            k: v for k, v in incident.fields.items() if k not in ("major_incident_state", "parent_incident")
        }
        if fields.get("state") in FINISHED_STATES:
            fields["state"] = STATE_IN_PROGRESS
        fields["active"] = "true"
        fields["opened_at"] = format_servicenow_time(opened)
        replayed = Incident(
            incident.sys_id,
            incident.number,
            incident.mod_count,
            incident.sys_updated_on,
            MappingProxyType(fields),
        )
        out.append(Observation(opened, replayed, opened))
    return sorted(out, key=lambda o: (o.at, o.incident.number))


class SimulationContext:
    """The :class:`~connector.rules.conditions.Context` of a replay: memory of conditions and of every incident.

    ``held_since`` answers from the observations seen so far: a ``for:`` condition (or being
    unassigned) holds since the first observation where it held without a break. ``cluster_size``
    counts the incidents sharing the value that opened within the window before ``now``, are
    eligible and match the cluster's ``where`` - the asking incident always included.
    """

    def __init__(self, rules: Sequence[Rule], start: datetime) -> None:
        self.now = start
        self.latest: dict[str, Incident] = {}
        """Each incident's latest version, MIM fields as the simulation set them."""
        self.opened: dict[str, datetime] = {}
        self._held: dict[str, dict[str, datetime]] = {}
        self._overlay: dict[str, dict[str, str]] = {}
        nodes = [node for rule in rules for _loc, node in walk_conditions(rule.when, ())]
        self._tracked = {
            condition_key(n): (n.field, n.operator, n.operand)
            for n in nodes
            if isinstance(n, FieldCondition) and n.held_for is not None
        }
        clusters = [n for n in nodes if isinstance(n, ClusterCondition)]
        self._where: dict[int, tuple[ClusterCondition, Predicate | None]] = {}
        """Compiled ``where`` of each cluster condition, by identity (the condition kept alive with it)."""
        self._window: dict[str, timedelta] = {}
        for c in clusters:
            self._window[c.cluster.by] = max(
                self._window.get(c.cluster.by, c.cluster.within), c.cluster.within
            )
        self._buckets: dict[str, dict[str, dict[str, datetime]]] = {by: {} for by in self._window}
        self._values: dict[str, dict[str, str]] = {by: {} for by in self._window}

    def observe(self, observation: Observation) -> Incident:
        """Take in a new version of an incident at ``observation.at``; the version rules will see."""
        base = observation.incident
        sys_id, at = base.sys_id, observation.at
        overlay = self._overlay.get(sys_id)
        incident = base if overlay is None else _with(base, overlay)
        self.latest[sys_id] = incident
        self.opened.setdefault(sys_id, observation.opened_at)
        held = self._held.setdefault(sys_id, {})
        for key, (name, operator, operand) in self._tracked.items():
            if compare(operator, incident.get(name), operand)[0]:
                held.setdefault(key, at)
            else:
                held.pop(key, None)
        if incident.get("assigned_to"):
            held.pop(UNASSIGNED, None)
        else:
            held.setdefault(UNASSIGNED, at)
        for by, window in self._window.items():
            self._index(by, sys_id, incident.get(by), at - window)
        return incident

    def mark(self, sys_id: str, **fields: str) -> None:
        """Set MIM fields (``major_incident_state``, ``parent_incident``) of an incident from now on."""
        self._overlay.setdefault(sys_id, {}).update(fields)
        self.latest[sys_id] = _with(self.latest[sys_id], fields)

    def held_since(self, incident: Incident, key: str) -> datetime | None:
        """When the condition ``key`` (or ``unassigned``) started holding without a break."""
        return self._held.get(incident.sys_id, {}).get(key)

    def held(self, sys_id: str) -> Iterable[datetime]:
        """Every start time of a condition the incident holds now."""
        return self._held.get(sys_id, {}).values()

    def cluster_size(self, incident: Incident, cluster: ClusterCondition) -> int:
        """How many incidents (this one included) form a cluster with it now."""
        return len(self.cluster_members(incident, cluster))

    def cluster_members(self, incident: Incident, cluster: ClusterCondition) -> list[Incident]:
        """The cluster's incidents, ``incident`` first."""
        spec = cluster.cluster
        value = incident.get(spec.by)
        bucket = self._buckets.get(spec.by, {}).get(value) if value else None
        if not bucket:
            return [incident]
        where = self._where_predicate(cluster)
        start = self.now - spec.within
        members = [incident]
        for sys_id, opened in bucket.items():
            if sys_id == incident.sys_id or not start <= opened <= self.now:
                continue
            other = self.latest[sys_id]
            if eligibility(other).eligible and (where is None or where(other, self)):
                members.append(other)
        return members

    def _where_predicate(self, cluster: ClusterCondition) -> Predicate | None:
        cached = self._where.get(id(cluster))
        if cached is None:
            where = cluster.cluster.where
            cached = self._where[id(cluster)] = (cluster, compile_condition(where) if where else None)
        return cached[1]

    def _index(self, by: str, sys_id: str, value: str, horizon: datetime) -> None:
        """Move ``sys_id`` to the bucket of ``value``; drop members too old to count ever again."""
        previous = self._values[by].get(sys_id)
        if previous == value:
            return
        buckets = self._buckets[by]
        if previous:
            buckets[previous].pop(sys_id, None)
        self._values[by][sys_id] = value
        if not value:
            return
        bucket = buckets.setdefault(value, {})
        for stale in [s for s, opened in bucket.items() if opened < horizon]:
            del bucket[stale]
        if self.opened[sys_id] >= horizon:
            bucket[sys_id] = self.opened[sys_id]


@dataclass
class _Caps:
    """Sliding one-hour windows of decision times: global and per rule."""

    per_hour: int
    overall: deque[datetime] = field(default_factory=deque)
    by_rule: dict[str, deque[datetime]] = field(default_factory=dict)

    def full(self, rule: Rule, at: datetime) -> bool:
        if _count(self.overall, at) >= self.per_hour:
            return True
        limit = rule.max_per_hour
        return limit is not None and _count(self.by_rule.setdefault(rule.name, deque()), at) >= limit

    def take(self, rule: Rule, at: datetime) -> None:
        self.overall.append(at)
        self.by_rule.setdefault(rule.name, deque()).append(at)


class _Replay:
    """One run: the queue of re-checks merged with the observations, the decisions, the counters."""

    def __init__(self, book: RuleBook, observations: Sequence[Observation]) -> None:
        self.book = book
        self.observations = observations
        self.end = observations[-1].at if observations else None
        self.context = SimulationContext(book.file.rules, observations[0].at if observations else _EPOCH)
        self.rising = tuple(sorted(_rising_durations(book.file.rules)))
        self.checks: list[tuple[datetime, int, str]] = []
        self.scheduled: set[tuple[str, datetime]] = set()
        self.sequence = itertools.count()
        self.last_evaluated: dict[str, datetime] = {}
        self.caps = _Caps(book.settings.max_proposals_per_hour)
        self.records: list[DecisionRecord] = []
        self.capped: dict[str, set[str]] = {}
        self.p1 = P1Watch(book)
        self.evaluations = 0
        self.rechecks = 0

    def run(self, progress: Progress | None) -> None:
        total = len(self.observations)
        step = max(1, total // 200)
        for done, observation in enumerate(self.observations, start=1):
            self._drain(observation.at, inclusive=False)
            incident = self.context.observe(observation)
            self.p1.observe(incident, observation.at, observation.opened_at)
            self._evaluate(incident.sys_id, observation.at)
            self._schedule(incident.sys_id, observation.at)
            if progress is not None and (done % step == 0 or done == total):
                progress(done, total)
        if self.end is not None:
            self._drain(self.end, inclusive=True)

    def _drain(self, until: datetime, *, inclusive: bool) -> None:
        checks = self.checks
        while checks and (checks[0][0] < until or (inclusive and checks[0][0] == until)):
            at, _seq, sys_id = heapq.heappop(checks)
            self.scheduled.discard((sys_id, at))
            if self.last_evaluated.get(sys_id) != at and self._evaluate(sys_id, at):
                self.rechecks += 1

    def _schedule(self, sys_id: str, at: datetime) -> None:
        if not self.rising or self.end is None or not eligibility(self.context.latest[sys_id]).eligible:
            return
        bases = {at, self.context.opened[sys_id], *self.context.held(sys_id)}
        for base in bases:
            for duration in self.rising:
                due = base + duration
                if at < due <= self.end and (sys_id, due) not in self.scheduled:
                    self.scheduled.add((sys_id, due))
                    heapq.heappush(self.checks, (due, next(self.sequence), sys_id))

    def _evaluate(self, sys_id: str, at: datetime) -> bool:
        """Run the rules on the incident's latest version at ``at``; False when it is not eligible."""
        self.last_evaluated[sys_id] = at
        incident = self.context.latest[sys_id]
        eligible = eligibility(incident)
        if not eligible.eligible:
            return False
        self.context.now = at
        self.evaluations += 1
        decision = self.book.decide(incident, self.context, eligible)
        rule = decision.rule
        at_p1 = incident.get("priority") == "1"
        if rule is None:
            if at_p1:
                self.p1.unmatched(incident, self.context)
            return True
        if self.caps.full(rule, at):
            self.capped.setdefault(rule.name, set()).add(sys_id)
            if at_p1:
                self.p1.capped(incident, rule, at)
            return True
        self.caps.take(rule, at)
        self._apply(decision, rule, at)
        return True

    def _apply(self, decision: Decision, rule: Rule, at: datetime) -> None:
        context, settings = self.context, self.book.settings
        incident = decision.incident
        cluster = decision.cluster
        members = [incident]
        if cluster is not None and incident.get(cluster.cluster.by):
            found = context.cluster_members(incident, cluster)
            if len(found) >= cluster.cluster.at_least:
                members = found
        members.sort(key=lambda m: (context.opened[m.sys_id], m.number))
        action = decision.action or rule.then.action
        mode = decision.mode(settings.mode)
        first = members[0]
        if mode == "promote-in-place":
            major: str | None = first.number
            context.mark(first.sys_id, major_incident_state="accepted" if action == "promote" else "proposed")
            parent = first.sys_id
            children = members[1:]
        else:
            major, parent, children = None, f"new-parent:{first.number}", members
        for child in children:
            context.mark(child.sys_id, parent_incident=parent)
        self.records.append(
            DecisionRecord(
                rule=rule.name,
                action=action,
                mode=mode,
                at=at,
                trigger=incident.number,
                major=major,
                members=tuple(m.number for m in members),
                opened_at=context.opened[first.sys_id],
                dry_run=decision.dry_run(settings.dry_run),
                ci=first.get("cmdb_ci.name") or first.get("cmdb_ci"),
                group=first.get("assignment_group.name") or first.get("assignment_group"),
            )
        )


def run_backtest(
    observations: Sequence[Observation],
    book: RuleBook,
    *,
    source: str = "",
    note: str = "",
    progress: Progress | None = None,
) -> BacktestResult:
    """Replay ``observations`` (time-ordered) through ``book``; ``progress(done, total)`` counts observations."""
    replay = _Replay(book, observations)
    replay.run(progress)
    p1_at = {number: seen.p1_at for number, seen in replay.p1.seen.items()}
    run = RunInfo(
        source=source,
        note=note,
        start=observations[0].at if observations else None,
        end=replay.end,
        incidents=len({o.incident.sys_id for o in observations}),
        events=len(observations),
        evaluations=replay.evaluations,
        rechecks=replay.rechecks,
    )
    capped = {name: len(numbers) for name, numbers in replay.capped.items()}
    p1_incidents = replay.p1.lists(replay.records, p1_at)
    return summarise(book.file, run, replay.records, capped, p1_at, p1_incidents)


def _rising_durations(rules: Sequence[Rule]) -> set[timedelta]:
    """Thresholds after which a condition can become true with nothing else changing.

    Unlike :attr:`RuleBook.durations` this leaves out cluster windows (a window passing only ever
    makes a cluster smaller) and looks inside clusters' ``where``.
    """
    out: set[timedelta] = set()
    for rule in rules:
        for _loc, node in walk_conditions(rule.when, ()):
            if isinstance(node, FieldCondition) and node.held_for is not None:
                out.add(node.held_for)
            elif isinstance(node, OpenForCondition):
                out.add(node.open_for)
            elif isinstance(node, UnassignedForCondition):
                out.add(node.unassigned_for)
    return {d for d in out if d > timedelta(0)}


def _with(incident: Incident, fields: dict[str, str]) -> Incident:
    return Incident(
        incident.sys_id,
        incident.number,
        incident.mod_count,
        incident.sys_updated_on,
        MappingProxyType({**incident.fields, **fields}),
    )


def _count(times: deque[datetime], at: datetime) -> int:
    while times and times[0] <= at - HOUR:
        times.popleft()
    return len(times)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
