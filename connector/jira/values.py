"""Jira's JSON values to our text and back, JQL date literals and error envelopes.

Pure functions, no I/O. Reading, answers become our domain types and every field value becomes
text (:func:`field_text`); writing, text and lists become what Jira's v2 API expects
(:func:`field_payload`). Users are ``accountId`` on Cloud and ``name`` on Data Center.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from types import MappingProxyType
from typing import Any

from connector.core.markers import STAMP_PROPERTY
from connector.core.models import IssueStamp, LinkedIssue, StatusChange, SupplierComment, SupplierIssue
from connector.core.ports import IssueRef, JiraAccount, Transition
from connector.core.times import parse_jira_time

_NAMED_FIELDS = frozenset({"priority", "resolution"})
_STATUS_CATEGORIES = {"new": "todo", "indeterminate": "in_progress", "done": "done"}
MESSAGE_LIMIT = 300


def jql_minute(moment: datetime, zone: tzinfo) -> str:
    """``moment`` as a JQL date literal: ``"yyyy-MM-dd HH:mm"`` in ``zone``, floored to the minute.

    JQL has minute precision and reads literals in the searching user's profile time zone, so a
    bound floored this way includes everything from ``moment`` on (and up to a minute before).
    Raises ``ValueError`` for a naive ``moment``.
    """
    if moment.tzinfo is None:
        raise ValueError("JQL bounds need a timezone-aware datetime")
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def jql_string(value: str) -> str:
    """``value`` as a double-quoted JQL string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def status_category(category_key: str) -> str:
    """Jira's ``statusCategory.key`` in our vocabulary: ``todo``, ``in_progress`` or ``done``."""
    return _STATUS_CATEGORIES.get(category_key, category_key)


