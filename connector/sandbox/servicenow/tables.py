"""Storage of the simulated instance: sparse records, a time index, value indexes, reference look-ups.

A record is a ``dict`` of column -> stored string holding only non-empty values (100k incidents
must stay cheap). Each table keeps a sorted ``(time, sys_id)`` list on its change column
(``sys_updated_on``; ``sys_created_on`` for the append-only journal) so a watermark page is a
bisect plus a short walk, and hash indexes on the columns the connector looks records up by
(``number``, ``element_id``). Not thread-safe by itself: the app holds its lock around every call.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator

from connector.core import vocabulary
from connector.sandbox.servicenow.catalog import SERVED_TABLES, Catalog
from connector.sandbox.servicenow.errors import invalid_table
from connector.sandbox.servicenow.predicates import FieldAccess, Record

NUMBER_PREFIXES = {"incident": ("INC", 10001), "problem": ("PRB", 40001), "change_request": ("CHG", 30001)}
"""Number prefix and first number per table, as on a fresh instance (INC0010001, PRB0040001)."""
_INDEXED = {"sys_journal_field": ("element_id",), **{table: ("number",) for table in NUMBER_PREFIXES}}
_TIME_COLUMN = {"sys_journal_field": "sys_created_on"}
CHANGE_LOG_SIZE = 20_000

TimeKey = tuple[str, str]
"""``(time, sys_id)``: a record's position in its table's time index."""
Change = tuple[TimeKey | None, TimeKey | None]
"""A record's time key before and after one change (``None`` = absent)."""


class Table:
    """The records of one table, by sys_id, with a time index and optional value indexes."""

    def __init__(
        self,
        name: str,
        time_column: str = "sys_updated_on",
        indexed: tuple[str, ...] = (),
        log_size: int = CHANGE_LOG_SIZE,
    ) -> None:
        self.name = name
        self.time_column = time_column
        self.records: dict[str, Record] = {}
        self.version = 0
        """Incremented on every change, so derived caches know when to rebuild."""
        self._by_time: list[TimeKey] = []
        self._log: list[Change] = []
        self._log_start = 1
        self._log_size = log_size
        """The version the first change in ``_log`` produced."""
        # value -> sys_id, or a set of sys_ids once a value repeats (a set per unique number costs 216 B)
        self._indexes: dict[str, dict[str, str | set[str]]] = {column: {} for column in indexed}

    def __len__(self) -> int:
        return len(self.records)

    def get(self, sys_id: str) -> Record | None:
        """The stored record (do not mutate it; :meth:`put` a changed copy)."""
        return self.records.get(sys_id)

    def put(self, record: Record) -> None:
        """Insert ``record`` or replace the stored one with the same sys_id, keeping indexes right."""
        sys_id = record["sys_id"]
        old = self.records.get(sys_id)
        old_key = self._unindex(old) if old is not None else None
        self.records[sys_id] = record
        key = (record.get(self.time_column, ""), sys_id)
        insort(self._by_time, key)
        for column, index in self._indexes.items():
            value = record.get(column)
            if value:
                members = index.get(value)
                if members is None:
                    index[value] = sys_id
                elif isinstance(members, set):
                    members.add(sys_id)
                elif members != sys_id:
                    index[value] = {members, sys_id}
        self._logged(old_key, key)

    def remove(self, sys_id: str) -> Record | None:
        """Delete a record; returns it, or ``None`` when there was none."""
        old = self.records.pop(sys_id, None)
        if old is not None:
            self._logged(self._unindex(old), None)
        return old

    def _logged(self, old_key: TimeKey | None, new_key: TimeKey | None) -> None:
        self.version += 1
        self._log.append((old_key, new_key))
        if len(self._log) > 2 * self._log_size:
            del self._log[: self._log_size]
            self._log_start += self._log_size

    def changes_since(self, version: int) -> list[Change] | None:
        """The changes after ``version``, oldest first; ``None`` when the log no longer reaches back."""
        offset = version + 1 - self._log_start
        if offset < 0:
            return None
        return self._log[offset:]

    def time_keys(self) -> list[TimeKey]:
        """A copy of the time index: every record's ``(time, sys_id)``, sorted."""
        return list(self._by_time)

    def _unindex(self, record: Record) -> TimeKey:
        sys_id = record["sys_id"]
        entry = (record.get(self.time_column, ""), sys_id)
        position = bisect_left(self._by_time, entry)
        if position < len(self._by_time) and self._by_time[position] == entry:
            del self._by_time[position]
        for column, index in self._indexes.items():
            value = record.get(column, "")
            members = index.get(value)
            if members == sys_id:
                del index[value]
            elif isinstance(members, set):
                members.discard(sys_id)
                if len(members) == 1:
                    index[value] = members.pop()
        return entry

    def indexes(self, column: str) -> bool:
        """True when ``column`` has a value index (``sys_id`` always has one: the dict)."""
        return column == "sys_id" or column in self._indexes

    def lookup(self, column: str, values: frozenset[str]) -> set[str]:
        """The sys_ids of records whose indexed ``column`` holds one of ``values``."""
        if column == "sys_id":
            return {value for value in values if value in self.records}
        index = self._indexes[column]
        found: set[str] = set()
        for value in values:
            members = index.get(value)
            if isinstance(members, set):
                found |= members
            elif members is not None:
                found.add(members)
        return found

    def time_range(self, lower: str | None, upper: str | None) -> Iterator[Record]:
        """Records whose time column lies in ``[lower, upper]`` (open ends when ``None``), oldest first.

        Ties in the same second come in sys_id order. Iterating while the table changes is not allowed.
        """
        start = bisect_left(self._by_time, (lower, "")) if lower else 0
        stop = bisect_right(self._by_time, (upper, "\uffff")) if upper else len(self._by_time)
        records = self.records
        for position in range(start, stop):
            yield records[self._by_time[position][1]]

    def count_time_range(self, lower: str | None, upper: str | None) -> int:
        """How many records :meth:`time_range` would yield, by bisection."""
        start = bisect_left(self._by_time, (lower, "")) if lower else 0
        stop = bisect_right(self._by_time, (upper, "\uffff")) if upper else len(self._by_time)
        return max(0, stop - start)


