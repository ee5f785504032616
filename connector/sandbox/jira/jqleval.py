"""Evaluating parsed JQL against issues of one site, as the searching user sees them.

:func:`compile_query` checks fields, operators and values once (a 400 with Jira's message for an
unknown field, an unsupported operator, an invalid date; unknown values are errors in strict mode
and ``warningMessages`` otherwise) and returns a predicate plus a sort. Dates are read in the
searching user's time zone with minute precision (see :mod:`connector.sandbox.jira.dates`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, tzinfo
from typing import Any

from connector.sandbox.jira.dates import jql_date
from connector.sandbox.jira.errors import JiraApiError, bad_request
from connector.sandbox.jira.fields import FieldDef
from connector.sandbox.jira.issues import stored
from connector.sandbox.jira.jql import Clause, FieldRef, Junction, Negation, Node, OrderKey, Query, Value
from connector.sandbox.jira.links import LINKED_ISSUES, linked_issue_ids
from connector.sandbox.jira.model import Issue
from connector.sandbox.jira.site import JiraSite
from connector.sandbox.jira.workflow import CATEGORIES

EQUALITY = {"=", "!=", "IN", "NOT IN"}
EMPTINESS = {"IS", "IS NOT"}
TEXT = {"~", "!~"}
ORDERING = {"<", ">", "<=", ">="}
_SUPPORTED = {
    "key": EQUALITY, "project": EQUALITY, "issuetype": EQUALITY, "status": EQUALITY, "statusCategory": EQUALITY,
    "priority": EQUALITY | EMPTINESS, "resolution": EQUALITY | EMPTINESS, "user": EQUALITY | EMPTINESS,
    "labels": EQUALITY | EMPTINESS, "text": TEXT | EMPTINESS, "string": TEXT | EMPTINESS, "comments": TEXT,
    "datetime": EQUALITY | ORDERING | EMPTINESS, "date": EQUALITY | ORDERING | EMPTINESS,
    "number": EQUALITY | ORDERING | EMPTINESS, "property": EQUALITY | ORDERING | TEXT | EMPTINESS,
}  # fmt: skip
_WORD = re.compile(r"[\w*?]+")
Predicate = Callable[[Issue], bool]


@dataclass
class JqlContext:
    """Who searches (their zone and ``currentUser()``), when, and whether unknown values are errors."""

    site: JiraSite
    username: str
    zone: tzinfo
    now: datetime
    strict: bool = True
    warnings: list[str] = field(default_factory=list)


def compile_query(query: Query, ctx: JqlContext) -> Predicate:
    """A predicate for the query's clause tree (matching everything when there is none)."""
    return _node(query.where, ctx) if query.where is not None else (lambda _issue: True)


def _node(node: Node, ctx: JqlContext) -> Predicate:
    if isinstance(node, Junction):
        parts = [_node(child, ctx) for child in node.children]
        if node.kind == "AND":
            return lambda issue: all(part(issue) for part in parts)
        return lambda issue: any(part(issue) for part in parts)
    if isinstance(node, Negation):
        inner = _node(node.child, ctx)
        return lambda issue: not inner(issue)
    return _clause(node, ctx)


def _unknown_field(ref: FieldRef) -> JiraApiError:
    return bad_request(f"Field '{ref.name}' does not exist or you do not have permission to view it.")


def resolve_field(ref: FieldRef, ctx: JqlContext) -> tuple[str, FieldDef | None]:
    """The kind of a JQL field (``property``, ``comments``, ``text``...) and its definition."""
    if ref.property_key is not None:
        return "property", None
    if ref.name.lower() == "text":
        return "text", None
    definition = ctx.site.fields.by_clause(ref.name)
    if definition is None:
        raise _unknown_field(ref)
    return definition.kind, definition


