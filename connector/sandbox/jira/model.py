"""The simulator's issue state: plain mutable dataclasses guarded by the app's lock.

Users are referred to by ``username`` (unique within a site); statuses, priorities, resolutions and
issue types by name. Timestamps are timezone-aware UTC, truncated to milliseconds.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass
class ChangeItem:
    """One changed field inside a changelog entry (``from``/``to`` are ids, the strings are names)."""

    field: str
    field_id: str
    field_type: str
    from_value: str | None
    from_string: str | None
    to_value: str | None
    to_string: str | None


@dataclass
class History:
    """One changelog entry: who changed which fields when."""

    history_id: str
    author: str
    created: datetime
    items: list[ChangeItem]


@dataclass
class Comment:
    """A comment; ``body`` is stored as text (wiki markup)."""

    comment_id: str
    body: str
    author: str
    update_author: str
    created: datetime
    updated: datetime
    visibility: dict[str, Any] | None = None


@dataclass
class RemoteLink:
    """A remote issue link; an upsert by ``global_id`` replaces everything but the id."""

    link_id: int
    global_id: str | None
    application: dict[str, Any] | None
    relationship: str | None
    object: dict[str, Any]


@dataclass(frozen=True)
class IssueLink:
    """A link between two issues of one site, held by both.

    The source ``outward`` the destination: Jira's ``sourceId``/``destinationId``, which the body of
    ``POST issueLink`` names ``inwardIssue``/``outwardIssue`` (see :mod:`connector.sandbox.jira.links`).
    """

    link_id: str
    type_id: str
    source_id: str
    destination_id: str

    def other_end(self, issue_id: str) -> tuple[str, bool]:
        """The id of the issue at the other end from ``issue_id``, and whether this link is outward from it."""
        if issue_id == self.source_id:
            return self.destination_id, True
        return self.source_id, False


@dataclass
class Issue:
    """One issue with its comments, remote links, issue links, entity properties and changelog."""

    issue_id: str
    key: str
    project_key: str
    issue_type: str
    summary: str
    status: str
    created: datetime
    updated: datetime
    status_changed: datetime
    creator: str
    reporter: str | None
    description: str | None = None
    priority: str | None = None
    labels: list[str] = field(default_factory=list)
    resolution: str | None = None
    resolution_date: datetime | None = None
    assignee: str | None = None
    due_date: date | None = None
    custom: dict[str, Any] = field(default_factory=dict)
    """Custom field values by field id: ``str``, ``float``, ``datetime`` or ``list[str]``."""
    comments: list[Comment] = field(default_factory=list)
    remote_links: list[RemoteLink] = field(default_factory=list)
    links: list[IssueLink] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    history: list[History] = field(default_factory=list)

    @property
    def number(self) -> int:
        """The number part of the key (``SUP-12`` -> 12), for ordering by key."""
        return int(self.key.rsplit("-", 1)[1])

    def snapshot(self) -> Issue:
        """A deep copy, as the search index or a test sees it at this moment."""
        return copy.deepcopy(self)
