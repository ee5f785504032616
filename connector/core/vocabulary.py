"""What we know of ServiceNow's data model: tables, their columns, references and choice lists.

Pure data and look-ups, no I/O. Config validation uses it to catch misspelt field names before
ServiceNow can silently drop them from a query, and the sandbox uses it to render references.
Columns whose names start with ``u_`` or ``x_`` are customer or scoped-app extensions and are
accepted on every table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

CUSTOM_PREFIXES = ("u_", "x_")
SYSTEM_COLUMNS = (
    "sys_id",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
    "sys_class_name",
    "sys_domain",
    "sys_tags",
)
SYSTEM_REFERENCES: Mapping[str, str] = MappingProxyType({"sys_domain": "sys_user_group"})
"""System columns that are references (the domain is a ``sys_user_group``; ``global`` by default)."""

_TASK_COLUMNS: dict[str, str | None] = {
    "number": None,
    "short_description": None,
    "description": None,
    "state": None,
    "active": None,
    "impact": None,
    "urgency": None,
    "priority": None,
    "assignment_group": "sys_user_group",
    "assigned_to": "sys_user",
    "opened_at": None,
    "opened_by": "sys_user",
    "closed_at": None,
    "closed_by": "sys_user",
    "close_notes": None,
    "correlation_id": None,
    "correlation_display": None,
    "work_notes": None,
    "comments": None,
    "comments_and_work_notes": None,
    "work_notes_list": None,
    "watch_list": None,
    "parent": "task",
    "company": "core_company",
    "location": "cmn_location",
    "cmdb_ci": "cmdb_ci",
    "business_service": "cmdb_ci_service",
    "service_offering": "service_offering",
    "contact_type": None,
    "reassignment_count": None,
    "made_sla": None,
    "knowledge": None,
    "sla_due": None,
    "due_date": None,
    "escalation": None,
    "upon_approval": None,
    "upon_reject": None,
}

_INCIDENT_COLUMNS: dict[str, str | None] = {
    **_TASK_COLUMNS,
    "incident_state": None,
    "severity": None,
    "category": None,
    "subcategory": None,
    "caller_id": "sys_user",
    "resolved_at": None,
    "resolved_by": "sys_user",
    "close_code": None,
    "hold_reason": None,
    "problem_id": "problem",
    "parent_incident": "incident",
    "child_incidents": None,
    "reopen_count": None,
    "notify": None,
    "rfc": "change_request",
    "caused_by": "change_request",
    "major_incident_state": None,
    "business_impact": None,
    "proposed_by": "sys_user",
    "proposed_on": None,
    "promoted_by": "sys_user",
    "promoted_on": None,
    "business_stc": None,
    "calendar_stc": None,
}

_PROBLEM_COLUMNS: dict[str, str | None] = {
    **_TASK_COLUMNS,
    "problem_state": None,
    "known_error": None,
    "cause_notes": None,
    "fix_notes": None,
    "workaround": None,
    "resolution_code": None,
    "first_reported_by_task": "task",
    "category": None,
    "subcategory": None,
    "resolved_at": None,
    "resolved_by": "sys_user",
}

_TABLES: dict[str, dict[str, str | None]] = {
    "task": _TASK_COLUMNS,
    "incident": _INCIDENT_COLUMNS,
    "problem": _PROBLEM_COLUMNS,
    "change_request": {**_TASK_COLUMNS, "type": None, "risk": None, "start_date": None, "end_date": None},
    "sys_user": {
        "user_name": None,
        "name": None,
        "first_name": None,
        "last_name": None,
        "email": None,
        "title": None,
        "department": None,
        "manager": "sys_user",
        "location": "cmn_location",
        "company": "core_company",
        "active": None,
        "vip": None,
        "time_zone": None,
        "phone": None,
    },
    "sys_user_group": {
        "name": None,
        "description": None,
        "manager": "sys_user",
        "email": None,
        "type": None,
        "active": None,
        "parent": "sys_user_group",
    },
    "cmdb_ci": {
        "name": None,
        "short_description": None,
        "sys_class_name": None,
        "category": None,
        "subcategory": None,
        "business_criticality": None,
        "operational_status": None,
        "install_status": None,
        "environment": None,
        "vendor": "core_company",
        "manufacturer": "core_company",
        "company": "core_company",
        "support_group": "sys_user_group",
        "managed_by": "sys_user",
        "owned_by": "sys_user",
        "location": "cmn_location",
        "ip_address": None,
        "fqdn": None,
    },
    "cmdb_ci_service": {
        "name": None,
        "short_description": None,
        "business_criticality": None,
        "operational_status": None,
        "service_classification": None,
        "used_for": None,
        "support_group": "sys_user_group",
        "managed_by": "sys_user",
        "owned_by": "sys_user",
        "vendor": "core_company",
    },
    "service_offering": {"name": None, "parent": "cmdb_ci_service", "support_group": "sys_user_group"},
    "core_company": {"name": None, "vendor": None, "manufacturer": None, "customer": None},
    "cmn_location": {"name": None, "city": None, "state": None, "country": None, "street": None},
    "sys_journal_field": {"name": None, "element": None, "element_id": None, "value": None},
    "sys_choice": {
        "name": None,
        "element": None,
        "value": None,
        "label": None,
        "sequence": None,
        "language": None,
        "inactive": None,
    },
}

TABLES: Mapping[str, Mapping[str, str | None]] = MappingProxyType(
    {
        name: MappingProxyType({**columns, **dict.fromkeys(SYSTEM_COLUMNS), **SYSTEM_REFERENCES})
        for name, columns in _TABLES.items()
    }
)
"""table -> column -> referenced table (``None`` for plain columns)."""

INTEGER_COLUMNS = frozenset(
    {
        "state",
        "incident_state",
        "problem_state",
        "impact",
        "urgency",
        "priority",
        "severity",
        "hold_reason",
        "escalation",
        "notify",
        "reassignment_count",
        "reopen_count",
        "child_incidents",
        "business_stc",
        "calendar_stc",
        "sequence",
        "sys_mod_count",
    }
)
"""Columns ServiceNow stores as integers: queries compare them as numbers (``priority<3``)."""
DATETIME_COLUMNS = frozenset(
    {
        "sys_created_on",
        "sys_updated_on",
        "opened_at",
        "closed_at",
        "resolved_at",
        "proposed_on",
        "promoted_on",
        "sla_due",
        "due_date",
        "start_date",
        "end_date",
    }
)
"""Columns holding ``YYYY-MM-DD HH:MM:SS`` in UTC (displayed in the reading user's time zone)."""
BOOLEAN_COLUMNS = frozenset(
    {
        "active",
        "made_sla",
        "knowledge",
        "vip",
        "vendor",
        "manufacturer",
        "customer",
        "inactive",
        "known_error",
    }
)
"""Columns holding ``true``/``false`` (where the name is not a reference of that table)."""
DISPLAY_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "task": "number",
        "incident": "number",
        "problem": "number",
        "change_request": "number",
        "sys_user": "name",
        "sys_user_group": "name",
        "cmdb_ci": "name",
        "cmdb_ci_service": "name",
        "service_offering": "name",
        "core_company": "name",
        "cmn_location": "name",
        "sys_choice": "label",
    }
)
"""The column whose value is a record's display value (what a reference to it shows)."""
TASK_TABLES = ("incident", "problem", "change_request")
"""Tables extending ``task``: a reference to ``task`` points at a record of one of them."""