def _clause(clause: Clause, ctx: JqlContext) -> Predicate:
    kind, definition = resolve_field(clause.field, ctx)
    operator, name = clause.operator, clause.field.name
    if operator not in _SUPPORTED[kind]:
        raise bad_request(f"The operator '{operator}' is not supported by the '{name}' field.")
    list_function = not clause.is_list and _is_linked_issues(clause.values[0])
    if list_function and operator not in ("IN", "NOT IN"):
        raise bad_request(f"The operator '{operator}' is not supported by the '{LINKED_ISSUES}' function.")
    if operator in ("IN", "NOT IN") and not (clause.is_list or list_function):
        raise bad_request(
            f"Operator '{operator.lower()}' does not support the non-list value '{clause.values[0].text}' for field '{name}'."
        )
    if operator not in ("IN", "NOT IN") and clause.is_list:
        raise bad_request(f"Operator '{operator}' does not support the list value for field '{name}'.")
    empty_wanted = any(value.empty for value in clause.values)
    if operator in EMPTINESS and not empty_wanted:
        raise bad_request(f"The operator '{operator}' only supports EMPTY or NULL for field '{name}'.")
    getter = _getter(kind, definition, clause.field, ctx)
    if operator in EMPTINESS or (operator in ("=", "!=") and empty_wanted):
        negate = operator in ("IS NOT", "!=")
        return lambda issue: _is_empty(getter(issue)) != negate
    if operator in TEXT:
        needle, negate_text = _single(clause), operator == "!~"
        return lambda issue: _text_hit(getter(issue), needle) != negate_text
    if operator in ORDERING:
        bound = _convert(kind, definition, clause, clause.values[0], ctx)
        compare = _COMPARE[operator]
        return lambda issue: _ordered(getter(issue), bound, compare)
    wanted: list[Any] = []
    for value in clause.values:
        if not value.empty:
            converted = _convert(kind, definition, clause, value, ctx)
            wanted += converted if _is_linked_issues(value) else [converted]
    empty_too = empty_wanted or None in wanted  # "resolution = Unresolved" means no resolution
    return _membership(getter, [w for w in wanted if w is not None], operator in ("!=", "NOT IN"), empty_too)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
}


def _is_linked_issues(value: Value) -> bool:
    return value.function and value.text.lower() == LINKED_ISSUES.lower()


def _single(clause: Clause) -> str:
    value = clause.values[0]
    if value.function:
        raise bad_request(f"Unable to find JQL function '{value.text}()'.")
    return value.text


def _values_of(raw: Any) -> list[Any]:
    if raw is None:
        return []
    return list(raw) if isinstance(raw, list) else [raw]


def _is_empty(raw: Any) -> bool:
    return not _values_of(raw)


def _membership(
    getter: Callable[[Issue], Any], wanted: list[Any], negate: bool, empty_too: bool
) -> Predicate:
    def matches(issue: Issue) -> bool:
        present = _values_of(getter(issue))
        if not present:
            return empty_too != negate if empty_too else False
        hit = any(value in wanted for value in present)
        return not hit if negate else hit

    return matches


def _ordered(raw: Any, bound: Any, compare: Callable[[Any, Any], bool]) -> bool:
    try:
        return any(compare(value, bound) for value in _values_of(raw) if value is not None)
    except TypeError:
        return False


def _text_hit(raw: Any, needle: str) -> bool:
    haystack = " ".join(str(value) for value in _values_of(raw))
    words = _WORD.findall(haystack.lower())
    needle = needle.strip()
    if len(needle) > 1 and needle[0] == needle[-1] == '"':
        phrase = " ".join(_WORD.findall(needle.lower()))
        return bool(phrase) and f" {phrase} " in f" {' '.join(words)} "
    terms = _WORD.findall(needle.lower())
    return bool(terms) and all(any(fnmatch.fnmatchcase(word, term) for word in words) for term in terms)


def _getter(kind: str, definition: FieldDef | None, ref: FieldRef, ctx: JqlContext) -> Callable[[Issue], Any]:
    if kind == "property":
        key, path = ref.property_key or "", [part for part in ref.property_path.split(".") if part]
        return lambda issue: _property_values(issue.properties.get(key), path)
    if kind == "text":
        return lambda issue: [issue.summary, issue.description, *[c.body for c in issue.comments]]
    if definition is None:
        raise _unknown_field(ref)
    field_id = definition.field_id
    special: dict[str, Callable[[Issue], Any]] = {
        "issuekey": lambda issue: issue.issue_id,
        "project": lambda issue: issue.project_key,
        "issuetype": lambda issue: issue.issue_type,
        "statusCategory": lambda issue: ctx.site.statuses[issue.status][1],
        "created": lambda issue: issue.created,
        "updated": lambda issue: issue.updated,
        "resolutiondate": lambda issue: issue.resolution_date,
        "statuscategorychangedate": lambda issue: issue.status_changed,
        "creator": lambda issue: issue.creator,
        "comment": lambda issue: [c.body for c in issue.comments],
        "duedate": lambda issue: (
            datetime.combine(issue.due_date, time(), ctx.zone) if issue.due_date else None
        ),
    }
    return special.get(field_id) or (lambda issue: stored(issue, field_id))


