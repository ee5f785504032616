"""The write path shared by POST/PUT/PATCH/DELETE and the in-process ``insert()`` used for seeding.

A payload is coerced to strings, stripped of what the Table API ignores (unknown columns,
``sys_*`` columns, read-only ``comments_and_work_notes``), journal fields are split off into
``sys_journal_field`` entries, business rules run, and only then are the system fields stamped:
``sys_updated_on`` (second precision, server clock), ``sys_updated_by`` and ``sys_mod_count``
move only when something actually changed. Once a write is stored, the writer's ``on_write``
hook (if any) hears of it with the journal entries it added: the async business rules of the push
(:mod:`.push`) run from there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from connector.sandbox.servicenow.dates import format_utc, from_display, normalise_literal
from connector.sandbox.servicenow.errors import ServiceNowError, acl_refused, no_record
from connector.sandbox.servicenow.predicates import Record
from connector.sandbox.servicenow.rules import Actor, apply_rules
from connector.sandbox.servicenow.settings import Settings
from connector.sandbox.servicenow.tables import Database

JOURNAL_TABLE = "sys_journal_field"
WRITABLE_JOURNALS = ("work_notes", "comments")

WriteHook = Callable[[str, str, Record, list[Record]], None]
"""``(table, "insert"|"update", stored record, journal entries added)``, called after a write is stored."""


def coerce(value: Any) -> str:
    """A JSON value as ServiceNow stores it: text; ``null`` clears; ``{"value": x}`` means ``x``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict) and "value" in value:
        return coerce(value["value"])
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Writer:
    """Applies writes to a :class:`Database`; the caller holds the instance lock."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        now: Callable[[], datetime],
        on_write: WriteHook | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.now = now
        self.on_write = on_write

    def _prepare(
        self, table: str, payload: Mapping[str, Any], actor: Actor, input_display: bool
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(column values, journal entries) of ``payload``; ignored columns are left out."""
        columns = self.database.catalog.columns(table)
        values: dict[str, str] = {}
        notes: dict[str, str] = {}
        for name, raw in payload.items():
            column = columns.get(name)
            if column is None or name.startswith("sys_"):
                continue
            value = coerce(raw)
            if column.kind == "journal":
                if name in WRITABLE_JOURNALS and value.strip():
                    notes[name] = value
                continue
            converted = self._convert(
                table, column.name, column.kind, column.reference, value, actor, input_display
            )
            if converted is not None:
                # Repeated values (references, choices, flags) share one string across 100k records.
                values[name] = sys.intern(converted) if len(converted) <= 40 else converted
        return values, notes

    def _convert(
        self,
        table: str,
        name: str,
        kind: str,
        reference: str | None,
        value: str,
        actor: Actor,
        input_display: bool,
    ) -> str | None:
        """The stored form of one input value; ``None`` when the platform would reject it silently."""
        if not value:
            return value
        if kind == "datetime":
            return (from_display(value, actor.zone) if input_display else normalise_literal(value)) or None
        if not input_display:
            return value
        if reference is not None:
            if self.database.lookup(reference, value) is not None:
                return value
            return self.database.find_by_display(reference, value) or value
        label_value = self.database.choice_value(table, name, value)
        return label_value if label_value is not None else value

    def insert(
        self, table: str, payload: Mapping[str, Any], actor: Actor, *, input_display: bool = False
    ) -> Record:
        """Insert one record and its journal entries; returns the stored record."""
        stored = self.database.table(table)
        if table == JOURNAL_TABLE:
            raise acl_refused("Insert")
        values, notes = self._prepare(table, payload, actor, input_display)
        now = format_utc(self.now())
        record = {name: value for name, value in values.items() if value}
        apply_rules(table, None, record, set(values), actor, now, self.settings)
        if not record.get("number"):
            number = self.database.next_number(table)
            if number is not None:
                record["number"] = number
        sys_id = self.database.new_sys_id()
        record.update(
            sys_id=sys_id,
            sys_created_on=now,
            sys_created_by=actor.user_name,
            sys_updated_on=now,
            sys_updated_by=actor.user_name,
            sys_mod_count="0",
        )
        stored.put(record)
        entries = self._journal(table, sys_id, notes, actor, now)
        if self.on_write is not None:
            self.on_write(table, "insert", record, entries)
        return record

    def update(
        self,
        table: str,
        sys_id: str,
        payload: Mapping[str, Any],
        actor: Actor,
        *,
        input_display: bool = False,
    ) -> Record:
        """Partially update a record (PUT and PATCH alike); a write that changes nothing bumps nothing."""
        stored = self.database.table(table)
        old = stored.get(sys_id)
        if old is None:
            raise no_record()
        if table == JOURNAL_TABLE:
            raise acl_refused("Update")
        values, notes = self._prepare(table, payload, actor, input_display)
        now = format_utc(self.now())
        new = dict(old)
        for name, value in values.items():
            if value:
                new[name] = value
            else:
                new.pop(name, None)
        apply_rules(table, old, new, set(values), actor, now, self.settings)
        if new == old and not notes:
            return old
        new.update(
            sys_updated_on=now,
            sys_updated_by=actor.user_name,
            sys_mod_count=str(int(old.get("sys_mod_count", "0")) + 1),
        )
        stored.put(new)
        entries = self._journal(table, sys_id, notes, actor, now)
        if self.on_write is not None:
            self.on_write(table, "update", new, entries)
        return new

    def delete(self, table: str, sys_id: str) -> None:
        """Delete a record. Raises ``ServiceNowError`` 404 when it does not exist."""
        stored = self.database.table(table)
        if stored.get(sys_id) is None:
            raise no_record()
        if table == JOURNAL_TABLE:
            raise acl_refused("Delete")
        stored.remove(sys_id)

    def _journal(
        self, table: str, sys_id: str, notes: Mapping[str, str], actor: Actor, now: str
    ) -> list[Record]:
        journal = self.database.table(JOURNAL_TABLE)
        entries: list[Record] = []
        for element, text in notes.items():
            entry = {
                "sys_id": self.database.new_sys_id(),
                "name": table,
                "element": element,
                "element_id": sys_id,
                "value": text,
                "sys_created_on": now,
                "sys_created_by": actor.user_name,
            }
            journal.put(entry)
            entries.append(entry)
        return entries


def read_payload(body: Any) -> Mapping[str, Any]:
    """The record in a write body: an object, or the first object of an array (ServiceNow inserts one)."""
    if isinstance(body, list):
        body = next((item for item in body if isinstance(item, dict)), None)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ServiceNowError(400, "Exception while reading request", "The payload is not valid JSON.")
    return body