JOURNAL_FIELDS = frozenset({"work_notes", "comments", "comments_and_work_notes"})
INTERNAL_FIELDS = frozenset({"work_notes", "comments_and_work_notes", "work_notes_list"})
"""Incident columns that never leave ServiceNow (DESIGN: work notes are hard-blocked outbound)."""

# Incident Management core state model (default since Helsinki); instances may differ, so the
# connector config can override it (servicenow.incident_states).
CORE_INCIDENT_STATES: Mapping[str, str] = MappingProxyType(
    {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"}
)
STATE_NEW, STATE_IN_PROGRESS, STATE_ON_HOLD = "1", "2", "3"
STATE_RESOLVED, STATE_CLOSED, STATE_CANCELED = "6", "7", "8"
OPEN_STATES = frozenset({STATE_NEW, STATE_IN_PROGRESS, STATE_ON_HOLD})
"""Work goes on: new, in progress, on hold."""
RESOLVED_OR_CLOSED_STATES = frozenset({STATE_RESOLVED, STATE_CLOSED})
"""A solution was given: resolved, or resolved and then closed. Canceled is not among them (nothing
was resolved): a problem is created on resolve, a supplier's resolution maps to these, ServiceNow
stamps ``resolved_at`` on entering them."""
FINISHED_STATES = frozenset({STATE_RESOLVED, STATE_CLOSED, STATE_CANCELED})
"""No more work expected: resolved, closed or canceled. Promotion rules leave these alone, and a
major incident in one of them is no longer followed."""
FINAL_STATES = frozenset({STATE_CLOSED, STATE_CANCELED})
"""No way back: closed or canceled incidents are inactive and ServiceNow does not reopen them (a
resolved one can still be reopened)."""
PRIORITIES: Mapping[str, str] = MappingProxyType(
    {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
)
IMPACTS: Mapping[str, str] = MappingProxyType({"1": "1 - High", "2": "2 - Medium", "3": "3 - Low"})
URGENCIES = IMPACTS
MAJOR_INCIDENT_STATES = ("proposed", "accepted", "rejected", "canceled")
CLOSE_CODES = (
    "Duplicate",
    "Known error",
    "No resolution provided",
    "Resolved by caller",
    "Resolved by change",
    "Resolved by problem",
    "Resolved by request",
    "Solution provided",
    "Workaround provided",
    "User error",
)

INCIDENT_CHOICES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "priority": tuple(PRIORITIES),
        "impact": tuple(IMPACTS),
        "urgency": tuple(URGENCIES),
        "major_incident_state": MAJOR_INCIDENT_STATES,
    }
)
"""Closed choice lists of incident columns whose values we can check offline (``state`` is per instance)."""


