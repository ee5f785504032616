"""How a stored record looks on the wire, per ``sysparm_fields``/``display_value``/``exclude_reference_link``.

Every value is a JSON string and an empty one is ``""``. A reference is
``{"link": "<base>/api/now/table/<table>/<sys_id>", "value": "<sys_id>"}`` (the plain sys_id
with ``sysparm_exclude_reference_link=true``). ``display_value=true`` shows choice labels,
reference display names and date-times in the reading user's time zone; ``all`` gives both as
``{"display_value": …, "value": …}``. Journal fields always read back as ``""``: their entries
live in ``sys_journal_field``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any, Literal

from connector.sandbox.servicenow.catalog import Column
from connector.sandbox.servicenow.dates import to_display
from connector.sandbox.servicenow.predicates import FieldAccess, Record
from connector.sandbox.servicenow.tables import Database

DisplayMode = Literal["false", "true", "all"]


@dataclass(frozen=True)
class View:
    """What the client asked to see: fields (``None`` = all columns), display mode, links or not."""

    fields: tuple[str, ...] | None = None
    display: DisplayMode = "false"
    exclude_links: bool = False


@dataclass(frozen=True)
class _Item:
    key: str
    access: FieldAccess
    table: str
    """The table owning the final column (whose choice list applies)."""
    column: Column


class Renderer:
    """Renders records of one instance for one reading user (their time zone) and base URL."""

    def __init__(self, database: Database, base_url: str, zone: tzinfo) -> None:
        self.database = database
        self.base_url = base_url
        self.zone = zone

    def link(self, table: str, sys_id: str) -> str:
        """The Table API URL of a record."""
        return f"{self.base_url}/api/now/table/{table}/{sys_id}"

    def valid_fields(self, table: str, fields: tuple[str, ...] | None) -> tuple[str, ...] | None:
        """``fields`` without the names ``table`` does not have (ServiceNow ignores those)."""
        if fields is None:
            return None
        catalog = self.database.catalog
        return tuple(f for f in fields if catalog.walk(table, f) is not None)

    def _items(self, table: str, fields: tuple[str, ...]) -> list[_Item]:
        items: list[_Item] = []
        for path in fields:
            steps = self.database.catalog.walk(table, path)
            access = self.database.access(table, path)
            if steps is None or access is None:
                continue
            owner, column = steps[-1]
            items.append(_Item(path, access, owner, column))
        return items

    def render(self, table: str, records: list[Record], view: View) -> list[dict[str, Any]]:
        """``records`` of ``table`` as the Table API returns them under ``result``."""
        fields = view.fields
        if fields is None and view.display == "false":
            return [self._plain(table, record, view.exclude_links) for record in records]
        if fields is None:
            fields = tuple(self.database.catalog.columns(table))
        items = self._items(table, fields)
        return [{item.key: self._value(item, record, view) for item in items} for record in records]

    def _plain(self, table: str, record: Record, exclude_links: bool) -> dict[str, Any]:
        catalog = self.database.catalog
        columns = catalog.columns(table)
        out: dict[str, Any] = dict.fromkeys(columns, "")
        for name, value in (catalog.implicit(table) | record).items():
            column = columns.get(name)
            if column is None or column.kind == "journal":
                continue
            if column.reference is not None and not exclude_links:
                out[name] = {"link": self.link(column.reference, value), "value": value}
            else:
                out[name] = value
        return out

    def _value(self, item: _Item, record: Record, view: View) -> Any:
        column = item.column
        if column.kind == "journal":
            return {"display_value": "", "value": ""} if view.display == "all" else ""
        value = item.access.get(record)
        reference = column.reference
        if view.display == "false":
            if reference is None or not value or view.exclude_links:
                return value
            return {"link": self.link(reference, value), "value": value}
        shown = self.display_value(item.table, column, value)
        if view.display == "true":
            if reference is None or not value or view.exclude_links:
                return shown
            return {"display_value": shown, "link": self.link(reference, value)}
        if reference is None or not value or view.exclude_links:
            return {"display_value": shown, "value": value}
        return {"display_value": shown, "link": self.link(reference, value), "value": value}

    def display_value(self, table: str, column: Column, value: str) -> str:
        """The display value of ``value`` in ``table.column`` for this reader."""
        if not value:
            return ""
        if column.reference is not None:
            return self.database.reference_display(column.reference, value)
        if column.kind == "datetime":
            return to_display(value, self.zone)
        label = self.database.choice_label(table, column.name, value)
        return label if label is not None else value
