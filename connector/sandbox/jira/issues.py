"""Creating and editing issues: screens, ``fields`` and ``update`` operations, changelog, index.

Every write goes through :func:`commit`, which records the changelog entry, bumps ``updated`` and
queues the new state for the (lagging) search index. A write that changes nothing leaves no trace.
"""

from __future__ import annotations

from typing import Any

from connector.sandbox.jira.errors import NOT_ON_SCREEN, bad_request, field_errors, issue_not_found
from connector.sandbox.jira.fields import FieldDef
from connector.sandbox.jira.model import ChangeItem, Comment, History, Issue
from connector.sandbox.jira.site import ProjectInfo
from connector.sandbox.jira.values import (
    InvalidValue,
    WriteContext,
    add_labels,
    coerce,
    describe,
    remove_labels,
    rich_text,
)

_ATTRS = {
    "summary": "summary",
    "description": "description",
    "priority": "priority",
    "labels": "labels",
    "assignee": "assignee",
    "reporter": "reporter",
    "duedate": "due_date",
    "resolution": "resolution",
    "status": "status",
}
COMMENT_EMPTY = "Comment body can not be empty!"


def stored(issue: Issue, field_id: str) -> Any:
    """The stored value of a field (``None`` when unset)."""
    attr = _ATTRS.get(field_id)
    return getattr(issue, attr) if attr else issue.custom.get(field_id)


def _store(issue: Issue, field_id: str, value: Any) -> None:
    attr = _ATTRS.get(field_id)
    if attr:
        setattr(issue, attr, value)
    elif value is None or value == []:
        issue.custom.pop(field_id, None)
    else:
        issue.custom[field_id] = value


