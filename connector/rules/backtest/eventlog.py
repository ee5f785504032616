"""ServiceNow incident audit exports (the format of the shipped ``incident_events.csv``) as typed events.

One row is one update of one incident, carrying the incident's fields after that update in their
display form (``2 - Medium``, ``Awaiting User Info``, ``?`` for empty). :func:`read_events`
turns rows into :class:`IncidentEvent` values with ServiceNow's stored values (``impact: "2"``,
``state: "3"`` plus ``hold_reason``), ordered as they happened. Pure parsing; no I/O beyond
reading the file. Used by the sandbox replay and by the rules back-test.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import MappingProxyType

from connector.core.vocabulary import (
    RESOLVED_OR_CLOSED_STATES,
    STATE_CLOSED,
    STATE_IN_PROGRESS,
    STATE_NEW,
    STATE_ON_HOLD,
    STATE_RESOLVED,
)

BUILTIN = "builtin"
"""Names the event-log slice shipped with the package."""

EMPTY = "?"
DATE_FORMAT = "%d/%m/%Y %H:%M"

# Labels of the log's legacy state model -> core state value and on-hold reason.
STATE_LABELS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "New": (STATE_NEW, ""),
        "Active": (STATE_IN_PROGRESS, ""),
        "Awaiting User Info": (STATE_ON_HOLD, "1"),
        "Awaiting Evidence": (STATE_ON_HOLD, "1"),
        "Awaiting Problem": (STATE_ON_HOLD, "3"),
        "Awaiting Vendor": (STATE_ON_HOLD, "4"),
        "Resolved": (STATE_RESOLVED, ""),
        "Closed": (STATE_CLOSED, ""),
    }
)
REFERENCE_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "caller_id": "sys_user",
        "opened_by": "sys_user",
        "assigned_to": "sys_user",
        "assignment_group": "sys_user_group",
        "cmdb_ci": "cmdb_ci",
        "problem_id": "problem",
    }
)
"""Log columns that name a referenced record (by its display value). ``resolved_by`` is left out:
the log repeats the final resolver on every row, and ServiceNow sets it itself on resolution."""
PLAIN_COLUMNS = ("category", "subcategory", "contact_type", "u_symptom")


@dataclass(frozen=True)
class IncidentEvent:
    """One audited update: which incident, when, and its fields afterwards (stored values)."""

    number: str
    updated_at: datetime
    mod_count: int
    opened_at: datetime | None
    fields: Mapping[str, str]
    """Plain columns (state, impact, urgency, category, …) as ServiceNow stores them; ``""`` = empty."""
    references: Mapping[str, str]
    """Reference columns by the display name of the referenced record (``Group 56``)."""
    priority: str
    """The priority the log recorded (ServiceNow computes it from impact and urgency)."""


def builtin_path() -> Path:
    """The shipped slice of the event log (see ``connector/sandbox/data/README.md``)."""
    return Path(str(resources.files("connector.sandbox") / "data" / "incident_events.csv"))


def read_events(path: Path | str) -> list[IncidentEvent]:
    """All events of ``path`` (or ``builtin``) in the order they happened.

    Raises:
        ValueError: a row lacks a column or carries an unparseable date; the message names the line.
    """
    source = builtin_path() if str(path) == BUILTIN else Path(path)
    with source.open(newline="", encoding="utf-8") as handle:
        events = list(parse_rows(csv.DictReader(handle)))
    return sorted(events, key=lambda e: (e.updated_at, e.number, e.mod_count))


def parse_rows(rows: Iterable[Mapping[str, str]]) -> Iterator[IncidentEvent]:
    """Events from CSV rows, in row order."""
    for line, row in enumerate(rows, start=2):
        try:
            yield _event(row)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"line {line}: {exc}") from None


def _event(row: Mapping[str, str]) -> IncidentEvent:
    state, hold_reason = STATE_LABELS.get(row["incident_state"], (STATE_IN_PROGRESS, ""))
    fields = {
        "state": state,
        "hold_reason": hold_reason,
        "impact": _choice(row["impact"]),
        "urgency": _choice(row["urgency"]),
        **{column: _value(row.get(column, EMPTY)) for column in PLAIN_COLUMNS},
    }
    if state in RESOLVED_OR_CLOSED_STATES:
        code = _value(row.get("closed_code", EMPTY))
        fields["close_code"] = "Solution provided"
        fields["close_notes"] = f"Closed in the source log with {code or 'no code'}."
    return IncidentEvent(
        number=row["number"],
        updated_at=_date(row["sys_updated_at"]),
        mod_count=int(row["sys_mod_count"]),
        opened_at=_date(row["opened_at"]) if _value(row["opened_at"]) else None,
        fields=MappingProxyType(fields),
        references=MappingProxyType(
            {column: " ".join(_value(row.get(column, EMPTY)).split()) for column in REFERENCE_COLUMNS}
        ),
        priority=_choice(row["priority"]),
    )


def _value(text: str) -> str:
    return "" if text.strip() == EMPTY else text.strip()


def _choice(text: str) -> str:
    """``2 - Medium`` -> ``2``."""
    value = _value(text)
    return value.split(" - ", 1)[0] if value else ""


def _date(text: str) -> datetime:
    return datetime.strptime(text.strip(), DATE_FORMAT).replace(tzinfo=UTC)


def changed(previous: IncidentEvent | None, current: IncidentEvent) -> tuple[dict[str, str], dict[str, str]]:
    """The plain fields and references that differ from the incident's previous event."""
    if previous is None:
        return (
            {k: v for k, v in current.fields.items() if v},
            {k: v for k, v in current.references.items() if v},
        )
    fields = {k: v for k, v in current.fields.items() if previous.fields.get(k) != v}
    references = {k: v for k, v in current.references.items() if previous.references.get(k) != v}
    return fields, references