def field_text(field_id: str, value: Any) -> str:
    """A field value as text.

    Priorities and other named values by name, users by display name, labels space-joined in
    sorted order, components ``", "``-joined in sorted order, other values as their string;
    absent or null as ``""``.
    """
    if value is None:
        return ""
    if isinstance(value, list):
        items = [_text(item) for item in value]
        if field_id == "labels":
            return " ".join(sorted(items))
        if field_id == "components":
            return ", ".join(sorted(items))
        return ", ".join(items)
    return _text(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        # users by displayName, priorities/statuses/components by name, select options by value
        for key in ("displayName", "name", "value", "key"):
            if key in value and value[key] is not None:
                return str(value[key])
        return json.dumps(value, sort_keys=True)
    if isinstance(value, list):
        return ", ".join(_text(item) for item in value)
    return str(value)


def field_payload(field_id: str, value: Any) -> Any:
    """What Jira's v2 API expects for ``value`` of ``field_id``.

    ``priority``/``resolution`` by name -> ``{"name": …}`` (``""`` clears); ``labels`` a list (a
    string is split on whitespace); ``components`` names -> ``[{"name": …}]`` (a string is split on
    commas); everything else as given (text and custom fields as strings). Dicts pass unchanged.
    """
    if isinstance(value, Mapping):
        return dict(value)
    if field_id in _NAMED_FIELDS:
        return {"name": str(value)} if value else None
    if field_id == "labels":
        return value.split() if isinstance(value, str) else [str(item) for item in value or ()]
    if field_id == "components":
        names = value.split(",") if isinstance(value, str) else list(value or ())
        return [{"name": str(name).strip()} for name in names if str(name).strip()]
    return value


def fields_payload(fields: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`field_payload` applied to every entry."""
    return {field_id: field_payload(field_id, value) for field_id, value in fields.items()}


def jira_message(_status: int, body: str) -> str:
    """The human part of a Jira error answer (``errorMessages`` and ``errors``), else the body's start."""
    try:
        data = json.loads(body)
    except ValueError:
        return _squeeze(body)
    parts: list[str] = []
    if isinstance(data, dict):
        messages = data.get("errorMessages")
        if isinstance(messages, list):
            parts += [str(message) for message in messages]
        errors = data.get("errors")
        if isinstance(errors, dict):
            parts += [f"{field}: {message}" for field, message in errors.items()]
        if not parts:
            parts += [str(data[key]) for key in ("message", "errorMessage", "detail") if data.get(key)]
    return _squeeze("; ".join(parts) if parts else body)


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:MESSAGE_LIMIT]


# --- answers -> domain types ------------------------------------------------------------------------


def account_from_json(raw: Mapping[str, Any], cloud: bool) -> JiraAccount:
    """``GET myself`` as a :class:`JiraAccount`."""
    return JiraAccount(
        account_id=_user_id(raw, cloud),
        display_name=str(raw.get("displayName") or ""),
        time_zone=str(raw.get("timeZone") or "UTC"),
    )


def issue_ref_from_json(item: Mapping[str, Any]) -> IssueRef:
    """A search hit (``fields=updated``, maybe ``properties``) as an :class:`IssueRef`."""
    updated = (item.get("fields") or {}).get("updated")
    return IssueRef(
        issue_id=str(item["id"]),
        key=str(item.get("key") or ""),
        updated=parse_jira_time(str(updated)) if updated else None,
        identity=identity_of(item),
    )


def issue_from_json(
    raw: Mapping[str, Any],
    fields: Sequence[str],
    url: str,
    comments: Sequence[SupplierComment],
    cloud: bool,
) -> SupplierIssue:
    """An ``IssueBean`` as a :class:`SupplierIssue`: ``fields`` as text, the stamp from our property."""
    values = raw.get("fields") or {}
    status = values.get("status") or {}
    category = str((status.get("statusCategory") or {}).get("key") or "")
    links = tuple(link for item in values.get("issuelinks") or () if (link := linked_issue(item)) is not None)
    return SupplierIssue(
        issue_id=str(raw["id"]),
        key=str(raw["key"]),
        url=url,
        status=str(status.get("name") or ""),
        status_category=status_category(category),
        updated=parse_jira_time(str(values["updated"])),
        fields=MappingProxyType(
            {
                field_id: field_text(field_id, values.get(field_id))
                for field_id in fields
                if field_id != "issuelinks"
            }
        ),
        identity=identity_of(raw),
        comments=tuple(comments),
        links=links,
        status_change=latest_status_change(raw, cloud),
        field_authors=MappingProxyType(field_authors(raw, cloud)),
    )


def field_authors(raw: Mapping[str, Any], cloud: bool) -> dict[str, str]:
    """Field id (else name) -> who changed it last, from an ``expand=changelog`` read.

    Histories are taken in the order :func:`latest_status_change` uses (id, then ``created``);
    a field not in the embedded (recent) histories is absent.
    """
    ordered: list[tuple[int, str, Mapping[str, Any]]] = []
    for history in (raw.get("changelog") or {}).get("histories") or ():
        number = str(history.get("id") or "")
        ordered.append((int(number) if number.isdigit() else -1, str(history.get("created") or ""), history))
    authors: dict[str, str] = {}
    for _number, _created, history in sorted(ordered, key=lambda entry: entry[:2]):
        author = _user_id(history.get("author") or {}, cloud)
        for item in history.get("items") or ():
            name = item.get("fieldId") or item.get("field")
            if name:
                authors[str(name)] = author
    return authors


def latest_status_change(raw: Mapping[str, Any], cloud: bool) -> StatusChange | None:
    """The newest ``status`` item of an ``expand=changelog`` read, or ``None`` without one.

    Jira embeds recent histories only and does not promise their order, so the newest is chosen
    by its id (Jira numbers histories in order; ``created`` follows a server clock that may be
    stepped) and then by ``created``.
    """
    histories = (raw.get("changelog") or {}).get("histories") or ()
    found: list[tuple[int, datetime, StatusChange]] = []
    for history in histories:
        item = next((i for i in history.get("items") or () if i.get("field") == "status"), None)
        if item is None or not history.get("created"):
            continue
        author = history.get("author") or {}
        created = parse_jira_time(str(history["created"]))
        change = StatusChange(
            change_id=str(history.get("id") or ""),
            author_id=_user_id(author, cloud),
            author=str(author.get("displayName") or ""),
            from_status=str(item.get("fromString") or ""),
            to_status=str(item.get("toString") or ""),
            created=created,
        )
        number = int(change.change_id) if change.change_id.isdigit() else -1
        found.append((number, created, change))
    return max(found, key=lambda entry: entry[:2])[2] if found else None


def linked_issue(item: Mapping[str, Any]) -> LinkedIssue | None:
    """One ``issuelinks`` entry as read on this issue.

    An entry with ``outwardIssue`` B reads "this issue <type.outward> B" (this issue *blocks* B);
    one with ``inwardIssue`` C reads "this issue <type.inward> C" (this issue *is blocked by* C).
    """
    link_type = item.get("type") or {}
    if isinstance(item.get("outwardIssue"), dict):
        other, description = item["outwardIssue"], link_type.get("outward")
    elif isinstance(item.get("inwardIssue"), dict):
        other, description = item["inwardIssue"], link_type.get("inward")
    else:
        return None
    other_fields = other.get("fields") or {}
    return LinkedIssue(
        link_type=str(link_type.get("name") or ""),
        description=str(description or ""),
        key=str(other.get("key") or ""),
        summary=str(other_fields.get("summary") or ""),
        status=str((other_fields.get("status") or {}).get("name") or ""),
    )


def identity_of(raw: Mapping[str, Any]) -> IssueStamp | None:
    """Our entity property's value (an issue read or a search hit), when it carries a ``stamp``."""
    value = (raw.get("properties") or {}).get(STAMP_PROPERTY)
    stamp = value.get("stamp") if isinstance(value, dict) else None
    if not isinstance(value, dict) or stamp is None:
        return None
    return IssueStamp(
        stamp=str(stamp),
        incident_sys_id=str(value.get("incident_sys_id") or ""),
        incident_number=str(value.get("incident_number") or ""),
        instance=str(value.get("instance") or ""),
        servicenow=str(value.get("servicenow") or ""),
    )


def comment_from_json(raw: Mapping[str, Any], cloud: bool) -> SupplierComment:
    """A v2 comment (string body) as a :class:`SupplierComment`."""
    author = raw.get("author") or {}
    created = parse_jira_time(str(raw["created"]))
    return SupplierComment(
        comment_id=str(raw["id"]),
        author=str(author.get("displayName") or ""),
        author_id=_user_id(author, cloud),
        body=str(raw.get("body") or ""),
        created=created,
        updated=parse_jira_time(str(raw["updated"])) if raw.get("updated") else created,
    )


def transition_from_json(item: Mapping[str, Any]) -> Transition:
    """One entry of ``GET issue/{key}/transitions``."""
    return Transition(
        transition_id=str(item["id"]),
        name=str(item.get("name") or ""),
        to_status=str((item.get("to") or {}).get("name") or ""),
    )


def _user_id(user: Mapping[str, Any], cloud: bool) -> str:
    found = user.get("accountId") if cloud else user.get("name") or user.get("key")
    return str(found or "")