def _as_object(body: Any, key: str) -> dict[str, Any]:
    value = body.get(key) if isinstance(body, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request(f"Can not deserialize '{key}': expected a JSON object.")
    return value


def plan_values(
    ctx: WriteContext, issue: Issue | None, body: Any, allowed: set[str] | None = None
) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """New stored values from ``fields`` and ``update``, comment bodies to add, and errors by field.

    ``allowed`` limits the settable fields (a transition screen); otherwise the edit screen applies.
    """
    values: dict[str, Any] = {}
    comments: list[str] = []
    errors: dict[str, str] = {}
    registry = ctx.site.fields

    def definition_of(field_id: str) -> FieldDef | None:
        definition = registry.get(field_id)
        on_screen = definition is not None and (
            field_id in allowed if allowed is not None else definition.screen == "edit"
        )
        if not on_screen:
            errors[field_id] = NOT_ON_SCREEN.format(field=field_id)
            return None
        return definition

    for field_id, raw in _as_object(body, "fields").items():
        definition = definition_of(field_id)
        if definition is not None:
            try:
                values[field_id] = coerce(ctx, definition, raw)
            except InvalidValue as exc:
                errors[field_id] = str(exc)
    for field_id, operations in _as_object(body, "update").items():
        if field_id == "comment":
            comments += _comment_ops(ctx, operations, errors)
            continue
        definition = definition_of(field_id)
        if definition is None:
            continue
        current = values.get(field_id, stored(issue, field_id) if issue else None)
        try:
            values[field_id] = _apply_ops(ctx, definition, current, operations)
        except InvalidValue as exc:
            errors[field_id] = str(exc)
    return values, comments, errors


def _apply_ops(ctx: WriteContext, definition: FieldDef, current: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise InvalidValue("Field operations must be a list")
    for operation in operations:
        if not isinstance(operation, dict) or len(operation) != 1:
            raise InvalidValue("Field operation must have exactly one of set, add, remove, edit")
        verb, raw = next(iter(operation.items()))
        if verb == "set":
            current = coerce(ctx, definition, raw)
        elif verb in ("add", "remove") and definition.kind == "labels":
            labels = list(current or [])
            current = add_labels(labels, raw) if verb == "add" else remove_labels(labels, raw)
        else:
            raise InvalidValue(f"Field '{definition.field_id}' does not support operation '{verb}'")
    return current


def _comment_ops(ctx: WriteContext, operations: Any, errors: dict[str, str]) -> list[str]:
    bodies: list[str] = []
    for operation in operations if isinstance(operations, list) else [None]:
        added = operation.get("add") if isinstance(operation, dict) else None
        try:
            text = rich_text(ctx, added.get("body") if isinstance(added, dict) else None)
        except InvalidValue as exc:
            errors["comment"] = str(exc)
            continue
        if not text or not text.strip():
            errors["comment"] = COMMENT_EMPTY
        else:
            bodies.append(text)
    return bodies


def change_items(ctx: WriteContext, issue: Issue, values: dict[str, Any]) -> list[ChangeItem]:
    """Apply ``values`` to ``issue``; return the changelog items of the fields that really changed."""
    items: list[ChangeItem] = []
    for field_id, new in values.items():
        old = stored(issue, field_id)
        if old == new:
            continue
        definition = ctx.site.fields.get(field_id)
        if definition is None:
            continue
        _store(issue, field_id, new)
        old_id, old_text = describe(ctx, definition, old)
        new_id, new_text = describe(ctx, definition, new)
        field_name = definition.name if definition.custom else field_id
        field_type = "custom" if definition.custom else "jira"
        items.append(ChangeItem(field_name, field_id, field_type, old_id, old_text, new_id, new_text))
    return items


def new_comment(ctx: WriteContext, body: str) -> Comment:
    """A comment by the writing user, numbered site-wide."""
    comment_id = str(ctx.site.next_id("comment", 10000))
    return Comment(comment_id, body, ctx.username, ctx.username, ctx.now, ctx.now)


def commit(ctx: WriteContext, issue: Issue, items: list[ChangeItem], *, touched: bool = False) -> None:
    """Record a write: a changelog entry for ``items``, ``updated`` bumped, the index told.

    ``touched`` marks a write without changelog items that still updates the issue (a comment).
    """
    if items:
        history_id = str(ctx.site.next_id("history", 10000))
        issue.history.append(History(history_id, ctx.username, ctx.now, items))
    if items or touched:
        issue.updated = ctx.now
    ctx.site.reindex(issue, ctx.now)


def _project(ctx: WriteContext, raw: Any) -> ProjectInfo | None:
    if not isinstance(raw, dict):
        return None
    ref = raw.get("id", raw.get("key"))
    return ctx.site.project(str(ref)) if ref is not None else None


def _issue_type(ctx: WriteContext, project: ProjectInfo, raw: Any) -> str | None:
    if not isinstance(raw, dict):
        return None
    by_id = {type_id: name for name, type_id in ctx.site.issue_types.items()}
    name = by_id.get(str(raw["id"])) if "id" in raw else raw.get("name")
    return name if name in project.spec.issue_types else None


def _properties(body: Any) -> dict[str, Any]:
    raw = body.get("properties", []) if isinstance(body, dict) else []
    if not isinstance(raw, list) or not all(
        isinstance(p, dict) and isinstance(p.get("key"), str) for p in raw
    ):
        raise bad_request("Issue properties must be a list of objects with 'key' and 'value'.")
    return {p["key"]: p.get("value") for p in raw}


def _default_priority(ctx: WriteContext) -> str | None:
    names = list(ctx.site.priorities)
    return "Medium" if "Medium" in names else (names[len(names) // 2] if names else None)


def create_issue(ctx: WriteContext, body: Any) -> Issue:
    """Create an issue from a ``POST /issue`` body; raises a 400 ``JiraApiError`` with field errors."""
    fields_in = _as_object(body, "fields")
    errors: dict[str, str] = {}
    project = _project(ctx, fields_in.get("project"))
    if project is None:
        errors["project"] = "Specify a valid project ID or key"
    issue_type = _issue_type(ctx, project, fields_in.get("issuetype")) if project else None
    if project is not None and issue_type is None:
        errors["issuetype"] = (
            "Specify an issue type" if "issuetype" not in fields_in else "The issue type selected is invalid."
        )
    rest = {k: v for k, v in fields_in.items() if k not in ("project", "issuetype")}
    values, comments, value_errors = plan_values(
        ctx, None, {**(body if isinstance(body, dict) else {}), "fields": rest}
    )
    errors |= value_errors
    if "summary" not in values and "summary" not in errors:
        errors["summary"] = "You must specify a summary of the issue."
    properties = _properties(body)
    if errors or project is None or issue_type is None:
        raise field_errors(errors)
    number = ctx.site.next_id(f"key:{project.key}", 1)
    issue = Issue(
        issue_id=str(ctx.site.next_id("issue", 10001)),
        key=f"{project.key}-{number}",
        project_key=project.key,
        issue_type=issue_type,
        summary=values["summary"],
        status=project.workflow.initial,
        created=ctx.now,
        updated=ctx.now,
        status_changed=ctx.now,
        creator=ctx.username,
        reporter=ctx.username,
        priority=_default_priority(ctx),
        properties=properties,
    )
    for field_id, value in values.items():
        _store(issue, field_id, value)
    issue.comments += [new_comment(ctx, text) for text in comments]
    ctx.site.add(issue, ctx.now)
    return issue


def edit_issue(ctx: WriteContext, issue: Issue, body: Any) -> None:
    """Apply a ``PUT /issue`` body; raises a 400 ``JiraApiError`` with field errors."""
    values, comments, errors = plan_values(ctx, issue, body)
    if errors:
        raise field_errors(errors)
    items = change_items(ctx, issue, values)
    issue.comments += [new_comment(ctx, text) for text in comments]
    if items or comments:
        commit(ctx, issue, items, touched=bool(comments))


def require_issue(ctx: WriteContext, ref: str) -> Issue:
    """The live issue ``ref`` names, or the 404 Jira answers."""
    issue = ctx.site.issue(ref)
    if issue is None:
        raise issue_not_found()
    return issue
