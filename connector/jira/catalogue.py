"""Jira's answers about a project's set-up, read into the port's types (for ``supplier init``).

Pure functions over decoded JSON: a project with its issue types, the statuses of each issue type,
create-screen and transition-screen fields with the values Jira lists for them, and the earliest
status change of a changelog.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from connector.core.ports import JiraFieldInfo, JiraProjectInfo, JiraStatusInfo, WorkflowStep
from connector.jira.values import status_category


def project_from_json(raw: Mapping[str, Any]) -> JiraProjectInfo:
    """``GET project/{key}``: key, name and the issue types work can be created with (no sub-tasks)."""
    types = {
        str(item.get("name", "")): str(item.get("id", ""))
        for item in raw.get("issueTypes") or []
        if not item.get("subtask", False)
    }
    return JiraProjectInfo(str(raw.get("key", "")), str(raw.get("name", "")), types)


def statuses_from_json(raw: Iterable[Mapping[str, Any]]) -> dict[str, tuple[JiraStatusInfo, ...]]:
    """``GET project/{key}/statuses``: issue type name -> its statuses in the order Jira lists them."""
    return {
        str(item.get("name", "")): tuple(
            JiraStatusInfo(
                str(status.get("name", "")),
                status_category(str((status.get("statusCategory") or {}).get("key", "new"))),
            )
            for status in item.get("statuses") or []
        )
        for item in raw
    }


def field_from_json(field_id: str, raw: Mapping[str, Any]) -> JiraFieldInfo:
    """One field of a create screen (``fieldId`` inside) or a transition screen (keyed by its id)."""
    return JiraFieldInfo(
        field_id=str(raw.get("fieldId") or raw.get("key") or field_id),
        name=str(raw.get("name") or field_id),
        required=bool(raw.get("required", False)),
        allowed_values=tuple(_value_name(value) for value in raw.get("allowedValues") or []),
        has_default=bool(raw.get("hasDefaultValue", False)),
    )


def create_fields_page(raw: Mapping[str, Any]) -> list[JiraFieldInfo]:
    """One page of ``GET issue/createmeta/{key}/issuetypes/{id}``: Cloud says ``fields``, Data Center ``values``."""
    items = raw.get("fields")
    if items is None:
        items = raw.get("values") or []
    return [field_from_json(str(item.get("fieldId", "")), item) for item in items]


def steps_from_json(raw: Mapping[str, Any]) -> list[WorkflowStep]:
    """``GET issue/{key}/transitions?expand=transitions.fields``: what the issue's status offers."""
    return [
        WorkflowStep(
            transition_id=str(item["id"]),
            name=str(item.get("name") or ""),
            to_status=str((item.get("to") or {}).get("name") or ""),
            is_global=bool(item.get("isGlobal", False)),
            fields=tuple(field_from_json(key, value) for key, value in (item.get("fields") or {}).items()),
        )
        for item in raw.get("transitions") or []
    ]


def earliest_status_change(histories: Iterable[Mapping[str, Any]]) -> str | None:
    """The status the earliest status change among ``histories`` (changelog entries, any order) left.

    Applied to a whole changelog (or its oldest part), that is the status the issue was created in;
    ``None`` when no entry changed the status.
    """
    changes = [
        (str(history.get("created", "")), _number(history.get("id")), str(item.get("fromString") or ""))
        for history in histories
        for item in history.get("items") or []
        if item.get("field") == "status" and item.get("fromString")
    ]
    return min(changes)[2] if changes else None


def _number(value: Any) -> int:
    """A changelog id as a number (ids grow with time), ``0`` when Jira sent none."""
    text = str(value or "")
    return int(text) if text.isdigit() else 0


def _value_name(value: Any) -> str:
    """An allowed value as an admin writes it: a name (priority, resolution), a value (select) or a key."""
    if isinstance(value, Mapping):
        for key in ("name", "value", "key", "id"):
            if value.get(key) is not None:
                return str(value[key])
    return str(value)
