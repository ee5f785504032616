"""Promotion rules: decide whether an incident becomes a major incident, and explain why. Pure.

ServiceNow's own semantics (trigger rules, ``major_incident_state``): rules are tried in order and
the first match wins unless it says ``continue``; an incident is never evaluated when it has a
parent, is inactive or resolved, or is already proposed or accepted; a rejected or canceled one only
by rules that allow reconsidering, and only after a material field changed.

Two paths share one meaning: :meth:`RuleBook.decide` runs compiled predicates (fast enough for a
back-test of a year of history), :meth:`RuleBook.explain` runs the explaining evaluator of
:mod:`connector.rules.conditions` (which condition failed, with which actual value).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from connector.config.conditions import (
    AllCondition,
    AnyCondition,
    ClusterCondition,
    Condition,
    FieldCondition,
    NotCondition,
    OpenForCondition,
    UnassignedForCondition,
)
from connector.config.fieldcheck import walk_conditions
from connector.config.rules_file import PromotionMode, Rule, RulesFile
from connector.core.models import Incident
from connector.core.templates import render
from connector.core.times import servicenow_time_or_none
from connector.core.vocabulary import FINISHED_STATES
from connector.rules.conditions import (
    Check,
    Context,
    Outcome,
    compare,
    condition_key,
    evaluate,
)

Predicate = Callable[[Incident, Context], bool]
ACTIVE_MIM_STATES = frozenset({"proposed", "accepted"})
SETTLED_MIM_STATES = frozenset({"rejected", "canceled"})


@dataclass(frozen=True)
class Eligibility:
    """Whether rules may look at an incident at all, and why not."""

    eligible: bool
    reason: str
    reconsider_only: bool = False
    """Rejected or canceled before, with a material change since: only rules that allow reconsidering."""


def eligibility(incident: Incident, *, material_changed: bool = False) -> Eligibility:
    """ServiceNow's trigger-rule preconditions, plus "resolved incidents are not proposed"."""
    if incident.get("parent_incident"):
        return Eligibility(False, "has a parent incident")
    if incident.get("active") == "false":
        return Eligibility(False, "is inactive")
    if incident.get("state") in FINISHED_STATES:
        return Eligibility(False, "is resolved, closed or canceled")
    mim_state = incident.get("major_incident_state")
    if mim_state in ACTIVE_MIM_STATES:
        return Eligibility(False, f"is already {mim_state} as a major incident")
    if mim_state in SETTLED_MIM_STATES:
        if not material_changed:
            return Eligibility(False, f"was {mim_state} and nothing material changed since")
        return Eligibility(True, f"was {mim_state}; a material field changed since", reconsider_only=True)
    return Eligibility(True, "eligible")


@dataclass(frozen=True)
class CompiledRule:
    """A rule, its position and its compiled condition."""

    index: int
    rule: Rule
    matches: Predicate


@dataclass(frozen=True)
class Decision:
    """What the rules decided for one incident."""

    incident: Incident
    eligibility: Eligibility
    matched: tuple[CompiledRule, ...] = ()

    @property
    def rule(self) -> Rule | None:
        """The first matching rule (the one that decides the action and mode)."""
        return self.matched[0].rule if self.matched else None

    @property
    def action(self) -> str | None:
        """``promote`` if any matched rule promotes, else ``propose``; ``None`` without a match."""
        if not self.matched:
            return None
        return "promote" if any(m.rule.then.action == "promote" for m in self.matched) else "propose"

    def mode(self, default: PromotionMode) -> PromotionMode:
        """The first matched rule's mode, or the settings' default."""
        rule = self.rule
        return (rule.then.mode if rule and rule.then.mode else None) or default

    def dry_run(self, default: bool) -> bool:
        """Whether the deciding rule (or, without its own setting, the whole book) is in dry-run."""
        rule = self.rule
        return rule.dry_run if rule is not None and rule.dry_run is not None else default

    @property
    def fields(self) -> dict[str, str]:
        """Fields to set: earlier rules win where two matched rules set the same field (templates)."""
        merged: dict[str, str] = {}
        for compiled in reversed(self.matched):
            merged.update(compiled.rule.then.set)
        return merged

    @property
    def engage(self) -> tuple[str, ...]:
        """Suppliers the matched rules engage."""
        return tuple(dict.fromkeys(s for m in self.matched for s in m.rule.then.engage))

    @property
    def cluster(self) -> ClusterCondition | None:
        """The cluster condition of the deciding rule, if it has one."""
        rule = self.rule
        return find_cluster(rule.when) if rule is not None else None


