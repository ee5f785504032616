"""A link between an incident and its issue at one supplier, and the entity it names. Pure data.

The store keeps links (:mod:`connector.store.links`); the mirror, the engine and the executor read
them. The types live here so that the pure decisions need not import the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

LinkState = Literal["creating", "linked", "unlinked"]
Direction = Literal["out", "in"]


@dataclass(frozen=True)
class Link:
    """An incident's mirrored issue at one supplier. ``creating``: claimed, issue not confirmed yet."""

    link_id: int
    incident_sys_id: str
    supplier: str
    state: str
    jira_issue_id: str | None
    jira_key: str | None
    jira_url: str | None
    stamp: str
    created_at: datetime
    updated_at: datetime

    @property
    def entity(self) -> str:
        """The unit of failure isolation and ordering: incident x supplier."""
        return entity_key(self.incident_sys_id, self.supplier)


def entity_key(incident_sys_id: str, supplier: str) -> str:
    """``<incident sys_id>:<supplier>``."""
    return f"{incident_sys_id}:{supplier}"
