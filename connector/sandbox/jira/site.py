"""One supplier's Jira site: its catalogue (users, projects, statuses...), issues and settings.

A site is built from a :class:`~connector.sandbox.spec.JiraSiteSpec` and owns everything a request
to ``/<site>/rest/...`` touches. Issues are kept by id and by key so that per-request work does not
grow with the number of issues; only search scans them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from connector.sandbox.jira.fields import FieldRegistry
from connector.sandbox.jira.index import SearchIndex
from connector.sandbox.jira.limits import RateLimiter
from connector.sandbox.jira.model import Issue, IssueLink
from connector.sandbox.jira.webhooks import Webhooks
from connector.sandbox.jira.workflow import WorkflowGraph
from connector.sandbox.spec import JiraIssueLinkType, JiraProject, JiraSiteSpec, JiraUser, StatusCategory

_CLASSIC_STATUS_IDS = {"Open": "1", "In Progress": "3", "Reopened": "4", "Resolved": "5", "Closed": "6"}
_DEFAULT_PAGE_LIMIT = {"cloud": 100, "datacenter": 1000}


@dataclass
class SiteSettings:
    """What the control API may change at runtime (``POST /_sandbox/sites/<site>/settings``)."""

    index_lag_seconds: float
    burst_per_second: int
    issue_write_limits: tuple[tuple[int, float], ...]
    max_results_limit: int

    @classmethod
    def from_spec(cls, spec: JiraSiteSpec) -> SiteSettings:
        """The settings a site starts (and resets) with."""
        return cls(
            spec.index_lag_seconds,
            spec.burst_per_second,
            spec.issue_write_limits,
            spec.max_results_limit or _DEFAULT_PAGE_LIMIT[spec.deployment],
        )

    def updated(self, payload: dict[str, Any]) -> SiteSettings:
        """A copy with the given keys changed; raises ``ValueError``/``TypeError`` on bad input."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(payload) - known)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        changes: dict[str, Any] = {}
        if "index_lag_seconds" in payload:
            changes["index_lag_seconds"] = float(payload["index_lag_seconds"])
        if "burst_per_second" in payload:
            changes["burst_per_second"] = int(payload["burst_per_second"])
        if "issue_write_limits" in payload:
            changes["issue_write_limits"] = tuple(
                (int(n), float(s)) for n, s in payload["issue_write_limits"]
            )
        if "max_results_limit" in payload:
            changes["max_results_limit"] = int(payload["max_results_limit"])
        if any(value < 0 for key, value in changes.items() if key != "issue_write_limits"):
            raise ValueError("settings must not be negative")
        return replace(self, **changes)

    def as_json(self) -> dict[str, Any]:
        """The settings as the control API shows them."""
        return {
            "index_lag_seconds": self.index_lag_seconds,
            "burst_per_second": self.burst_per_second,
            "issue_write_limits": [list(pair) for pair in self.issue_write_limits],
            "max_results_limit": self.max_results_limit,
        }


@dataclass(frozen=True)
class ProjectInfo:
    """A project with its Jira id and workflow graph."""

    project_id: str
    spec: JiraProject
    workflow: WorkflowGraph

    @property
    def key(self) -> str:
        """The project key."""
        return self.spec.key