@dataclass(frozen=True)
class RuleExplanation:
    """One rule as evaluated by the explaining path."""

    index: int
    rule: Rule
    outcome: Outcome | None
    """``None``: not evaluated (disabled, or not allowed to reconsider)."""
    note: str = ""


class RuleBook:
    """The rules of ``mappings/rules.yaml``, compiled."""

    def __init__(self, rules: RulesFile) -> None:
        self.file = rules
        self.settings = rules.settings
        self.compiled = tuple(
            CompiledRule(index, rule, compile_condition(rule.when))
            for index, rule in enumerate(rules.rules, start=1)
        )
        durations: set[timedelta] = set()
        for rule in rules.rules:
            durations |= _durations(rule.when)
        self.durations = frozenset(durations)
        """Every time threshold the rules use (a back-test re-checks incidents when one may be crossed)."""
        self.uses_clusters = any(find_cluster(rule.when) for rule in rules.rules)
        self.held: tuple[tuple[str, Callable[[Incident], bool]], ...] = tuple(_held(rules))
        """Each ``for:`` condition's key and its test without the duration (the daemon tracks since when)."""

    def decide(self, incident: Incident, context: Context, eligible: Eligibility) -> Decision:
        """Apply the rules in order (fast path): the first match, plus later ones while ``continue`` says so."""
        if not eligible.eligible:
            return Decision(incident, eligible)
        matched: list[CompiledRule] = []
        for compiled in self.compiled:
            rule = compiled.rule
            if not rule.enabled or (eligible.reconsider_only and not rule.reconsider_rejected):
                continue
            if compiled.matches(incident, context):
                matched.append(compiled)
                if not rule.continue_:
                    break
        return Decision(incident, eligible, tuple(matched))

    def explain(
        self, incident: Incident, context: Context, eligible: Eligibility, *, tree: bool = False
    ) -> list[RuleExplanation]:
        """Every rule up to the deciding one (all of them with ``tree``), with each leaf's actual value."""
        out: list[RuleExplanation] = []
        for compiled in self.compiled:
            rule = compiled.rule
            if not rule.enabled:
                out.append(RuleExplanation(compiled.index, rule, None, "disabled"))
                continue
            if eligible.reconsider_only and not rule.reconsider_rejected:
                out.append(
                    RuleExplanation(compiled.index, rule, None, "does not reconsider rejected incidents")
                )
                continue
            outcome = evaluate(rule.when, incident, context, path="when", full=tree)
            out.append(RuleExplanation(compiled.index, rule, outcome))
            if outcome.matched and not rule.continue_ and not tree:
                break
        return out

    def work_note(self, decision: Decision, context: Context, ref_line: str) -> str:
        """The work note recording a decision: the rule, and the condition values that matched."""
        rule = decision.rule
        assert rule is not None
        outcome = evaluate(rule.when, decision.incident, context, full=True)
        passed = [check for check in outcome.checks if check.passed]
        matched = "\n".join(f"- {check.description}: {check.actual}" for check in passed)
        values = {
            **decision.incident.values(),
            "rule.name": rule.name,
            "rule.description": rule.description,
            "rule.action": decision.action or "",
            "matched": matched,
        }
        return f"{render(rule.then.work_note, values)}\n{ref_line}"


def describe_checks(checks: tuple[Check, ...]) -> list[str]:
    """``✓ priority equals 1 — actual '1'`` lines."""
    return [f"{'✓' if c.passed else '✗'} {c.description} — actual {c.actual}" for c in checks]


def find_cluster(condition: Condition) -> ClusterCondition | None:
    """The first cluster condition in a tree (a rule clusters on at most one field)."""
    if isinstance(condition, ClusterCondition):
        return condition
    if isinstance(condition, AllCondition | AnyCondition):
        for child in condition.all if isinstance(condition, AllCondition) else condition.any:
            if (found := find_cluster(child)) is not None:
                return found
    return None


# --- compilation: the fast path -------------------------------------------------------------------------


