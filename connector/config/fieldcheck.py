"""Checks on what config files say about ServiceNow fields: paths, choice values, templates, conditions.

ServiceNow silently drops a query condition on a misspelt field, so a typo in a rule would make
it never (or always) match without a word. Every field name an admin writes is checked here
against :mod:`connector.core.vocabulary` before the daemon starts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping

from connector.config.conditions import (
    AllCondition,
    AnyCondition,
    ClusterCondition,
    Condition,
    FieldCondition,
    NotCondition,
)
from connector.config.connector_file import ConnectorConfig
from connector.config.yamlsource import SourceDoc
from connector.core import vocabulary
from connector.core.problems import Loc, Problem, did_you_mean, one_of
from connector.core.templates import placeholders

PlaceholderPolicy = Callable[[str], str | None]
"""Given a placeholder name, an error text when it may not be used, else ``None``."""

SETTABLE_EXCLUDED = {
    "priority": "priority is computed from impact and urgency; set those instead",
    "major_incident_state": "major_incident_state is set by the rule's action (propose or promote)",
    "parent_incident": "parent_incident is set by the promotion mode (create-parent) and clusters",
    "number": "number is assigned by ServiceNow",
    "work_notes": "use then.work_note to write the decision's work note",
    "comments": "rules never write customer-visible comments",
    "comments_and_work_notes": "this journal view cannot be written",
    "correlation_id": "correlation_id holds the connector's own identity stamp",
    "correlation_display": "correlation_display holds the connector's own identity stamp",
}


def field_problem(doc: SourceDoc, loc: Loc, path: str, table: str = "incident") -> Problem | None:
    """A problem when ``path`` does not exist on ``table`` (dot-walks followed), else ``None``."""
    error = vocabulary.walk_path(table, path)
    if error is None:
        return None
    if error.reason == "not_reference":
        return doc.problem(loc, f"'{error.walked}' is not a reference field, so it cannot be dot-walked")
    known = vocabulary.columns_of(error.table)
    where = "" if error.walked == error.segment else f" (in '{error.walked}')"
    return doc.problem(
        loc, f"'{error.segment}' is not a field of {error.table}{where}{did_you_mean(error.segment, known)}"
    )


def states_of(connector: ConnectorConfig | None) -> Mapping[str, str]:
    """Incident state values -> labels of the configured instance (core model when unknown)."""
    return connector.servicenow.incident_states if connector else vocabulary.CORE_INCIDENT_STATES


def choice_values(field: str, incident_states: Mapping[str, str]) -> tuple[str, ...] | None:
    """The closed list of values ``field`` can hold, or ``None`` when it is open."""
    if field in ("state", "incident_state"):
        return tuple(incident_states)
    return vocabulary.INCIDENT_CHOICES.get(field)


def walk_conditions(condition: Condition, loc: Loc) -> Iterator[tuple[Loc, Condition]]:
    """Every condition in a tree with its data path, the root first."""
    yield loc, condition
    if isinstance(condition, AllCondition):
        for index, child in enumerate(condition.all):
            yield from walk_conditions(child, (*loc, "all", index))
    elif isinstance(condition, AnyCondition):
        for index, child in enumerate(condition.any):
            yield from walk_conditions(child, (*loc, "any", index))
    elif isinstance(condition, NotCondition):
        yield from walk_conditions(condition.not_, (*loc, "not"))
    elif isinstance(condition, ClusterCondition) and condition.cluster.where is not None:
        yield from walk_conditions(condition.cluster.where, (*loc, "cluster", "where"))


def condition_problems(
    doc: SourceDoc, condition: Condition, loc: Loc, incident_states: Mapping[str, str]
) -> list[Problem]:
    """Unknown fields and impossible values anywhere in a condition tree."""
    problems: list[Problem] = []
    for where, node in walk_conditions(condition, loc):
        if isinstance(node, ClusterCondition):
            if problem := field_problem(doc, (*where, "cluster", "by"), node.cluster.by):
                problems.append(problem)
            continue
        if not isinstance(node, FieldCondition):
            continue
        if problem := field_problem(doc, (*where, "field"), node.field):
            problems.append(problem)
            continue
        problems.extend(_value_problems(doc, where, node, incident_states))
    return problems


def _value_problems(
    doc: SourceDoc, loc: Loc, node: FieldCondition, incident_states: Mapping[str, str]
) -> list[Problem]:
    choices = choice_values(node.field, incident_states)
    if choices is None or node.operator not in ("equals", "not_equals", "in", "not_in"):
        return []
    operator_key = node.operator
    values = node.operand if isinstance(node.operand, tuple) else (node.operand,)
    problems = []
    for index, value in enumerate(values):
        if value in choices:
            continue
        label_hint = _label_hint(node.field, value, incident_states)
        at = (*loc, operator_key, index) if isinstance(node.operand, tuple) else (*loc, operator_key)
        problems.append(doc.problem(at, one_of(value, choices, noun=f"a value of {node.field}") + label_hint))
    return problems


def _label_hint(field: str, value: str, incident_states: Mapping[str, str]) -> str:
    labels = incident_states if field in ("state", "incident_state") else {}
    for stored, label in labels.items():
        if label.lower() == value.lower():
            return f"; conditions compare stored values: use '{stored}' for {label}"
    return ""


def template_problems(
    doc: SourceDoc,
    loc: Loc,
    template: str,
    allowed: PlaceholderPolicy,
) -> list[Problem]:
    """Check each placeholder of ``template``; ``allowed(name)`` returns an error text or ``None``."""
    problems = []
    for name in dict.fromkeys(placeholders(template)):
        if (message := allowed(name)) is not None:
            problems.append(doc.problem(loc, f"placeholder {{{name}}}: {message}"))
    return problems


def incident_placeholder(extra: Collection[str] = ()) -> PlaceholderPolicy:
    """Placeholder policy: incident fields (dot-walks allowed) plus the names in ``extra``."""

    def check(name: str) -> str | None:
        if name in extra:
            return None
        error = vocabulary.walk_path("incident", name)
        if error is None:
            return None
        known = [*extra, *vocabulary.columns_of(error.table)]
        return f"'{error.segment}' is not a field of {error.table}{did_you_mean(error.segment, known)}"

    return check
