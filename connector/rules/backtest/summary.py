"""What a rules back-test found: per-rule figures and the comparison with history. Pure.

:mod:`connector.rules.backtest.replay` replays history and records every decision the rules would have made
(:class:`DecisionRecord`); :func:`summarise` turns those records into the figures an admin reads
(:class:`BacktestResult`). Durations are seconds; weeks are ISO weeks (``2016-W09``).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from connector.config.rules_file import PromotionMode, Rule, RulesFile
from connector.rules.conditions import Check

TOP = 5
NO_VALUE = "(none)"
MissReason = Literal["no_rule_matched", "capped", "not_evaluated"]


@dataclass(frozen=True)
class DecisionRecord:
    """One decision the rules would have made, as applied in the simulation."""

    rule: str
    """The deciding rule (the first that matched)."""
    action: str
    """``propose`` or ``promote``."""
    mode: PromotionMode
    at: datetime
    """Simulated time of the decision."""
    trigger: str
    """The incident whose evaluation made the decision."""
    major: str | None
    """The incident that became the major incident (promote-in-place); ``None``: a new parent was created."""
    members: tuple[str, ...]
    """Every incident the decision covers, earliest-opened first (a cluster, or the trigger alone)."""
    opened_at: datetime
    """When the earliest member opened: the start of what the decision is about."""
    dry_run: bool
    """Decided by a rule in dry-run: logged only, nothing would have been written."""
    ci: str = ""
    group: str = ""

    @property
    def children(self) -> tuple[str, ...]:
        """Members that became children of the major incident."""
        return tuple(number for number in self.members if number != self.major)

    @property
    def seconds_from_open(self) -> float:
        """Time from the earliest member's opening to the decision."""
        return (self.at - self.opened_at).total_seconds()


@dataclass(frozen=True)
class TimeStats:
    """Median, 90th percentile (nearest rank) and maximum of durations in seconds; ``None`` without data."""

    count: int = 0
    median: float | None = None
    p90: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, seconds: Iterable[float]) -> TimeStats:
        """Statistics of ``seconds``."""
        values = sorted(seconds)
        if not values:
            return cls()
        p90 = values[max(0, math.ceil(0.9 * len(values)) - 1)]
        return cls(len(values), float(statistics.median(values)), p90, values[-1])


@dataclass(frozen=True)
class RuleSummary:
    """What one rule would have done over the replayed period."""

    index: int
    name: str
    description: str
    action: str
    mode: PromotionMode
    enabled: bool
    dry_run: bool
    """The rule's effective dry-run setting (its own, else the settings')."""
    max_per_hour: int | None
    proposals: int = 0
    promotions: int = 0
    dry_run_decisions: int = 0
    """Of the proposals and promotions, those made in dry-run."""
    capped: int = 0
    """Incidents a cap (the rule's ``max_per_hour`` or the global one) held back at least once."""
    children: int = 0
    new_parents: int = 0
    """Parent incidents created (``create-parent``)."""
    time_to_decision: TimeStats = TimeStats()
    per_week: Mapping[str, int] = field(default_factory=dict)
    top_cis: tuple[tuple[str, int], ...] = ()
    top_groups: tuple[tuple[str, int], ...] = ()
    on_p1: int = 0
    """Decisions covering at least one incident that reached priority 1 in the log."""
    not_p1: int = 0
    """Decisions about incidents none of which ever reached priority 1."""

    @property
    def decisions(self) -> int:
        """Proposals plus promotions."""
        return self.proposals + self.promotions


@dataclass(frozen=True)
class NearMiss:
    """The rule that came closest to deciding on a P1 incident, and what stood in its way."""

    rule: str
    at: datetime
    """Simulated time of the evaluation (the incident's last one at priority 1)."""
    failed: tuple[Check, ...]
    """The conditions that did not hold, with their actual values."""


