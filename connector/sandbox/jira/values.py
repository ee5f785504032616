"""Turning client-supplied field values into stored values, with Jira's validation messages.

:func:`coerce` checks one value of one field and returns what the issue stores (names for
priorities, usernames for users, text for rich text); :func:`describe` gives the ``from``/``to``
pair a changelog shows for a stored value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.sandbox.jira.adf import NOT_A_DOCUMENT, adf_to_text, is_adf
from connector.sandbox.jira.dates import format_jira_time, parse_jira_date, parse_jira_time
from connector.sandbox.jira.fields import FieldDef
from connector.sandbox.jira.site import JiraSite


class InvalidValue(ValueError):
    """A field value Jira would refuse; the message is Jira's text for ``errors[field]``."""


@dataclass(frozen=True)
class WriteContext:
    """Who writes, when, on which site and through which API version (``"2"`` or ``"3"``)."""

    site: JiraSite
    username: str
    now: datetime
    api_version: str


def rich_text(ctx: WriteContext, raw: Any) -> str | None:
    """A rich-text value as stored text: a string on v2, an ADF document on v3; ``None`` clears."""
    if raw is None:
        return None
    if ctx.api_version == "3":
        if not is_adf(raw):
            raise InvalidValue(NOT_A_DOCUMENT)
        return adf_to_text(raw)
    if not isinstance(raw, str):
        raise InvalidValue("Operation value must be a string")
    return raw


def _named(raw: Any, catalogue: dict[str, str], invalid: str) -> str:
    if isinstance(raw, dict):
        if "name" in raw and raw["name"] in catalogue:
            return str(raw["name"])
        by_id = {value: name for name, value in catalogue.items()}
        if "id" in raw and str(raw["id"]) in by_id:
            return by_id[str(raw["id"])]
    raise InvalidValue(invalid)


def _user(ctx: WriteContext, raw: Any) -> str | None:
    if raw is None:
        return None
    user = ctx.site.user_by_reference(raw) if isinstance(raw, dict) else None
    if user is not None:
        return user.username
    if ctx.site.is_cloud:
        raise InvalidValue("Specified user does not exist or you do not have required permissions")
    name = raw.get("name") or raw.get("key") if isinstance(raw, dict) else raw
    raise InvalidValue(f"User '{name}' does not exist.")


def _labels(raw: Any) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(label, str) for label in raw):
        raise InvalidValue("Operation value must be an array of strings")
    for label in raw:
        _check_label(label)
    return list(dict.fromkeys(raw))


def _check_label(label: Any) -> str:
    if not isinstance(label, str) or not label:
        raise InvalidValue("Operation value must be a string")
    if " " in label:
        raise InvalidValue(f"The label '{label}' contains spaces which is invalid.")
    if len(label) > 255:
        raise InvalidValue("The label must not exceed 255 characters.")
    return label


def _summary(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidValue("You must specify a summary of the issue.")
    if "\n" in raw or "\r" in raw:
        raise InvalidValue("The summary is invalid because it contains newline characters.")
    if len(raw) > 255:
        raise InvalidValue("Summary must be less than 255 characters.")
    return raw


def coerce(ctx: WriteContext, definition: FieldDef, raw: Any) -> Any:
    """The stored value for ``raw`` in ``definition``; raises :class:`InvalidValue` when invalid."""
    field_id, kind = definition.field_id, definition.kind
    if field_id == "summary":
        return _summary(raw)
    if field_id == "priority":
        return _named(raw, ctx.site.priorities, "The priority selected is invalid.")
    if field_id == "resolution":
        return _named(raw, ctx.site.resolutions, f"Resolution '{_label_of(raw)}' is not valid.")
    if kind == "user":
        return _user(ctx, raw)
    if kind == "labels":
        return _labels(raw if raw is not None else [])
    if raw is None:
        return None
    if kind == "text":
        return rich_text(ctx, raw)
    if kind == "string":
        if not isinstance(raw, str):
            raise InvalidValue("Operation value must be a string")
        return raw
    if kind == "number":
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise InvalidValue("Operation value must be a number")
        return float(raw)
    if kind == "date":
        try:
            return parse_jira_date(str(raw))
        except ValueError:
            raise InvalidValue(f"Error parsing date string: {raw}") from None
    if kind == "datetime":
        try:
            return parse_jira_time(str(raw)).astimezone(UTC)
        except ValueError:
            raise InvalidValue(f"Error parsing date string: {raw}") from None
    raise InvalidValue(f"Field '{field_id}' cannot be set. It is not on the appropriate screen, or unknown.")


def _label_of(raw: Any) -> Any:
    return raw.get("name", raw.get("id")) if isinstance(raw, dict) else raw


def add_labels(current: list[str], raw: Any) -> list[str]:
    """``current`` plus one label (the ``add`` operation)."""
    label = _check_label(raw)
    return current if label in current else [*current, label]


def remove_labels(current: list[str], raw: Any) -> list[str]:
    """``current`` without one label (the ``remove`` operation)."""
    return [label for label in current if label != raw]


def describe(ctx: WriteContext, definition: FieldDef, value: Any) -> tuple[str | None, str | None]:
    """The changelog ``(from|to, fromString|toString)`` pair for a stored value."""
    if value is None:
        return None, None
    site = ctx.site
    if definition.field_id == "priority":
        return site.priorities[value], value
    if definition.field_id == "resolution":
        return site.resolutions[value], value
    if definition.field_id == "status":
        return site.statuses[value][0], value
    if definition.kind == "user":
        user = site.users[value]
        return (user.account_id if site.is_cloud else site.user_keys[value]), user.display_name
    if definition.kind == "labels":
        return None, " ".join(value)
    if definition.kind == "datetime":
        return None, format_jira_time(value)
    if definition.kind == "date":
        return value.isoformat(), value.isoformat()
    if definition.kind == "number":
        return None, f"{value:g}"
    return None, str(value)
