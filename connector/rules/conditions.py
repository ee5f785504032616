"""Evaluate the condition language (``connector.config.conditions``) against an incident. Pure.

``evaluate(condition, incident, context)`` returns an :class:`Outcome`: whether it matched and,
for every leaf that was looked at, what was compared with what - the material for "explain"
output and for the work note that names the values which matched. Time comes from
``context.now``; conditions that need memory (``for``, ``unassigned_for``) or other incidents
(``cluster``) ask the context, so the evaluator itself holds no state.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

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
from connector.config.types import format_duration
from connector.core.models import Incident
from connector.core.times import servicenow_time_or_none


@dataclass(frozen=True)
class Check:
    """One leaf condition as evaluated: ``priority equals 1`` with ``actual='1'``."""

    path: str
    description: str
    actual: str
    passed: bool


@dataclass(frozen=True)
class Outcome:
    """The result of a condition tree, with every leaf that was evaluated, in order."""

    matched: bool
    checks: tuple[Check, ...] = ()

    @property
    def failed(self) -> tuple[Check, ...]:
        """The leaves that did not hold."""
        return tuple(check for check in self.checks if not check.passed)


class Context(Protocol):
    """What conditions may ask beyond the incident itself."""

    now: datetime

    def held_since(self, incident: Incident, key: str) -> datetime | None:
        """When the condition identified by ``key`` started holding without a break (``None``: not known to)."""
        ...

    def cluster_size(self, incident: Incident, cluster: ClusterCondition) -> int:
        """How many incidents (this one included) share ``cluster.by`` with it inside the window."""
        ...


@dataclass
class SimpleContext:
    """A context without memory: ``for``/``unassigned_for`` use ``held`` and clusters ``clusters``."""

    now: datetime
    held: Mapping[str, datetime] = field(default_factory=dict)
    clusters: Mapping[str, int] = field(default_factory=dict)

    def held_since(self, incident: Incident, key: str) -> datetime | None:
        """Looked up by ``<sys_id>:<key>``."""
        return self.held.get(f"{incident.sys_id}:{key}")

    def cluster_size(self, incident: Incident, cluster: ClusterCondition) -> int:
        """Looked up by ``<by>=<value>``; 1 (the incident alone) when unknown."""
        return self.clusters.get(f"{cluster.cluster.by}={incident.get(cluster.cluster.by)}", 1)


def evaluate(
    condition: Condition, incident: Incident, context: Context, path: str = "when", *, full: bool = False
) -> Outcome:
    """Evaluate ``condition`` for ``incident``.

    ``any`` stops at the first match and ``all`` at the first miss, unless ``full`` asks for every
    leaf (the ``--tree`` view).
    """
    checks: list[Check] = []
    matched = _eval(condition, incident, context, path, checks, full)
    return Outcome(matched, tuple(checks))


def _eval(
    node: Condition, incident: Incident, context: Context, path: str, checks: list[Check], full: bool
) -> bool:
    if isinstance(node, AllCondition | AnyCondition):
        kind = "all" if isinstance(node, AllCondition) else "any"
        children = node.all if isinstance(node, AllCondition) else node.any
        results = (
            _eval(child, incident, context, f"{path}.{kind}[{i}]", checks, full)
            for i, child in enumerate(children)
        )
        values = list(results) if full else results
        return all(values) if kind == "all" else any(values)
    if isinstance(node, NotCondition):
        inner: list[Check] = []
        result = not _eval(node.not_, incident, context, f"{path}.not", inner, full)
        checks.extend(Check(c.path, f"not ({c.description})", c.actual, not c.passed) for c in inner)
        return result
    check = _leaf(node, incident, context, path)
    checks.append(check)
    return check.passed


def _leaf(node: Condition, incident: Incident, context: Context, path: str) -> Check:
    if isinstance(node, FieldCondition):
        return _field(node, incident, context, path)
    if isinstance(node, OpenForCondition):
        opened = servicenow_time_or_none(incident.get("opened_at"))
        age = context.now - opened if opened else None
        passed = age is not None and age >= node.open_for
        return Check(path, f"open for {format_duration(node.open_for)}", _age(age), passed)
    if isinstance(node, UnassignedForCondition):
        since = context.held_since(incident, "unassigned") if not incident.get("assigned_to") else None
        age = context.now - since if since else None
        passed = age is not None and age >= node.unassigned_for
        actual = "assigned" if incident.get("assigned_to") else f"unassigned for {_age(age)}"
        return Check(path, f"unassigned for {format_duration(node.unassigned_for)}", actual, passed)
    if isinstance(node, ClusterCondition):
        spec = node.cluster
        size = context.cluster_size(incident, node) if incident.get(spec.by) else 0
        description = (
            f"at least {spec.at_least} incidents share {spec.by} within {format_duration(spec.within)}"
        )
        return Check(
            path,
            description,
            f"{size} with {spec.by}={incident.get(spec.by) or '(empty)'}",
            size >= spec.at_least,
        )
    raise TypeError(f"unknown condition {type(node).__name__}")


def _field(node: FieldCondition, incident: Incident, context: Context, path: str) -> Check:
    actual = incident.get(node.field)
    passed, why = compare(node.operator, actual, node.operand)
    description = f"{node.field} {node.operator.replace('_', ' ')} {_show(node.operand)}"
    if node.held_for is not None:
        description += f" for {format_duration(node.held_for)}"
        since = context.held_since(incident, condition_key(node)) if passed else None
        held = context.now - since if since else timedelta(0)
        passed = passed and held >= node.held_for
        why = f"{why}, held {_age(held)}" if why else f"held {_age(held)}"
    return Check(path, description, f"{actual!r}" + (f" ({why})" if why else ""), passed)


def compare(operator: str, actual: str, operand: object) -> tuple[bool, str]:
    """Apply one field operator to ServiceNow's string value; the second item explains a refusal."""
    if operator == "equals":
        return actual == operand, ""
    if operator == "not_equals":
        return actual != operand, ""
    if operator == "in":
        return actual in _values(operand), ""
    if operator == "not_in":
        return actual not in _values(operand), ""
    if operator == "contains":
        return str(operand).lower() in actual.lower(), ""
    if operator == "regex":
        return _pattern(str(operand)).search(actual) is not None, ""
    if operator == "empty":
        return (actual == "") == bool(operand), ""
    try:
        number = float(actual)
    except ValueError:
        return False, "not a number"
    bound = float(operand)  # type: ignore[arg-type]
    results = {"gt": number > bound, "gte": number >= bound, "lt": number < bound, "lte": number <= bound}
    return results[operator], ""


def condition_key(node: FieldCondition) -> str:
    """A stable key for remembering since when a ``for:`` condition holds."""
    text = f"{node.field}|{node.operator}|{_show(node.operand)}"
    return "held:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


def _values(operand: object) -> Sequence[str]:
    return operand if isinstance(operand, tuple) else (str(operand),)


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _show(operand: object) -> str:
    if isinstance(operand, tuple):
        return "[" + ", ".join(operand) + "]"
    return str(operand).lower() if isinstance(operand, bool) else str(operand)


def _age(age: timedelta | None) -> str:
    if age is None:
        return "unknown"
    return format_duration(timedelta(seconds=int(age.total_seconds())))