@dataclass(frozen=True)
class CaughtP1:
    """An incident that reached priority 1 and the first decision that covered it."""

    number: str
    opened_at: datetime
    p1_at: datetime
    short_description: str
    rule: str
    action: str
    decided_at: datetime
    major: str | None
    """The decision's major incident; ``None``: a new parent was created."""
    as_child: bool
    """Covered as a child of another incident (a cluster, or a new parent)."""

    @property
    def seconds_from_open(self) -> float:
        """Time from this incident's opening to the decision."""
        return (self.decided_at - self.opened_at).total_seconds()

    @property
    def lead_seconds(self) -> float:
        """P1 time minus decision time: positive when the decision came before the priority."""
        return (self.p1_at - self.decided_at).total_seconds()


@dataclass(frozen=True)
class MissedP1:
    """An incident that reached priority 1 and that no decision covered."""

    number: str
    opened_at: datetime
    p1_at: datetime
    short_description: str
    reason: MissReason
    """``no_rule_matched`` at its evaluations at P1; ``capped``: a rule matched, a cap held it back;
    ``not_evaluated``: never eligible while at P1 (e.g. resolved in the same update)."""
    detail: str
    """The reason in words (the capping rule, or why it was not eligible)."""
    nearest: tuple[NearMiss, ...] = ()
    """For ``no_rule_matched``: the rules that came closest at the last evaluation at P1 (fewest
    conditions in the way; all those tied, in rule order)."""


@dataclass(frozen=True)
class P1Comparison:
    """The rules' decisions against the incidents that actually reached priority 1."""

    reached: int = 0
    """Incidents whose recorded priority was 1 at some point."""
    caught: int = 0
    """Of those, covered by a decision (as the major incident or as a child)."""
    caught_as_child: int = 0
    caught_before: int = 0
    """Caught strictly before they reached priority 1."""
    lead_time: TimeStats = TimeStats()
    """P1 time minus decision time: positive when the rule was earlier than the priority."""
    decisions: int = 0
    decisions_not_p1: int = 0
    """Decisions none of whose incidents ever reached priority 1."""
    caught_incidents: tuple[CaughtP1, ...] = ()
    """The caught ones, in the order they reached priority 1."""
    missed_incidents: tuple[MissedP1, ...] = ()
    """The missed ones, in the order they reached priority 1."""

    @property
    def missed(self) -> int:
        """P1 incidents no decision covered."""
        return self.reached - self.caught


@dataclass(frozen=True)
class RunInfo:
    """What was replayed and how much work it took."""

    source: str
    """Where the history came from (a file, ``builtin``, or a live instance)."""
    note: str = ""
    """A caveat for the report header (e.g. live data is current state, not history)."""
    start: datetime | None = None
    end: datetime | None = None
    incidents: int = 0
    events: int = 0
    evaluations: int = 0
    """Rule-book evaluations of eligible incidents (at events and at re-checks)."""
    rechecks: int = 0
    """Of the evaluations, those made at a re-check time between events."""


@dataclass(frozen=True)
class BacktestResult:
    """Everything a back-test reports."""

    run: RunInfo
    settings: Mapping[str, object]
    """The rule book's ``dry_run``, ``mode`` and ``max_proposals_per_hour``."""
    rules: tuple[RuleSummary, ...]
    p1: P1Comparison
    weeks: tuple[str, ...]
    """Every ISO week of the replayed period, in order (weeks without decisions included)."""
    decisions: tuple[DecisionRecord, ...]


def iso_week(moment: datetime) -> str:
    """``2016-W09``."""
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_between(start: datetime | None, end: datetime | None) -> tuple[str, ...]:
    """Every ISO week from ``start`` to ``end`` inclusive."""
    if start is None or end is None:
        return ()
    monday = start - timedelta(days=start.weekday())
    weeks: list[str] = []
    while monday <= end:
        weeks.append(iso_week(monday))
        monday += timedelta(days=7)
    return tuple(weeks)