def compile_condition(node: Condition) -> Predicate:
    """A predicate with the same meaning as :func:`connector.rules.conditions.evaluate`, without explanations."""
    if isinstance(node, AllCondition):
        parts = tuple(compile_condition(child) for child in node.all)
        return lambda incident, context: all(part(incident, context) for part in parts)
    if isinstance(node, AnyCondition):
        parts = tuple(compile_condition(child) for child in node.any)
        return lambda incident, context: any(part(incident, context) for part in parts)
    if isinstance(node, NotCondition):
        inner = compile_condition(node.not_)
        return lambda incident, context: not inner(incident, context)
    if isinstance(node, FieldCondition):
        return _compile_field(node)
    if isinstance(node, OpenForCondition):
        threshold = node.open_for

        def open_for(incident: Incident, context: Context) -> bool:
            opened = servicenow_time_or_none(incident.get("opened_at"))
            return opened is not None and context.now - opened >= threshold

        return open_for
    if isinstance(node, UnassignedForCondition):
        limit = node.unassigned_for

        def unassigned_for(incident: Incident, context: Context) -> bool:
            if incident.get("assigned_to"):
                return False
            since = context.held_since(incident, "unassigned")
            return since is not None and context.now - since >= limit

        return unassigned_for
    if isinstance(node, ClusterCondition):
        cluster, by, at_least = node, node.cluster.by, node.cluster.at_least
        return lambda incident, context: (
            bool(incident.get(by)) and context.cluster_size(incident, cluster) >= at_least
        )
    raise TypeError(f"unknown condition {type(node).__name__}")


def _compile_field(node: FieldCondition) -> Predicate:
    name, operator, operand = node.field, node.operator, node.operand
    base = _fast_compare(name, operator, operand)
    if node.held_for is None:
        return base
    key, held_for = condition_key(node), node.held_for

    def held(incident: Incident, context: Context) -> bool:
        if not base(incident, context):
            return False
        since = context.held_since(incident, key)
        return since is not None and context.now - since >= held_for

    return held


def _fast_compare(name: str, operator: str, operand: object) -> Predicate:
    if operator == "equals":
        return lambda incident, _context: incident.get(name) == operand
    if operator == "not_equals":
        return lambda incident, _context: incident.get(name) != operand
    if operator in ("in", "not_in"):
        values = frozenset(operand if isinstance(operand, tuple) else (str(operand),))
        if operator == "in":
            return lambda incident, _context: incident.get(name) in values
        return lambda incident, _context: incident.get(name) not in values
    if operator == "contains":
        needle = str(operand).lower()
        return lambda incident, _context: needle in incident.get(name).lower()
    if operator == "regex":
        pattern = re.compile(str(operand))
        return lambda incident, _context: pattern.search(incident.get(name)) is not None
    return lambda incident, _context: compare(operator, incident.get(name), operand)[0]


def _without_context(test: Predicate) -> Callable[[Incident], bool]:
    def holds(incident: Incident) -> bool:
        return test(incident, cast(Context, None))

    return holds


def _held(rules: RulesFile) -> list[tuple[str, Callable[[Incident], bool]]]:
    out: list[tuple[str, Callable[[Incident], bool]]] = []
    for rule in rules.rules:
        for _loc, node in walk_conditions(rule.when, ()):
            if isinstance(node, FieldCondition) and node.held_for is not None:
                test = _fast_compare(node.field, node.operator, node.operand)
                out.append((condition_key(node), _without_context(test)))
    return out


def _durations(node: Condition) -> set[timedelta]:
    if isinstance(node, AllCondition | AnyCondition):
        out: set[timedelta] = set()
        for child in node.all if isinstance(node, AllCondition) else node.any:
            out |= _durations(child)
        return out
    if isinstance(node, NotCondition):
        return _durations(node.not_)
    if isinstance(node, FieldCondition) and node.held_for is not None:
        return {node.held_for}
    if isinstance(node, OpenForCondition):
        return {node.open_for}
    if isinstance(node, UnassignedForCondition):
        return {node.unassigned_for}
    if isinstance(node, ClusterCondition):
        return {node.cluster.within}
    return set()


def material_values(incident: Incident, fields: tuple[str, ...]) -> dict[str, str]:
    """The values of the settings' material fields (what must change before reconsidering)."""
    return {name: incident.get(name) for name in fields}


def changed_materially(before: Mapping[str, str], incident: Incident, fields: tuple[str, ...]) -> bool:
    """True when a material field differs from ``before``."""
    return any(before.get(name, "") != incident.get(name) for name in fields)
