"""``X-Total-Count`` for watermark queries without scanning the tail on every page.

A keyset poll asks the same filter (the *residual*: everything but the time bounds) with a
moving lower bound, page after page. For each residual this cache keeps the sorted time keys of
the rows it matches, brought up to date from the table's change log, so a page's total is two
bisections instead of a walk over every later row. Only residuals whose meaning cannot change
behind the table's back qualify: plain columns (no dot-walks into other tables) and no
``javascript:``/relative date operands (they depend on the clock or the caller).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from dataclasses import dataclass

from connector.sandbox.servicenow.predicates import CompiledQuery, Predicate
from connector.sandbox.servicenow.tables import Table, TimeKey

CACHED_RESIDUALS = 8


@dataclass
class _Matching:
    version: int
    keys: list[TimeKey]


def _cacheable(predicate: Predicate) -> bool:
    return (
        predicate.column is not None
        and "javascript:" not in predicate.text
        and "RELATIVE" not in predicate.text
    )


def split_residual(table: Table, query: CompiledQuery) -> CompiledQuery | None:
    """The single-block ``query`` without its time-bound clauses, if it qualifies for caching."""
    if len(query.blocks) != 1:
        return None
    residual = tuple(
        clause
        for clause in query.blocks[0]
        if not (
            len(clause) == 1
            and clause[0].column == table.time_column
            and (clause[0].lower is not None or clause[0].upper is not None)
        )
    )
    if not residual or not all(_cacheable(p) for clause in residual for p in clause):
        return None
    return CompiledQuery((residual,), ())


class CountCache:
    """Sorted time keys of the rows matching recent residuals, per table; the caller holds the lock."""

    def __init__(self, size: int = CACHED_RESIDUALS) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, tuple[tuple[str, ...], ...]], _Matching] = OrderedDict()

    def count(self, table: Table, residual: CompiledQuery, lower: str | None, upper: str | None) -> int:
        """Rows of ``table`` matching ``residual`` whose time lies in ``[lower, upper]``."""
        key = (table.name, tuple(tuple(p.text for p in clause) for clause in residual.blocks[0]))
        entry = self._entries.get(key)
        if entry is None or not self._refresh(entry, table, residual):
            entry = _Matching(table.version, self._scan(table, residual))
            self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)
        keys = entry.keys
        start = bisect_left(keys, (lower, "")) if lower else 0
        stop = bisect_right(keys, (upper, "\uffff")) if upper else len(keys)
        return max(0, stop - start)

    @staticmethod
    def _scan(table: Table, residual: CompiledQuery) -> list[TimeKey]:
        records = table.records
        return [key for key in table.time_keys() if residual.matches(records[key[1]])]

    @staticmethod
    def _refresh(entry: _Matching, table: Table, residual: CompiledQuery) -> bool:
        """Replay the table's changes since the entry was built; ``False`` when the log is too short."""
        changes = table.changes_since(entry.version)
        if changes is None:
            return False
        keys = entry.keys
        for old_key, new_key in changes:
            if old_key is not None:
                position = bisect_left(keys, old_key)
                if position < len(keys) and keys[position] == old_key:
                    del keys[position]
            if new_key is not None:
                record = table.get(new_key[1])
                current = record is not None and (record.get(table.time_column, ""), new_key[1]) == new_key
                if current and record is not None and residual.matches(record):
                    position = bisect_left(keys, new_key)
                    if position == len(keys) or keys[position] != new_key:
                        insort(keys, new_key)
        entry.version = table.version
        return True