def _property_values(value: Any, path: list[str]) -> list[Any]:
    for part in path:
        if isinstance(value, list):
            value = [item.get(part) for item in value if isinstance(item, dict)]
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return []
    return [_scalar(item) for item in _values_of(value) if item is not None]


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return float(value)
    return value if isinstance(value, str) else str(value)


def _unknown_value(ctx: JqlContext, message: str) -> object:
    if ctx.strict:
        raise bad_request(message)
    ctx.warnings.append(message)
    return object()  # matches nothing


def _convert(kind: str, definition: FieldDef | None, clause: Clause, value: Value, ctx: JqlContext) -> Any:
    name, text, site = clause.field.name, value.text, ctx.site
    if value.function:
        if value.text.lower() == "now" and kind in ("datetime", "date", "property"):
            return ctx.now
        if value.text.lower() == "currentuser" and kind == "user":
            return ctx.username
        if _is_linked_issues(value) and kind == "key":
            return linked_issue_ids(ctx.site, value.args)
        raise bad_request(f"Unable to find JQL function '{value.text}()'.")
    missing = f"The value '{text}' does not exist for the field '{name}'."
    if kind in ("datetime", "date"):
        return jql_date(text, field=name, zone=ctx.zone, now=ctx.now, quoted=value.quoted)
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            raise bad_request(f"The value '{text}' for field '{name}' is not a valid number.") from None
    if kind == "property":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "key":
        issue = site.issue(text)
        if issue is None:
            return _unknown_value(ctx, f"An issue with key '{text}' does not exist for field '{name}'.")
        return issue.issue_id
    if kind == "project":
        project = site.project(text) or next(
            (p for p in site.projects.values() if p.spec.name.lower() == text.lower()), None
        )
        return project.key if project else _unknown_value(ctx, missing)
    if kind == "user":
        user = site.user_by_jql(text)
        return user.username if user else _unknown_value(ctx, missing)
    if kind == "statusCategory":
        for category, info in CATEGORIES.items():
            if text.lower() in (info.name.lower(), info.key, str(info.category_id)):
                return category
        return _unknown_value(ctx, missing)
    if kind == "resolution" and text.lower() == "unresolved":
        return None
    catalogues: dict[str, Iterable[tuple[str, str]]] = {
        "issuetype": site.issue_types.items(),
        "status": ((status, info[0]) for status, info in site.statuses.items()),
        "priority": site.priorities.items(),
        "resolution": site.resolutions.items(),
    }
    if kind in catalogues:
        found = next((n for n, ident in catalogues[kind] if text.lower() == n.lower() or text == ident), None)
        return found if found is not None else _unknown_value(ctx, missing)
    return text


def sort_issues(issues: list[Issue], order_by: tuple[OrderKey, ...], ctx: JqlContext) -> list[Issue]:
    """Order issues by the ``ORDER BY`` keys (empty values last), newest key first without one."""
    ordered = sorted(issues, key=lambda issue: (issue.project_key, issue.number), reverse=True)
    for key in reversed(order_by):
        getter = _sort_getter(key.field, ctx)
        present = [issue for issue in ordered if getter(issue) is not None]
        absent = [issue for issue in ordered if getter(issue) is None]
        present.sort(key=getter, reverse=bool(key.descending))
        ordered = present + absent
    return ordered


def _sort_getter(ref: FieldRef, ctx: JqlContext) -> Callable[[Issue], Any]:
    kind, definition = resolve_field(ref, ctx)
    if definition is None or not definition.orderable:
        raise bad_request(f"Field '{ref.name}' does not support sorting.")
    site = ctx.site
    by_field: dict[str, Callable[[Issue], Any]] = {
        "issuekey": lambda issue: (issue.project_key, issue.number),
        "status": lambda issue: int(site.statuses[issue.status][0]),
        "priority": lambda issue: int(site.priorities[issue.priority]) if issue.priority else None,
        "summary": lambda issue: issue.summary.lower(),
        "labels": lambda issue: " ".join(sorted(issue.labels)) or None,
    }
    getter = by_field.get(definition.field_id) or _getter(kind, definition, ref, ctx)
    return lambda issue: _sortable(getter(issue))


def _sortable(value: Any) -> Any:
    if isinstance(value, list):
        return " ".join(map(str, value)) or None
    return value
