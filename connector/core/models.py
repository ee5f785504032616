"""Our domain types: what the engine knows of incidents, journal entries, supplier issues and comments.

Adapters build these from their platform's payloads; the pure decision code (rules, planner)
reads nothing else. Field values are ServiceNow's and Jira's strings as they arrived; the times
the engine compares are aware datetimes, parsed once by the adapter (:mod:`connector.core.times`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

JournalElement = Literal["work_notes", "comments"]


@dataclass(frozen=True)
class Incident:
    """One version of a ServiceNow incident.

    ``fields`` holds stored values (references as sys_ids) keyed by column, plus dot-walked
    values keyed by their path (``cmdb_ci.name``), exactly the columns the configuration asked for.
    """

    sys_id: str
    number: str
    mod_count: int
    sys_updated_on: datetime | None
    """``sys_updated_on`` (UTC, second precision); ``None`` when unknown (an incident known only
    by its sys_id, a file without it). ``fields`` keeps the text when it was read as a field."""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, name: str, default: str = "") -> str:
        """A field's value, ``default`` when absent or empty (``number`` and ``sys_id`` included)."""
        if name == "number":
            return self.number
        if name == "sys_id":
            return self.sys_id
        return self.fields.get(name) or default

    def values(self) -> dict[str, str]:
        """Every known value by name, ``number`` and ``sys_id`` included (what templates and conditions see)."""
        return {**self.fields, "number": self.number, "sys_id": self.sys_id}

    @property
    def version(self) -> tuple[str, int]:
        """``(sys_id, sys_mod_count)``: a processed version is never processed again."""
        return self.sys_id, self.mod_count


@dataclass(frozen=True)
class Problem:
    """A ServiceNow problem record, as far as the connector needs it."""

    sys_id: str
    number: str
    cause_notes: str = ""


@dataclass(frozen=True)
class JournalEntry:
    """A work note or additional comment (a ``sys_journal_field`` row)."""

    sys_id: str
    incident_sys_id: str
    element: JournalElement
    value: str
    sys_created_on: datetime
    """When ServiceNow wrote the entry (UTC, second precision)."""
    created_by: str


@dataclass(frozen=True)
class SupplierComment:
    """A comment on a supplier issue."""

    comment_id: str
    author: str
    author_id: str
    body: str
    created: datetime
    updated: datetime


@dataclass(frozen=True)
class LinkedIssue:
    """An issue link as seen from one side: ``description`` reads from this issue to ``key``.

    E.g. on ACME-1 with "ACME-1 is caused by ACME-7": description ``is caused by``, key ``ACME-7``.
    """

    link_type: str
    description: str
    key: str
    summary: str
    status: str


@dataclass(frozen=True)
class StatusChange:
    """The most recent status change in an issue's changelog: its identity and who made it."""

    change_id: str
    author_id: str
    author: str
    from_status: str
    to_status: str
    created: datetime


@dataclass(frozen=True)
class IssueStamp:
    """Our entity property on a supplier issue: which connector created it, for which incident of which instance.

    ``stamp`` is the token the link held when the issue was created; ``servicenow`` the instance
    (:func:`servicenow_identity` of its URL) the incident lives on; ``instance`` our
    ``instance_name``. Issues created before ``servicenow`` was stamped carry ``""`` there.
    """

    stamp: str
    incident_sys_id: str = ""
    incident_number: str = ""
    instance: str = ""
    servicenow: str = ""

    def belongs_to(self, incident_sys_id: str, servicenow: Collection[str], instance: str) -> bool:
        """Whether the issue was created for this incident of this ServiceNow instance.

        ``servicenow``: every name the instance goes by (its URL's host now and before). An older
        stamp without ``servicenow`` is judged by our ``instance`` name instead.
        """
        return self.incident_sys_id == incident_sys_id and self.of_instance(servicenow, instance)

    def of_instance(self, servicenow: Collection[str], instance: str) -> bool:
        """Whether the issue was created for an incident of this ServiceNow instance.

        Judged by ``servicenow`` (the names the instance goes by), or for an older stamp without
        it by our ``instance`` name.
        """
        return self.servicenow in servicenow if self.servicenow else self.instance == instance


def servicenow_identity(instance_url: str) -> str:
    """How a ServiceNow instance is named in our stamps: its URL's host (and port), lower case.

    The scheme and a trailing slash do not count: ``https://Acme.service-now.com/`` and
    ``http://acme.service-now.com`` are the same instance.
    """
    rest = instance_url.split("://", 1)[-1]
    return rest.split("/", 1)[0].lower()


@dataclass(frozen=True)
class SupplierIssue:
    """A supplier's Jira issue as last read (directly, never from search alone)."""

    issue_id: str
    key: str
    url: str
    status: str
    status_category: str
    """``todo``, ``in_progress`` or ``done`` (Jira's new / indeterminate / done)."""
    updated: datetime
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Jira field id -> text: priority by name, labels space-joined and sorted, components
    ``", "``-joined and sorted, users by display name, anything else as its string, empty as ``""``."""
    identity: IssueStamp | None = None
    """Our entity property, when present: who created the issue, and for which incident."""
    comments: tuple[SupplierComment, ...] = ()
    links: tuple[LinkedIssue, ...] = ()
    """Issue links, when the read asked for ``issuelinks``."""
    status_change: StatusChange | None = None
    """The latest status change, when the read's changelog shows one (Jira embeds recent entries only)."""
    field_authors: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Field (its id, else its name) -> the account that changed it last, as far as the read's
    changelog shows (recent entries only); fields nobody changed since the create are absent."""

    @property
    def stamp(self) -> str | None:
        """Our identity stamp token (``identity.stamp``), when the issue carries our property."""
        return self.identity.stamp if self.identity is not None else None
