"""The site's field catalogue: system fields plus the spec's custom fields.

Serves ``GET /field`` (ids, names, JQL ``clauseNames``, ``schema``), tells which fields an issue
screen lets a client set, and resolves the ``fields=`` selection of issue and search responses
(``*all``, ``*navigable``, ``-field``, ids; comma-separated or repeated).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from connector.sandbox.spec import JiraCustomField

FieldKind = Literal[
    "key", "text", "string", "issuetype", "project", "status", "statusCategory", "priority", "labels",
    "resolution", "datetime", "user", "comments", "date", "number", "issuelinks",
]  # fmt: skip
Screen = Literal["create", "edit", "none"]

_CUSTOM_ID = re.compile(r"^customfield_(\d+)$")
_CUSTOM_TYPES: dict[str, tuple[FieldKind, dict[str, Any]]] = {
    "string": ("string", {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield"}),
    "text": ("text", {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textarea"}),
    "datetime": ("datetime", {"type": "datetime", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:datetime"}),
    "number": ("number", {"type": "number", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:float"}),
    "labels": ("labels", {"type": "array", "items": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:labels"}),
}  # fmt: skip


@dataclass(frozen=True)
class FieldDef:
    """One field: its id, display name, JQL clause names, JSON schema, kind and screens."""

    field_id: str
    name: str
    kind: FieldKind
    clause_names: tuple[str, ...]
    schema: dict[str, Any] | None = field(default=None, hash=False)
    custom: bool = False
    screen: Screen = "edit"
    """``edit``: settable on create and edit; ``create``: on create only; ``none``: never by a client."""
    navigable: bool = True
    orderable: bool = True

    def as_json(self) -> dict[str, Any]:
        """The entry of ``GET /field``."""
        out: dict[str, Any] = {
            "id": self.field_id,
            "key": self.field_id,
            "name": self.name,
            "custom": self.custom,
            "orderable": self.orderable,
            "navigable": self.navigable,
            "searchable": True,
            "clauseNames": list(self.clause_names),
        }
        if self.schema is not None:
            out["schema"] = dict(self.schema)
        return out


def _system(
    field_id: str, name: str, kind: FieldKind, clauses: Sequence[str], schema_type: str | None, **extra: Any
) -> FieldDef:
    schema = {"type": schema_type, "system": field_id} if schema_type else None
    if schema_type == "array":
        schema = {"type": "array", "items": "string", "system": field_id}
    return FieldDef(field_id, name, kind, tuple(clauses), schema, **extra)


SYSTEM_FIELDS: tuple[FieldDef, ...] = (
    _system("issuekey", "Key", "key", ("id", "issue", "issuekey", "key"), None, screen="none"),
    _system("summary", "Summary", "text", ("summary",), "string"),
    _system("description", "Description", "text", ("description",), "string", orderable=False),
    _system("issuetype", "Issue Type", "issuetype", ("issuetype", "type"), "issuetype", screen="create"),
    _system("project", "Project", "project", ("project",), "project", screen="create"),
    _system("status", "Status", "status", ("status",), "status", screen="none"),
    _system("statusCategory", "Status Category", "statusCategory", ("statusCategory",), "statusCategory", screen="none"),
    _system("priority", "Priority", "priority", ("priority",), "priority"),
    _system("labels", "Labels", "labels", ("labels",), "array"),
    _system("resolution", "Resolution", "resolution", ("resolution",), "resolution", screen="none"),
    _system("resolutiondate", "Resolved", "datetime", ("resolutiondate", "resolved"), "datetime", screen="none"),
    _system("created", "Created", "datetime", ("created", "createdDate"), "datetime", screen="none"),
    _system("updated", "Updated", "datetime", ("updated", "updatedDate"), "datetime", screen="none"),
    _system("statuscategorychangedate", "Status Category Changed", "datetime", ("statusCategoryChangedDate",), "datetime", screen="none"),
    _system("reporter", "Reporter", "user", ("reporter",), "user"),
    _system("assignee", "Assignee", "user", ("assignee",), "user"),
    _system("creator", "Creator", "user", ("creator",), "user", screen="none"),
    _system("comment", "Comment", "comments", ("comment",), "comments-page", navigable=False, orderable=False, screen="none"),
    _system("duedate", "Due date", "date", ("due", "duedate"), "date"),
    # Not settable through fields/update here (use POST issueLink); JQL reaches links through functions.
    FieldDef("issuelinks", "Linked Issues", "issuelinks", (), {"type": "array", "items": "issuelinks", "system": "issuelinks"}, screen="none"),
)  # fmt: skip


def custom_field(spec: JiraCustomField) -> FieldDef:
    """The field definition of a spec custom field. Raises ``ValueError`` for a malformed id."""
    match = _CUSTOM_ID.match(spec.id)
    if match is None:
        raise ValueError(f"custom field id {spec.id!r} is not of the form customfield_NNNNN")
    kind, schema = _CUSTOM_TYPES[spec.type]
    number = int(match.group(1))
    return FieldDef(
        spec.id,
        spec.name,
        kind,
        (f"cf[{number}]", spec.name),
        {**schema, "customId": number},
        custom=True,
        orderable=spec.type != "text",
    )


class FieldRegistry:
    """All fields of one site, by id and by JQL clause name (case-insensitive)."""

    def __init__(self, custom_fields: Iterable[JiraCustomField]) -> None:
        self.fields: tuple[FieldDef, ...] = SYSTEM_FIELDS + tuple(
            custom_field(spec) for spec in custom_fields
        )
        self._by_id = {f.field_id: f for f in self.fields}
        self._by_clause: dict[str, FieldDef] = {}
        for definition in self.fields:
            for clause in definition.clause_names:
                self._by_clause.setdefault(clause.lower(), definition)

    def get(self, field_id: str) -> FieldDef | None:
        """The field with this id (``summary``, ``customfield_10050``)."""
        return self._by_id.get(field_id)

    def by_clause(self, clause_name: str) -> FieldDef | None:
        """The field a JQL clause name refers to (``cf[10050]``, ``"SNOW Ref"``, ``updatedDate``)."""
        return self._by_clause.get(clause_name.lower())

    def issue_field_ids(self, *, navigable_only: bool) -> list[str]:
        """Ids of the fields an issue carries in ``fields`` (all, or the navigable ones)."""
        skip = {"issuekey", "statusCategory"}
        return [
            f.field_id for f in self.fields if f.field_id not in skip and (f.navigable or not navigable_only)
        ]

    def select(self, requested: Iterable[str], default: str) -> tuple[list[str], bool]:
        """Resolve a ``fields=`` selection to field ids, and whether only the issue id was asked for.

        ``requested`` holds the raw parameter values (each may be comma-separated); when empty,
        ``default`` applies. Unknown names are ignored, as Jira does.
        """
        items = [item.strip() for value in requested for item in value.split(",") if item.strip()]
        if not items:
            items = [default]
        chosen: list[str] = []
        if all(item.startswith("-") for item in items):
            chosen = self.issue_field_ids(navigable_only=True)
        for item in items:
            if item in ("*all", "*navigable"):
                chosen += self.issue_field_ids(navigable_only=item == "*navigable")
            elif item.startswith("-"):
                chosen = [f for f in chosen if f != item[1:]]
            elif item in self._by_id and item not in ("issuekey", "statusCategory"):
                chosen.append(item)
        ids_only = all(item in ("id", "key") for item in items)
        return list(dict.fromkeys(chosen)), ids_only
