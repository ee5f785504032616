"""The simulated instance's dictionary (``sys_dictionary``): tables, their columns and column kinds.

Built from :mod:`connector.core.vocabulary` plus the spec's custom columns. Unlike the
connector's config checks, the instance takes nothing on trust: a ``u_`` column exists only when
the spec adds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connector.core import vocabulary

SERVED_TABLES = tuple(name for name in vocabulary.TABLES if name != "task")
"""Tables the Table API serves. ``task`` is only a reference target (see ``vocabulary.TASK_TABLES``)."""


@dataclass(frozen=True)
class Column:
    """One column: its name, kind and, for references, the referenced table."""

    name: str
    kind: str
    reference: str | None = None


def _kind(name: str, reference: str | None) -> str:
    if reference is not None:
        return "reference"
    if name in vocabulary.JOURNAL_FIELDS:
        return "journal"
    if name in vocabulary.INTEGER_COLUMNS:
        return "integer"
    if name in vocabulary.DATETIME_COLUMNS:
        return "datetime"
    if name in vocabulary.BOOLEAN_COLUMNS:
        return "boolean"
    return "string"


class Catalog:
    """Columns per table, in a stable order (schema order, then custom columns)."""

    def __init__(self, custom_columns: Mapping[str, tuple[str, ...]] | None = None) -> None:
        custom = custom_columns or {}
        self._columns: dict[str, dict[str, Column]] = {}
        for table, columns in vocabulary.TABLES.items():
            described = {name: Column(name, _kind(name, ref), ref) for name, ref in columns.items()}
            for name in sorted(custom.get(table, ())):
                described.setdefault(name, Column(name, "string"))
            self._columns[table] = described
        # Custom columns an admin adds to task are inherited by every table extending it.
        for name in sorted(custom.get("task", ())):
            for table in vocabulary.TASK_TABLES:
                self._columns[table].setdefault(name, Column(name, "string"))

    def has_table(self, table: str) -> bool:
        """True when the Table API serves ``table``."""
        return table in self._columns and table != "task"

    def columns(self, table: str) -> Mapping[str, Column]:
        """The columns of ``table`` by name (empty for an unknown table)."""
        return self._columns.get(table, {})

    def column(self, table: str, name: str) -> Column | None:
        """One column of ``table``, or ``None``."""
        return self._columns.get(table, {}).get(name)

    def walk(self, table: str, path: str) -> list[tuple[str, Column]] | None:
        """The ``(table, column)`` steps of a dot-walked ``path``; ``None`` when it does not exist."""
        steps: list[tuple[str, Column]] = []
        current = table
        segments = path.split(".")
        for index, segment in enumerate(segments):
            column = self.column(current, segment)
            if column is None:
                return None
            steps.append((current, column))
            if index < len(segments) - 1:
                if column.reference is None:
                    return None
                current = column.reference
        return steps

    @staticmethod
    def implicit(table: str) -> dict[str, str]:
        """Values every record of ``table`` has without storing them (sparse storage of constants)."""
        return {"sys_class_name": table, "sys_domain": "global"}

    @staticmethod
    def display_column(table: str) -> str | None:
        """The column a reference to ``table`` shows, if any."""
        return vocabulary.DISPLAY_COLUMNS.get(table)
