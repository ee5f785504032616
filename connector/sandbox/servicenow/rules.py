"""Business rules and data policies the connector meets on incident and problem writes.

They run on every insert and update, after the payload is applied and before the record is
stored: defaults on insert, priority from impact x urgency (Priority Lookup Rules), the
``state``/``incident_state`` twins, resolve/close/reopen stamps, the Major Incident Management
plugin's stamps, and the close-fields data policy. Pure: records in, record out (mutated in
place), or a ``ServiceNowError`` when a policy aborts the write.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from datetime import tzinfo

from connector.core.vocabulary import (
    FINAL_STATES,
    FINISHED_STATES,
    OPEN_STATES,
    RESOLVED_OR_CLOSED_STATES,
    STATE_CANCELED,
    STATE_CLOSED,
)
from connector.sandbox.servicenow.errors import ServiceNowError
from connector.sandbox.servicenow.predicates import Record
from connector.sandbox.servicenow.settings import Settings

PRIORITY_MATRIX = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("1", "3"): "3",
    ("2", "1"): "2",
    ("2", "2"): "3",
    ("2", "3"): "4",
    ("3", "1"): "3",
    ("3", "2"): "4",
    ("3", "3"): "5",
}
"""(impact, urgency) -> priority, the default Priority Lookup Rules."""

PROBLEM_NEW, PROBLEM_RESOLVED, PROBLEM_CLOSED = "101", "106", "107"
CLOSE_FIELD_LABELS = {"close_code": "Resolution code", "close_notes": "Resolution notes"}


@dataclass(frozen=True)
class Actor:
    """The authenticated user a write is made as."""

    user_name: str
    sys_id: str
    zone: tzinfo


def priority_of(impact: str, urgency: str) -> str | None:
    """The priority for ``impact`` and ``urgency`` (``None`` when either is not 1-3)."""
    return PRIORITY_MATRIX.get((impact, urgency))


def _stamp(record: Record, at: str, by: str, when: str, actor: Actor) -> None:
    record.setdefault(at, when)
    record.setdefault(by, actor.sys_id)


def _mirror(record: Record, source: str, twin: str) -> None:
    if record.get(source):
        record[twin] = record[source]
    else:
        record.pop(twin, None)


def _task_defaults(record: Record, state: str, actor: Actor, now: str) -> None:
    record.setdefault("state", state)
    record.setdefault("impact", "3")
    record.setdefault("urgency", "3")
    record.setdefault("active", "true")
    _stamp(record, "opened_at", "opened_by", now, actor)


def _incident(
    old: Record | None, new: Record, written: Set[str], actor: Actor, now: str, settings: Settings
) -> None:
    if old is None:
        if "state" not in new and "incident_state" in new:
            new["state"] = new["incident_state"]
        _task_defaults(new, "1", actor, now)
        new.setdefault("reopen_count", "0")  # an integer column: the Table API returns its default, 0
    if "state" in written or old is None:
        _mirror(new, "state", "incident_state")
    elif "incident_state" in written:
        _mirror(new, "incident_state", "state")
    state = new.get("state", "")
    previous = old.get("state", "") if old is not None else ""
    if state != previous:
        if state in RESOLVED_OR_CLOSED_STATES:
            _stamp(new, "resolved_at", "resolved_by", now, actor)
        if state == STATE_CLOSED:
            _stamp(new, "closed_at", "closed_by", now, actor)
        if state in FINAL_STATES:
            new["active"] = "false"
        if state == STATE_CANCELED and new.get("major_incident_state") in ("proposed", "accepted"):
            new["major_incident_state"] = "canceled"
        if state in OPEN_STATES and previous in FINISHED_STATES:
            new["active"] = "true"
            new["reopen_count"] = str(int(new.get("reopen_count", "0") or "0") + 1)
            for column in ("resolved_at", "resolved_by", "closed_at", "closed_by"):
                new.pop(column, None)
    major = new.get("major_incident_state", "")
    if major != (old.get("major_incident_state", "") if old is not None else ""):
        if major == "proposed":
            new["proposed_by"], new["proposed_on"] = actor.sys_id, now
        elif major == "accepted":
            new["promoted_by"], new["promoted_on"] = actor.sys_id, now
    if settings.resolve_requires_close_fields and state in RESOLVED_OR_CLOSED_STATES:
        missing = [label for column, label in CLOSE_FIELD_LABELS.items() if not new.get(column)]
        if missing:
            raise ServiceNowError(
                403,
                "Operation Failed",
                f"Data Policy Exception: The following fields are mandatory: {', '.join(missing)}",
            )


def _problem(
    old: Record | None, new: Record, written: Set[str], actor: Actor, now: str, settings: Settings
) -> None:
    previous = old.get("state", "") if old is not None else PROBLEM_NEW
    if not settings.problem_state_writable and "state" in written and new.get("state", "") != previous:
        raise ServiceNowError(
            403,
            "Operation Failed",
            "Invalid update: problem state transitions are not allowed through the Table API",
        )
    if old is None:
        _task_defaults(new, PROBLEM_NEW, actor, now)
    state = new.get("state", "")
    if state != previous or old is None:
        if state in (PROBLEM_RESOLVED, PROBLEM_CLOSED):
            _stamp(new, "resolved_at", "resolved_by", now, actor)
        if state == PROBLEM_CLOSED:
            _stamp(new, "closed_at", "closed_by", now, actor)
            new["active"] = "false"


def apply_rules(
    table: str,
    old: Record | None,
    new: Record,
    written: Set[str],
    actor: Actor,
    now: str,
    settings: Settings,
) -> None:
    """Run the rules of ``table`` on ``new`` (``old`` is ``None`` on insert); ``written`` = payload columns.

    Raises ``ServiceNowError`` 403 ``Operation Failed`` when a data policy or business rule aborts.
    """
    if table == "incident":
        _incident(old, new, written, actor, now, settings)
    elif table == "problem":
        _problem(old, new, written, actor, now, settings)
    elif table == "change_request" and old is None:
        new.setdefault("active", "true")
        _stamp(new, "opened_at", "opened_by", now, actor)
    if table in ("incident", "problem"):
        priority = priority_of(new.get("impact", ""), new.get("urgency", ""))
        if priority is not None:
            new["priority"] = priority
