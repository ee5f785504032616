"""What a sandbox contains: users, credentials, Jira sites with their projects and workflows.

Plain frozen dataclasses, so tests can build a world by hand and the demo can derive one from the
connector's configuration (:mod:`connector.sandbox.fromconfig`). The simulators read these and
nothing else.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

Deployment = Literal["cloud", "datacenter"]
StatusCategory = Literal["todo", "in_progress", "done"]


@dataclass(frozen=True)
class SnowUser:
    """A ServiceNow ``sys_user`` who can log in. Role ``admin`` may do anything."""

    user_name: str
    password: str
    name: str
    roles: tuple[str, ...] = ("itil",)
    time_zone: str = "UTC"
    email: str = ""


@dataclass(frozen=True)
class OAuthClient:
    """An OAuth application registry entry (``oauth_entity``) allowed at ``/oauth_token.do``."""

    client_id: str
    client_secret: str


@dataclass(frozen=True)
class ServiceNowSpec:
    """The simulated ServiceNow instance."""

    users: tuple[SnowUser, ...]
    oauth_clients: tuple[OAuthClient, ...] = ()
    custom_columns: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    """Extra ``u_`` columns per table, as an admin would add them (e.g. ``incident: [u_supplier_eta]``)."""
    seed_reference_data: bool = True
    """Create the demo groups, companies, services, CIs and choice lists."""
    token_ttl_seconds: int = 1800


@dataclass(frozen=True)
class JiraUser:
    """A Jira account. Cloud logs in with ``email`` + ``api_token``; Data Center with ``pat`` or ``password``."""

    display_name: str
    email: str
    username: str
    api_token: str | None = None
    pat: str | None = None
    password: str | None = None
    time_zone: str = "UTC"

    @property
    def account_id(self) -> str:
        """A stable Cloud-style account id derived from the e-mail address."""
        return "5b10" + hashlib.sha1(self.email.encode(), usedforsecurity=False).hexdigest()[:20]


@dataclass(frozen=True)
class JiraStatus:
    """A workflow status and its category (todo, in_progress, done)."""

    name: str
    category: StatusCategory


@dataclass(frozen=True)
class JiraTransition:
    """A transition; empty ``from_`` means available from every status (a global transition)."""

    name: str
    to: str
    from_: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    """Fields the transition screen makes mandatory, e.g. ``("resolution",)``."""


@dataclass(frozen=True)
class JiraWorkflow:
    """Statuses and transitions of a project's issues."""

    initial: str
    statuses: tuple[JiraStatus, ...]
    transitions: tuple[JiraTransition, ...]


@dataclass(frozen=True)
class JiraProject:
    """A project with its issue types and workflow."""

    key: str
    name: str
    issue_types: tuple[str, ...]
    workflow: JiraWorkflow


@dataclass(frozen=True)
class JiraCustomField:
    """A custom field (``customfield_NNNNN``)."""

    id: str
    name: str
    type: Literal["string", "text", "datetime", "number", "labels"] = "string"


@dataclass(frozen=True)
class JiraIssueLinkType:
    """An issue link type.

    A link runs from a source issue to a destination issue: the source ``outward`` the destination
    ("INC-1 causes PRB-1"), the destination ``inward`` the source ("PRB-1 is caused by INC-1").
    """

    name: str
    inward: str
    outward: str


DEFAULT_ISSUE_LINK_TYPES = (
    JiraIssueLinkType("Blocks", "is blocked by", "blocks"),
    JiraIssueLinkType("Cloners", "is cloned by", "clones"),
    JiraIssueLinkType("Duplicate", "is duplicated by", "duplicates"),
    JiraIssueLinkType("Relates", "relates to", "relates to"),
    JiraIssueLinkType("Problem/Incident", "is caused by", "causes"),
)
"""Jira's standard link types plus the ITSM "Problem/Incident" type suppliers link root causes with."""


@dataclass(frozen=True)
class JiraSiteSpec:
    """One supplier's Jira site, served under ``/<name>`` on the shared Jira server."""

    name: str
    deployment: Deployment
    users: tuple[JiraUser, ...]
    projects: tuple[JiraProject, ...]
    custom_fields: tuple[JiraCustomField, ...] = ()
    priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low", "Lowest")
    resolutions: tuple[str, ...] = ("Done", "Fixed", "Won't Do", "Duplicate", "Cannot Reproduce")
    issue_link_types: tuple[JiraIssueLinkType, ...] = DEFAULT_ISSUE_LINK_TYPES
    """Link types in ``GET issueLinkType`` order; ids are assigned from 10000 in this order."""
    index_lag_seconds: float = 0.0
    """How long a write takes to become visible to search (Jira search is eventually consistent)."""
    burst_per_second: int = 100
    """Requests per second per endpoint and method before ``jira-burst-based`` 429s."""
    issue_write_limits: tuple[tuple[int, float], ...] = ((20, 2.0), (100, 30.0))
    """Writes per issue per window in seconds before ``jira-per-issue-on-write`` 429s."""
    max_results_limit: int | None = None
    """Search page cap: on Cloud the most issues a ``search/jql`` page returns when fields beyond ``id``
    are requested (default 100); on Data Center the silent clamp of ``maxResults`` (default 1000)."""


@dataclass(frozen=True)
class SandboxSpec:
    """Both simulators and where they listen (port 0 picks a free port)."""

    servicenow: ServiceNowSpec
    sites: tuple[JiraSiteSpec, ...]
    host: str = "127.0.0.1"
    servicenow_port: int = 0
    jira_port: int = 0


DEFAULT_WORKFLOW = JiraWorkflow(
    initial="Open",
    statuses=(
        JiraStatus("Open", "todo"),
        JiraStatus("In Progress", "in_progress"),
        JiraStatus("Waiting for Customer", "in_progress"),
        JiraStatus("Resolved", "done"),
        JiraStatus("Closed", "done"),
    ),
    transitions=(
        JiraTransition("Start Progress", "In Progress", ("Open", "Waiting for Customer")),
        JiraTransition("Wait for Customer", "Waiting for Customer", ("Open", "In Progress")),
        JiraTransition(
            "Resolve", "Resolved", ("Open", "In Progress", "Waiting for Customer"), ("resolution",)
        ),
        JiraTransition("Reopen", "In Progress", ("Resolved",)),
        JiraTransition("Close", "Closed", ("Resolved",)),
    ),
)