def is_custom(column: str) -> bool:
    """True for customer (``u_``) and scoped-app (``x_``) columns, which exist on any table."""
    return column.startswith(CUSTOM_PREFIXES)


@dataclass(frozen=True)
class PathError:
    """Why a dotted field path does not exist: ``segment`` is unknown on ``table``, or is not a reference."""

    table: str
    segment: str
    walked: str
    reason: Literal["unknown", "not_reference"]


def walk_path(table: str, dotted: str) -> PathError | None:
    """Check that ``dotted`` (e.g. ``cmdb_ci.vendor.name``) exists when walked from ``table``.

    Tables we know nothing about and custom columns (``u_``/``x_``) are taken on trust, together
    with everything dot-walked behind them. Returns ``None`` when the path is fine.
    """
    segments = dotted.split(".")
    current = table
    for index, segment in enumerate(segments):
        columns = TABLES.get(current)
        if columns is None or is_custom(segment):
            return None
        walked = ".".join(segments[: index + 1])
        if segment not in columns:
            return PathError(current, segment, walked, "unknown")
        if index == len(segments) - 1:
            return None
        reference = columns[segment]
        if reference is None:
            return PathError(current, segment, walked, "not_reference")
        current = reference
    return None


def columns_of(table: str) -> tuple[str, ...]:
    """Known columns of ``table`` (empty for tables we know nothing about)."""
    return tuple(TABLES.get(table, ()))