def summarise(
    rules: RulesFile,
    run: RunInfo,
    records: Sequence[DecisionRecord],
    capped: Mapping[str, int],
    p1_at: Mapping[str, datetime],
    p1_incidents: tuple[Sequence[CaughtP1], Sequence[MissedP1]] = ((), ()),
) -> BacktestResult:
    """Per-rule figures and the P1 comparison from the simulation's records.

    ``capped``: rule name -> incidents a cap held back; ``p1_at``: incident -> when its recorded
    priority first was 1; ``p1_incidents``: those incidents caught and missed, one by one.
    """
    settings = rules.settings
    by_rule: dict[str, list[DecisionRecord]] = {}
    for record in records:
        by_rule.setdefault(record.rule, []).append(record)
    summaries = tuple(
        _rule_summary(index, rule, rules, by_rule.get(rule.name, []), capped.get(rule.name, 0), p1_at)
        for index, rule in enumerate(rules.rules, start=1)
    )
    return BacktestResult(
        run=run,
        settings={
            "dry_run": settings.dry_run,
            "mode": settings.mode,
            "max_proposals_per_hour": settings.max_proposals_per_hour,
        },
        rules=summaries,
        p1=compare_with_p1(records, p1_at, *p1_incidents),
        weeks=weeks_between(run.start, run.end),
        decisions=tuple(records),
    )


def compare_with_p1(
    records: Sequence[DecisionRecord],
    p1_at: Mapping[str, datetime],
    caught_incidents: Sequence[CaughtP1] = (),
    missed_incidents: Sequence[MissedP1] = (),
) -> P1Comparison:
    """Which P1 incidents a decision covered, how early, and how many decisions hit no P1 at all."""
    first: dict[str, tuple[datetime, bool]] = {}
    for record in sorted(records, key=lambda r: r.at):
        for number in record.members:
            if number in p1_at and number not in first:
                first[number] = (record.at, number != record.major)
    leads = [(p1_at[number] - at).total_seconds() for number, (at, _child) in first.items()]
    return P1Comparison(
        reached=len(p1_at),
        caught=len(first),
        caught_as_child=sum(1 for _at, child in first.values() if child),
        caught_before=sum(1 for lead in leads if lead > 0),
        lead_time=TimeStats.of(leads),
        decisions=len(records),
        decisions_not_p1=sum(1 for r in records if not any(n in p1_at for n in r.members)),
        caught_incidents=tuple(caught_incidents),
        missed_incidents=tuple(missed_incidents),
    )


def _rule_summary(
    index: int,
    rule: Rule,
    rules: RulesFile,
    records: Sequence[DecisionRecord],
    capped: int,
    p1_at: Mapping[str, datetime],
) -> RuleSummary:
    settings = rules.settings
    on_p1 = sum(1 for r in records if any(n in p1_at for n in r.members))
    return RuleSummary(
        index=index,
        name=rule.name,
        description=rule.description,
        action=rule.then.action,
        mode=rule.then.mode or settings.mode,
        enabled=rule.enabled,
        dry_run=rule.dry_run if rule.dry_run is not None else settings.dry_run,
        max_per_hour=rule.max_per_hour,
        proposals=sum(1 for r in records if r.action == "propose"),
        promotions=sum(1 for r in records if r.action == "promote"),
        dry_run_decisions=sum(1 for r in records if r.dry_run),
        capped=capped,
        children=sum(len(r.children) for r in records),
        new_parents=sum(1 for r in records if r.major is None),
        time_to_decision=TimeStats.of(r.seconds_from_open for r in records),
        per_week=dict(sorted(Counter(iso_week(r.at) for r in records).items())),
        top_cis=_top(r.ci for r in records),
        top_groups=_top(r.group for r in records),
        on_p1=on_p1,
        not_p1=len(records) - on_p1,
    )


def _top(values: Iterable[str]) -> tuple[tuple[str, int], ...]:
    counts = Counter(value or NO_VALUE for value in values)
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP])