class JiraSite:
    """State of one site. Raises ``ValueError`` at construction when the spec is inconsistent."""

    def __init__(self, spec: JiraSiteSpec, real_clock: Callable[[], datetime] | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.is_cloud = spec.deployment == "cloud"
        self.fields = FieldRegistry(spec.custom_fields)
        self.users = {user.username: user for user in spec.users}
        self.zones = {user.username: ZoneInfo(user.time_zone) for user in spec.users}
        self.user_keys = {user.username: f"JIRAUSER{10000 + index}" for index, user in enumerate(spec.users)}
        self.projects = {
            p.key.upper(): ProjectInfo(str(10000 + i), p, WorkflowGraph(p.workflow))
            for i, p in enumerate(spec.projects)
        }
        self._projects_by_id = {info.project_id: info for info in self.projects.values()}
        self.issue_types: dict[str, str] = {}
        self.statuses: dict[str, tuple[str, StatusCategory]] = {}
        for info in self.projects.values():
            for type_name in info.spec.issue_types:
                self.issue_types.setdefault(type_name, str(10001 + len(self.issue_types)))
            for status in info.spec.workflow.statuses:
                known = self.statuses.get(status.name)
                if known is not None and known[1] != status.category:
                    raise ValueError(f"status {status.name!r} has two categories on site {spec.name}")
                status_id = _CLASSIC_STATUS_IDS.get(status.name) or str(10000 + len(self.statuses))
                self.statuses.setdefault(status.name, (status_id, status.category))
        self.priorities = {name: str(index + 1) for index, name in enumerate(spec.priorities)}
        self.resolutions = {name: str(10000 + index) for index, name in enumerate(spec.resolutions)}
        self.link_types = _link_types(spec)
        self.settings = SiteSettings.from_spec(spec)
        self.index = SearchIndex(real_clock)
        self.limiter = RateLimiter()
        self.issues: dict[str, Issue] = {}
        self.issue_links: dict[str, IssueLink] = {}
        self.webhooks = Webhooks()
        self._ids_by_key: dict[str, str] = {}
        self._counters: dict[str, int] = {}

    # --- users --------------------------------------------------------------------------------

    def user_by_login(self, login: str) -> JiraUser | None:
        """The user a Basic-auth login names: the e-mail on Cloud, the username on Data Center."""
        if self.is_cloud:
            return next((u for u in self.users.values() if u.email.lower() == login.lower()), None)
        return self.users.get(login)

    def user_by_reference(self, ref: dict[str, Any]) -> JiraUser | None:
        """The user a field value such as ``{"accountId": ...}`` (Cloud) or ``{"name": ...}`` (DC) names."""
        if self.is_cloud:
            return next((u for u in self.users.values() if u.account_id == ref.get("accountId")), None)
        if "name" in ref:
            return self.users.get(str(ref["name"]))
        return next((self.users[n] for n, key in self.user_keys.items() if key == ref.get("key")), None)

    def user_by_jql(self, value: str) -> JiraUser | None:
        """The user a JQL value names: account id (Cloud) or username/key (DC), or e-mail."""
        for user in self.users.values():
            names = (user.account_id,) if self.is_cloud else (user.username, self.user_keys[user.username])
            if value in names or value.lower() == user.email.lower():
                return user
        return None

    # --- projects -------------------------------------------------------------------------------

    def project(self, ref: str) -> ProjectInfo | None:
        """A project by id or key (case-insensitive)."""
        return self._projects_by_id.get(ref) or self.projects.get(ref.upper())

    def project_of(self, issue: Issue) -> ProjectInfo:
        """The project an issue lives in."""
        return self.projects[issue.project_key.upper()]

    # --- issues ---------------------------------------------------------------------------------

    def next_id(self, counter: str, start: int) -> int:
        """The next number of a site-wide sequence (``issue``, ``comment``, ``link``...)."""
        value = self._counters.get(counter, start)
        self._counters[counter] = value + 1
        return value

    def issue(self, ref: str) -> Issue | None:
        """A live issue by id or key (case-insensitive)."""
        if ref.isdigit():
            return self.issues.get(ref)
        issue_id = self._ids_by_key.get(ref.upper())
        return self.issues.get(issue_id) if issue_id else None

    def add(self, issue: Issue, now: datetime) -> None:
        """Store a new issue and queue it for indexing."""
        self.issues[issue.issue_id] = issue
        self._ids_by_key[issue.key.upper()] = issue.issue_id
        self.index.record(issue.issue_id, issue.snapshot(), now)

    def reindex(self, issue: Issue, now: datetime) -> None:
        """Queue the state of ``issue`` after a write for indexing."""
        self.index.record(issue.issue_id, issue.snapshot(), now)

    def remove(self, issue: Issue, now: datetime) -> None:
        """Delete an issue and its issue links; search keeps finding it until the index catches up.

        The linked issues lose the link and are re-indexed, but get no changelog entry and keep
        their ``updated`` (not verified against Jira, which deletes the link rows with the issue).
        """
        del self.issues[issue.issue_id]
        del self._ids_by_key[issue.key.upper()]
        self.index.record(issue.issue_id, None, now)
        for link in issue.links:
            self.issue_links.pop(link.link_id, None)
            other = self.issues.get(link.other_end(issue.issue_id)[0])
            if other is not None:
                other.links.remove(link)
                self.reindex(other, now)

    def reset(self) -> None:
        """Back to the spec: no issues or webhooks, counters restarted, settings restored."""
        self.issues.clear()
        self.webhooks.clear()
        self.issue_links.clear()
        self._ids_by_key.clear()
        self._counters.clear()
        self.index.clear()
        self.limiter.clear()
        self.settings = SiteSettings.from_spec(self.spec)


def _link_types(spec: JiraSiteSpec) -> dict[str, JiraIssueLinkType]:
    """Link types by id (from 10000, in spec order); names must be unique, as Jira requires."""
    names = [link_type.name for link_type in spec.issue_link_types]
    if len(set(names)) != len(names) or not all(name.strip() for name in names):
        raise ValueError(f"issue link type names must be non-empty and unique on site {spec.name}")
    return {str(10000 + index): link_type for index, link_type in enumerate(spec.issue_link_types)}
