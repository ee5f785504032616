"""Both sides as they are now, read the way people read them: the checker's only evidence.

ServiceNow through the Table API as ``admin`` (incidents, their journals, problems); each Jira
site through python-jira as Jane Doe (every issue of the project with its fields, comments,
remote links and the connector's stamp property). Never the connector's store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from jira import JIRA, JIRAError

from connector.config.supplier_file import SupplierMapping

STAMP_PROPERTY = "mim-connector"
PAGE = 500
COMMENT_PAGE = 100


@dataclass(frozen=True)
class JournalEntry:
    """A work note or comment on an incident or problem."""

    element: str
    value: str
    created_by: str


@dataclass(frozen=True)
class Comment:
    """A comment on a supplier issue; ``by_connector`` when the integration user wrote it."""

    body: str
    by_connector: bool


@dataclass(frozen=True)
class Issue:
    """A supplier issue: its fields as text, comments, remote link ids and stamp."""

    supplier: str
    key: str
    issue_id: str
    incident_sys_id: str | None
    """From the connector's stamp property; ``None`` when the issue carries none."""
    fields: Mapping[str, str]
    status: str
    comments: tuple[Comment, ...]
    remote_links: tuple[str, ...]


@dataclass
class Snapshot:
    """Everything the checker looks at."""

    incidents: dict[str, dict[str, str]] = field(default_factory=dict)
    journals: dict[str, list[JournalEntry]] = field(default_factory=dict)
    """Record sys_id (incident or problem) -> its journal, oldest first."""
    problems: dict[str, dict[str, str]] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def issues_of(self, incident_sys_id: str, supplier: str) -> list[Issue]:
        """The issues stamped for this incident at this supplier."""
        return [i for i in self.issues if i.incident_sys_id == incident_sys_id and i.supplier == supplier]


def read_servicenow(session: requests.Session, base_url: str, fields: list[str]) -> Snapshot:
    """Every incident (with ``fields``), every journal entry and every problem."""
    snapshot = Snapshot()
    for row in _rows(session, base_url, "incident", "ORDERBYnumber", fields):
        snapshot.incidents[row["sys_id"]] = row
    for row in _rows(
        session,
        base_url,
        "problem",
        "ORDERBYnumber",
        ["sys_id", "number", "cause_notes", "correlation_id", "first_reported_by_task"],
    ):
        snapshot.problems[row["sys_id"]] = row
    journal_fields = ["element_id", "element", "value", "sys_created_by", "sys_created_on", "sys_id"]
    for row in _rows(
        session, base_url, "sys_journal_field", "ORDERBYsys_created_on^ORDERBYsys_id", journal_fields
    ):
        snapshot.journals.setdefault(row["element_id"], []).append(
            JournalEntry(row["element"], row["value"], row["sys_created_by"])
        )
    return snapshot


def read_jira(
    snapshot: Snapshot,
    agents: Mapping[str, JIRA],
    mappings: Mapping[str, SupplierMapping],
    connector: frozenset[str],
) -> None:
    """Add every issue of every supplier's project; ``connector`` holds the integration user's names."""
    for supplier, agent in agents.items():
        project = mappings[supplier].jira.project
        found = agent.search_issues(
            f"project = {project} ORDER BY key ASC",
            maxResults=False,
            fields="*all",
            properties=STAMP_PROPERTY,
        )
        for raw in found:
            key = raw.key
            stamp = _stamp(agent, key)
            comments = tuple(
                Comment(c.body, bool(_author(c.author) & connector)) for c in _all_comments(agent, key)
            )
            links = tuple(str(link.globalId) for link in agent.remote_links(key))
            fields = {name: _text(value) for name, value in raw.raw["fields"].items()}
            snapshot.issues.append(
                Issue(
                    supplier,
                    key,
                    str(raw.id),
                    stamp,
                    fields,
                    raw.fields.status.name,
                    comments,
                    links,
                )
            )


def _stamp(agent: JIRA, key: str) -> str | None:
    try:
        value = agent.issue_property(key, STAMP_PROPERTY).raw.get("value") or {}
    except JIRAError as exc:
        if exc.status_code == 404:
            return None
        raise
    sys_id = value.get("incident_sys_id") if isinstance(value, dict) else None
    return str(sys_id) if sys_id else None


def _all_comments(agent: JIRA, key: str) -> list[Any]:
    found: list[Any] = []
    while True:
        page = agent.comments(key, start_at=len(found), max_results=COMMENT_PAGE)
        found += page
        if len(page) < COMMENT_PAGE:
            return found


def _author(author: Any) -> set[str]:
    raw = getattr(author, "raw", {}) or {}
    return {str(raw[k]) for k in ("emailAddress", "name", "accountId") if raw.get(k)}


def _text(value: Any) -> str:
    """A Jira field value as comparable text (names of objects, labels space-separated)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return str(value.get("name") or value.get("value") or value.get("key") or "")
    if isinstance(value, list):
        return " ".join(sorted(_text(v) for v in value))
    return str(value)


def _rows(
    session: requests.Session, base_url: str, table: str, query: str, fields: list[str]
) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    while True:
        params = {
            "sysparm_query": query,
            "sysparm_fields": ",".join(fields),
            "sysparm_limit": str(PAGE),
            "sysparm_offset": str(len(rows)),
            "sysparm_exclude_reference_link": "true",
        }
        answer = session.get(f"{base_url}/api/now/table/{table}", params=params, timeout=30)
        answer.raise_for_status()
        page = answer.json()["result"]
        rows += [{k: str(v or "") for k, v in row.items()} for row in page]
        if len(page) < PAGE:
            return rows