class Database:
    """All tables of the instance plus what spans tables: references, choice labels, sys_ids, numbers."""

    def __init__(self, catalog: Catalog, seed: int = 0) -> None:
        self.catalog = catalog
        self.tables = {
            name: Table(name, _TIME_COLUMN.get(name, "sys_updated_on"), _INDEXED.get(name, ()))
            for name in SERVED_TABLES
        }
        self._rng = random.Random(seed)  # noqa: S311 - repeatable sys_ids, not secrets
        self._numbers = {table: first for table, (_prefix, first) in NUMBER_PREFIXES.items()}
        self._access: dict[tuple[str, str], FieldAccess | None] = {}
        self._choices: tuple[int, dict[tuple[str, str, str], str]] = (-1, {})

    def table(self, name: str) -> Table:
        """The table called ``name``. Raises ``ServiceNowError`` 400 ``Invalid table`` otherwise."""
        table = self.tables.get(name)
        if table is None:
            raise invalid_table(name)
        return table

    def new_sys_id(self) -> str:
        """A fresh sys_id: 32 lowercase hex digits."""
        return f"{self._rng.getrandbits(128):032x}"

    def next_number(self, table: str) -> str | None:
        """The next ``number`` of a numbered table (INC0010001 …), or ``None`` for other tables."""
        if table not in NUMBER_PREFIXES:
            return None
        prefix, _first = NUMBER_PREFIXES[table]
        value = self._numbers[table]
        self._numbers[table] = value + 1
        return f"{prefix}{value:07d}"

    def lookup(self, table: str, sys_id: str) -> Record | None:
        """The record ``sys_id`` of ``table``; a ``task`` reference is found in the tables extending it."""
        if table == "task":
            for child in vocabulary.TASK_TABLES:
                found = self.tables[child].get(sys_id)
                if found is not None:
                    return found
            return None
        stored = self.tables.get(table)
        return stored.get(sys_id) if stored is not None else None

    def reference_display(self, table: str, sys_id: str) -> str:
        """What a reference to ``sys_id`` in ``table`` shows (its display column; the sys_id itself as a fallback)."""
        record = self.lookup(table, sys_id)
        column = self.catalog.display_column(table)
        if record is None or column is None:
            return sys_id
        return record.get(column, "")

    def find_by_display(self, table: str, display: str) -> str | None:
        """The sys_id of the record of ``table`` whose display value is ``display`` (first by sys_id)."""
        column = self.catalog.display_column(table)
        if column is None:
            return None
        matches: list[str] = []
        for name in vocabulary.TASK_TABLES if table == "task" else (table,):
            stored = self.tables.get(name)
            if stored is not None and stored.indexes(column):
                matches += stored.lookup(column, frozenset({display}))
            elif stored is not None:
                matches += (
                    sys_id for sys_id, record in stored.records.items() if record.get(column) == display
                )
        return min(matches) if matches else None

    def choice_label(self, table: str, column: str, value: str) -> str | None:
        """The ``sys_choice`` label of ``value`` (the table's own list, else the one on ``task``)."""
        choices = self.tables["sys_choice"]
        version, labels = self._choices
        if version != choices.version:
            labels = {}
            for row in choices.records.values():
                key = (row.get("name", ""), row.get("element", ""), row.get("value", ""))
                labels.setdefault(key, row.get("label", ""))
            self._choices = (choices.version, labels)
        label = labels.get((table, column, value))
        if label is None and table in vocabulary.TASK_TABLES:
            label = labels.get(("task", column, value))
        return label

    def choice_value(self, table: str, column: str, label: str) -> str | None:
        """The stored value whose label is ``label`` in ``column``'s choice list, if any."""
        self.choice_label(table, column, "")
        for (name, element, value), text in self._choices[1].items():
            if element == column and text == label and name in (table, "task"):
                return value
        return None

    def access(self, table: str, path: str) -> FieldAccess | None:
        """How to read ``path`` (dot-walks allowed) on records of ``table``; ``None`` when invalid."""
        key = (table, path)
        if key not in self._access:
            self._access[key] = self._build_access(table, path)
        return self._access[key]

    def _build_access(self, table: str, path: str) -> FieldAccess | None:
        steps = self.catalog.walk(table, path)
        if steps is None:
            return None
        owner, last = steps[-1]
        default = self.catalog.implicit(owner).get(last.name, "")
        if len(steps) == 1:
            name = last.name
            return FieldAccess(last.kind, lambda record: record.get(name, default), name)
        hops = [(column.name, column.reference or "") for _table, column in steps[:-1]]
        final = last.name
        lookup = self.lookup

        def walk(record: Record) -> str:
            current: Record | None = record
            for column, target in hops:
                sys_id = current.get(column, "") if current is not None else ""
                current = lookup(target, sys_id) if sys_id else None
                if current is None:
                    return ""
            return current.get(final, default) if current is not None else ""

        return FieldAccess(last.kind, walk)
