"""An in-memory ServiceNow instance behind :class:`~connector.core.ports.ServiceNowPort`, with fault switches.

It keeps incidents, problems and their journal (``sys_journal_field``) and answers as
:class:`connector.servicenow.adapter.ServiceNowAdapter` does: keyset pages in
``(sys_updated_on, sys_id)`` / ``(sys_created_on, sys_id)`` order read as the caller iterates (one
request each, so a row changed while paging moves behind the cursor), second-precision UTC times,
``work_notes`` / ``comments`` written as journal entries (never as fields), ``sys_mod_count`` one up
per write, ``None`` for a record that does not exist, :class:`~connector.core.errors.TicketNotAccessible`
(a 404) for a write to one, :class:`~connector.core.errors.InvalidRequest` for a malformed query.

What it does not do: resolve references. Dot-walked values (``assignment_group.name``) are stored
under their path as the test gives them; ``priority`` is not computed from impact and urgency.

Actors: the connector's calls (the port) write as :attr:`integration_user`; a test acts as the
service desk with :meth:`FakeServiceNow.desk_create` and :meth:`FakeServiceNow.desk_update`, which no
fault touches. Every port call is logged in :attr:`FakeServiceNow.calls`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from connector.core.errors import InvalidRequest, TicketNotAccessible
from connector.core.models import Incident, JournalElement, JournalEntry, Problem
from connector.core.ports import ServiceNowPort
from connector.core.times import servicenow_precision
from tests.fakes.clock import Clock
from tests.fakes.faults import Faults

JOURNAL_ELEMENTS: tuple[JournalElement, ...] = ("work_notes", "comments")
WRITES = frozenset({"create_incident", "update_incident", "add_journal", "create_problem", "update_problem"})
JOURNAL_PAGE_SIZE = 500
_PLAIN_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")
T = TypeVar("T")


@dataclass
class Record:
    """An incident or problem row as the instance holds it."""

    table: str
    sys_id: str
    number: str
    mod_count: int
    created_on: datetime
    updated_on: datetime
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JournalRow:
    """A ``sys_journal_field`` row (``name`` is the table the entry belongs to)."""

    name: str
    entry: JournalEntry


class FakeServiceNow:
    """ServiceNow in memory; implements :class:`~connector.core.ports.ServiceNowPort`."""

    def __init__(self, clock: Clock, integration_user: str = "svc.mim-connector") -> None:
        self.clock = clock
        self.integration_user = integration_user
        self.faults = Faults("servicenow")
        self.calls: list[str] = []
        """Every request of the port, by operation, in order (a paged read: one per page)."""
        self.incidents: dict[str, Record] = {}
        self.problems: dict[str, Record] = {}
        self.journal: list[JournalRow] = []
        self._ids = itertools.count(1)
        self._numbers = {"incident": itertools.count(10001), "problem": itertools.count(40001)}
        self._answered = False

    # --- the service desk (no faults, not logged) -----------------------------------------------

    def desk_create(self, user: str = "admin", **values: str) -> Incident:
        """A new incident as a desk analyst files it; ``work_notes`` / ``comments`` become journal entries."""
        return self._read(self._create("incident", values, user), list(values))

    def desk_update(self, sys_id: str, user: str = "admin", **values: str) -> None:
        """A desk analyst's edit of an incident (one write)."""
        self._patch(self.incidents, sys_id, values, user)

    def record(self, sys_id: str) -> Record:
        """The incident as the instance holds it now."""
        return self.incidents[sys_id]

    def journal_values(self, sys_id: str, element: JournalElement | None = None) -> list[str]:
        """The texts of a record's journal entries (of one ``element``), oldest first."""
        return [
            row.entry.value
            for row in self._journal_rows(sys_id)
            if element is None or row.entry.element == element
        ]

    def writes(self) -> list[str]:
        """The port's write requests, in order."""
        return [call for call in self.calls if call in WRITES]

    # --- ServiceNowPort -----------------------------------------------------------------------------

    def server_time(self) -> datetime | None:
        """The clock as of the last answer; ``None`` before any call."""
        return self.clock() if self._answered else None

    def incidents_changed(self, since: datetime, fields: Sequence[str], page_size: int) -> Iterator[Incident]:
        """Incidents with ``sys_updated_on >= since`` in (sys_updated_on, sys_id) order, keyset-paged."""
        since = _checked_since(since)
        _checked_page_size(page_size)

        def rows() -> list[tuple[datetime, str, Record]]:
            return [(r.updated_on, r.sys_id, r) for r in self.incidents.values() if r.updated_on >= since]

        for record in self._keyset("incidents_changed", rows, page_size):
            yield self._read(record, fields)

    def incident(self, sys_id: str, fields: Sequence[str]) -> Incident | None:
        """One incident by sys_id, or ``None``."""
        found = self._call("incident", lambda: self.incidents.get(sys_id))
        return self._read(found, fields) if found is not None else None

    def incident_where(self, field: str, value: str, fields: Sequence[str]) -> Incident | None:
        """The first incident (by creation) whose ``field`` equals ``value``."""
        if not _PLAIN_FIELD.match(field) or "^" in value:
            raise InvalidRequest(f"servicenow: cannot look up incidents by {field}={value!r}")
        found = self._call("incident_where", lambda: self._first(self.incidents, field, value))
        return self._read(found, fields) if found is not None else None

    def create_incident(self, fields: Mapping[str, str], read: Sequence[str]) -> Incident:
        """Create an incident as the integration user; a lost answer raises ``UncertainOutcome``."""
        record = self._call(
            "create_incident", lambda: self._create("incident", fields, self.integration_user), write=True
        )
        return self._read(record, read)

    def journal_since(self, since: datetime, page_size: int) -> Iterator[JournalEntry]:
        """Incident journal entries with ``sys_created_on >= since``, in (created, sys_id) order."""
        since = _checked_since(since)
        _checked_page_size(page_size)

        def rows() -> list[tuple[datetime, str, JournalEntry]]:
            return [
                (row.entry.sys_created_on, row.entry.sys_id, row.entry)
                for row in self.journal
                if row.name == "incident" and row.entry.sys_created_on >= since
            ]

        yield from self._keyset("journal_since", rows, page_size)

    def journal_of(self, incident_sys_id: str) -> list[JournalEntry]:
        """Every work note and comment of one incident, oldest first."""
        return self._journal_of("incident", incident_sys_id)

    def update_incident(self, sys_id: str, fields: Mapping[str, str]) -> int | None:
        """Change fields in one write (journal fields append entries); the ``sys_mod_count`` after it."""
        if not fields:
            return None
        return self._call(
            "update_incident",
            lambda: self._patch(self.incidents, sys_id, fields, self.integration_user),
            write=True,
        )

    def add_journal(self, sys_id: str, element: JournalElement, text: str) -> None:
        """Append a work note or comment in one write; empty text sends nothing."""
        if element not in JOURNAL_ELEMENTS:
            raise InvalidRequest(f"servicenow: {element!r} is not a journal field")
        if text:
            self._call(
                "add_journal",
                lambda: self._patch(self.incidents, sys_id, {element: text}, self.integration_user),
                write=True,
            )

    def problem_where(self, field: str, value: str) -> Problem | None:
        """The first problem (by creation) whose ``field`` equals ``value``."""
        if not _PLAIN_FIELD.match(field) or "^" in value:
            raise InvalidRequest(f"servicenow: cannot look up problems by {field}={value!r}")
        found = self._call("problem_where", lambda: self._first(self.problems, field, value))
        return _problem(found) if found is not None else None

    def create_problem(self, fields: Mapping[str, str]) -> Problem:
        """Create a problem as the integration user; a lost answer raises ``UncertainOutcome``."""
        record = self._call(
            "create_problem", lambda: self._create("problem", fields, self.integration_user), write=True
        )
        return _problem(record)

    def update_problem(self, sys_id: str, fields: Mapping[str, str]) -> None:
        """Change fields of a problem in one write (``work_notes`` appends); nothing sent when empty."""
        if fields:
            self._call(
                "update_problem",
                lambda: self._patch(self.problems, sys_id, fields, self.integration_user),
                write=True,
            )

    def problem_journal(self, sys_id: str) -> list[JournalEntry]:
        """Every work note and comment of one problem, oldest first."""
        return self._journal_of("problem", sys_id)

    # --- the instance ---------------------------------------------------------------------------------

    def _call(self, operation: str, apply: Callable[[], T], *, write: bool = False) -> T:
        self.calls.append(operation)
        result = self.faults.run(operation, apply, write=write)
        self._answered = True
        return result

    def _keyset(
        self, operation: str, rows: Callable[[], list[tuple[datetime, str, T]]], page_size: int
    ) -> Iterator[T]:
        """Pages of ``rows()`` after the last key seen, each read afresh (one request per page)."""
        last: tuple[datetime, str] | None = None
        while True:

            def page(after: tuple[datetime, str] | None = last) -> list[tuple[datetime, str, T]]:
                ordered = sorted((row for row in rows() if after is None or row[:2] > after), key=_key)
                return ordered[:page_size]

            batch = self._call(operation, page)
            for time_value, sys_id, item in batch:
                last = (time_value, sys_id)
                yield item
            if len(batch) < page_size:
                return

    def _journal_of(self, table: str, sys_id: str) -> list[JournalEntry]:
        def rows() -> list[tuple[datetime, str, JournalEntry]]:
            return [
                (row.entry.sys_created_on, row.entry.sys_id, row.entry)
                for row in self.journal
                if row.name == table and row.entry.incident_sys_id == sys_id
            ]

        operation = "journal_of" if table == "incident" else "problem_journal"
        return list(self._keyset(operation, rows, JOURNAL_PAGE_SIZE))

    def _journal_rows(self, sys_id: str) -> list[JournalRow]:
        rows = [row for row in self.journal if row.entry.incident_sys_id == sys_id]
        return sorted(rows, key=lambda row: (row.entry.sys_created_on, row.entry.sys_id))

    def _now(self) -> datetime:
        return servicenow_precision(self.clock())

    def _sys_id(self) -> str:
        return f"{next(self._ids):032x}"

    def _create(self, table: str, values: Mapping[str, str], user: str) -> Record:
        now = self._now()
        prefix = "INC" if table == "incident" else "PRB"
        number = values.get("number") or f"{prefix}{next(self._numbers[table]):07d}"
        plain = {k: v for k, v in values.items() if k not in JOURNAL_ELEMENTS and k != "number"}
        record = Record(table, self._sys_id(), number, 0, now, now, plain)
        (self.incidents if table == "incident" else self.problems)[record.sys_id] = record
        self._journal_entries(record, values, user)
        return record

    def _patch(self, records: dict[str, Record], sys_id: str, values: Mapping[str, str], user: str) -> int:
        record = records.get(sys_id)
        if record is None:
            table = "incident" if records is self.incidents else "problem"
            raise TicketNotAccessible(f"servicenow: PATCH {table}/{sys_id}: HTTP 404 No Record found")
        record.values.update({k: v for k, v in values.items() if k not in JOURNAL_ELEMENTS})
        record.mod_count += 1
        record.updated_on = self._now()
        self._journal_entries(record, values, user)
        return record.mod_count

    def _journal_entries(self, record: Record, values: Mapping[str, str], user: str) -> None:
        for element in JOURNAL_ELEMENTS:
            if values.get(element):
                entry = JournalEntry(
                    self._sys_id(), record.sys_id, element, values[element], self._now(), user
                )
                self.journal.append(JournalRow(record.table, entry))

    @staticmethod
    def _first(records: Mapping[str, Record], field: str, value: str) -> Record | None:
        def current(record: Record) -> str:
            return (
                record.number
                if field == "number"
                else record.sys_id
                if field == "sys_id"
                else record.values.get(field, "")
            )

        matches = sorted(
            (r for r in records.values() if current(r) == value), key=lambda r: (r.created_on, r.sys_id)
        )
        return matches[0] if matches else None

    @staticmethod
    def _read(record: Record, fields: Sequence[str]) -> Incident:
        """The incident with the asked-for columns present on the record (as the adapter reads them)."""
        values = {name: record.values[name] for name in fields if name in record.values}
        return Incident(
            record.sys_id, record.number, record.mod_count, record.updated_on, MappingProxyType(values)
        )


def _problem(record: Record) -> Problem:
    return Problem(record.sys_id, record.number, record.values.get("cause_notes", ""))


def _key(row: tuple[datetime, str, Any]) -> tuple[datetime, str]:
    return row[0], row[1]


def _checked_since(since: datetime) -> datetime:
    if since.tzinfo is None:
        raise InvalidRequest(f"servicenow: watermark {since!r} is not timezone-aware")
    return servicenow_precision(since)


def _checked_page_size(page_size: int) -> None:
    if page_size < 1:
        raise InvalidRequest(f"servicenow: page size must be at least 1, not {page_size}")


if TYPE_CHECKING:  # mypy proves the fake satisfies the port
    _PORT: type[ServiceNowPort] = FakeServiceNow
