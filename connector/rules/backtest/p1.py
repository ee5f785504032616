"""The incidents of a back-test that reached priority 1: which decision caught each, and why the rest were missed. Pure.

:class:`P1Watch` follows the replay: it takes every observation (when each incident first reached
priority 1, when it opened, its short description) and hears of every evaluation at priority 1
that did not end in a decision. For a missed incident it reports the *nearest rules*: the enabled
rules with the fewest conditions standing in the way (an ``any`` counts its easiest branch; every
rule tied at that count), and those conditions with their actual values, as
:func:`connector.rules.conditions.evaluate` explains them. The last such evaluation of an incident is the
one reported: its latest state at priority 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from connector.config.conditions import AllCondition, AnyCondition, ClusterCondition, Condition
from connector.config.fieldcheck import walk_conditions
from connector.config.rules_file import Rule
from connector.core.models import Incident
from connector.rules.backtest.summary import CaughtP1, DecisionRecord, MissedP1, MissReason, NearMiss
from connector.rules.book import RuleBook, eligibility
from connector.rules.conditions import Check, Context, evaluate

UNASSIGNED = "unassigned"
"""The context's key for "unassigned since" (as :mod:`connector.rules.backtest.replay` tracks it)."""


@dataclass
class _Moment:
    """An evaluation's inputs from the replay's context, kept to be explained later (a :class:`Context`)."""

    now: datetime
    held: Mapping[str, datetime | None]
    clusters: Mapping[int, int]
    """Cluster size by the cluster condition's identity."""
    incident: Incident

    def held_since(self, incident: Incident, key: str) -> datetime | None:
        """As the replay's context answered at ``now``."""
        return self.held.get(key)

    def cluster_size(self, incident: Incident, cluster: ClusterCondition) -> int:
        """As the replay's context answered at ``now``."""
        return self.clusters.get(id(cluster), 1)


@dataclass
class _Seen:
    opened_at: datetime
    p1_at: datetime
    short_description: str
    not_eligible: str
    """Why the incident was not eligible when it reached P1 ("" when it was)."""


class P1Watch:
    """What the replay saw of incidents at priority 1; :meth:`lists` sorts them into caught and missed."""

    def __init__(self, book: RuleBook) -> None:
        self.book = book
        self.seen: dict[str, _Seen] = {}
        self.misses: dict[str, tuple[MissReason, str, tuple[NearMiss, ...]]] = {}
        self.moments: dict[str, _Moment] = {}
        self.held_keys = (UNASSIGNED, *(key for key, _test in book.held))
        self.clusters = tuple(
            node
            for compiled in book.compiled
            if compiled.rule.enabled
            for _loc, node in walk_conditions(compiled.rule.when, ())
            if isinstance(node, ClusterCondition)
        )

    def observe(self, incident: Incident, at: datetime, opened_at: datetime) -> None:
        """An observation: the first at priority 1 sets the P1 time; the description is kept current."""
        number = incident.number
        seen = self.seen.get(number)
        if seen is not None:
            seen.short_description = incident.get("short_description") or seen.short_description
        elif incident.get("priority") == "1":
            eligible = eligibility(incident)
            reason = "" if eligible.eligible else eligible.reason
            self.seen[number] = _Seen(opened_at, at, incident.get("short_description"), reason)

    def unmatched(self, incident: Incident, context: Context) -> None:
        """An evaluation at priority 1 (at ``context.now``) where no rule matched.

        What the rules read of the context is kept, to be explained only if the incident ends up
        missed: explaining every such evaluation would cost the replay a third of its time.
        """
        held = {key: context.held_since(incident, key) for key in self.held_keys}
        clusters = {
            id(cluster): context.cluster_size(incident, cluster)
            for cluster in self.clusters
            if incident.get(cluster.cluster.by)
        }
        self.moments[incident.number] = _Moment(context.now, held, clusters, incident)
        self.misses[incident.number] = ("no_rule_matched", "no rule matched", ())

    def nearest(self, number: str) -> tuple[NearMiss, ...]:
        """The enabled rules fewest blocking conditions away at the incident's last unmatched evaluation."""
        moment = self.moments.get(number)
        if moment is None:
            return ()
        misses = [
            NearMiss(compiled.rule.name, moment.now, blocking(compiled.rule.when, moment.incident, moment))
            for compiled in self.book.compiled
            if compiled.rule.enabled
        ]
        fewest = min((len(miss.failed) for miss in misses), default=0)
        return tuple(miss for miss in misses if len(miss.failed) == fewest)

    def capped(self, incident: Incident, rule: Rule, at: datetime) -> None:
        """An evaluation at priority 1 where ``rule`` matched and a cap held the decision back."""
        detail = f"rule {rule.name} matched at {at:%Y-%m-%d %H:%M}; a cap held it back"
        self.misses[incident.number] = ("capped", detail, ())
        self.moments.pop(incident.number, None)

    def lists(
        self, records: Sequence[DecisionRecord], p1_at: Mapping[str, datetime]
    ) -> tuple[tuple[CaughtP1, ...], tuple[MissedP1, ...]]:
        """The P1 incidents of ``p1_at`` (number -> P1 time), caught and missed.

        A caught one is credited to the first decision covering it. Both lists are in the order the
        incidents reached priority 1.
        """
        first: dict[str, DecisionRecord] = {}
        for record in sorted(records, key=lambda r: r.at):
            for number in record.members:
                first.setdefault(number, record)
        caught: list[CaughtP1] = []
        missed: list[MissedP1] = []
        for number in sorted(p1_at, key=lambda n: (p1_at[n], n)):
            seen = self.seen.get(number)
            opened = seen.opened_at if seen else p1_at[number]
            text = seen.short_description if seen else ""
            decision = first.get(number)
            if decision is not None:
                caught.append(
                    CaughtP1(
                        *(number, opened, p1_at[number], text, decision.rule, decision.action, decision.at),
                        major=decision.major,
                        as_child=number != decision.major,
                    )
                )
                continue
            reason, detail, _none = self.misses.get(number) or (
                "not_evaluated",
                f"never evaluated at P1: {seen.not_eligible if seen and seen.not_eligible else 'not eligible'}",
                (),
            )
            nearest = self.nearest(number) if reason == "no_rule_matched" else ()
            missed.append(MissedP1(number, opened, p1_at[number], text, reason, detail, nearest))
        return tuple(caught), tuple(missed)


def blocking(condition: Condition, incident: Incident, context: Context) -> tuple[Check, ...]:
    """The leaves that keep ``condition`` from holding, with actual values; empty when it holds.

    Every failing branch of an ``all``, the branch of an ``any`` with the fewest of them.
    """
    if isinstance(condition, AllCondition):
        return tuple(check for child in condition.all for check in blocking(child, incident, context))
    if isinstance(condition, AnyCondition):
        options = [blocking(child, incident, context) for child in condition.any]
        return min(options, key=len) if options and all(options) else ()
    outcome = evaluate(condition, incident, context, full=True)
    return () if outcome.matched else outcome.failed
