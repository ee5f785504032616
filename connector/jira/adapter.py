"""One supplier's Jira site as the engine sees it: :class:`JiraAdapter` implements ``JiraPort``.

Every request goes through the site's :class:`~connector.transport.Transport` (pacing, the one
retry layer, error translation, the server clock) with a throttle scope per endpoint
(``jira:acme:GET:issue``); writes to an issue also carry the issue's scope
(``jira:acme:issue:ACME-7``) and book a slot in its write windows. A 429 closes the scope Jira's
``RateLimit-Reason`` names: ``jira-per-issue-on-write`` that issue, ``jira-burst-based`` that
endpoint, anything else the whole site.

Request counts per verb: ``issue`` 1 (plus one per further comment page), ``create_issue``,
``update_issue``, ``transitions``, ``transition``, ``add_comment``, ``upsert_remote_link`` 1 each;
searches 1 per page. The first call also sends ``GET serverInfo``; the first search ``GET myself``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.config.connector_file import JiraSite
from connector.errors import FatalError, TicketNotAccessible
from connector.jira.client import JiraClient, JsonObject, connect, credentials_for
from connector.jira.values import (
    STAMP_PROPERTY,
    account_from_json,
    comment_from_json,
    fields_payload,
    issue_from_json,
    issue_ref_from_json,
    jira_message,
    jql_minute,
    jql_string,
    transition_from_json,
)
from connector.models import SupplierComment, SupplierIssue
from connector.ports import IssueRef, JiraAccount, JiraPort, SiteDescription, Transition
from connector.ratelimit import Limiter
from connector.retry import DEFAULT_POLICY, RetryPolicy
from connector.secrets import interpolate
from connector.transport import DEFAULT_COOLDOWN_SECONDS, Transport

log = logging.getLogger(__name__)
T = TypeVar("T")
COMMENT_PAGE = 100
RECONCILE_PAGE = 100


class JiraAdapter:
    """``JiraPort`` for the site ``name``; python-jira is built on the first call (no I/O before).

    Raises :class:`~connector.secrets.UnresolvedSecret` at construction when a credential
    reference cannot be resolved.
    """

    def __init__(
        self,
        name: str,
        site: JiraSite,
        *,
        base_dir: Path | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        cooldown: float = DEFAULT_COOLDOWN_SECONDS,
    ) -> None:
        self.site: str = name
        self.deployment: str = site.deployment
        self._cloud = site.deployment == "cloud"
        self._config = site
        self._url = interpolate(site.url).rstrip("/")
        self._credentials = credentials_for(site, base_dir)
        limiter = Limiter(
            site.rate_budget.requests_per_second,
            site.rate_budget.burst,
            [(limit.max, limit.per.total_seconds()) for limit in site.issue_write_limits],
            clock=clock,
            sleep=sleep,
            per_hour=site.rate_budget.requests_per_hour,
        )
        self.transport = Transport(
            f"jira:{name}",
            limiter,
            policy=policy,
            sleep=sleep,
            message_of=jira_message,
            throttle_scope=self._throttle_scope,
            clock=clock,
            cooldown=cooldown,
        )
        self._client: JiraClient | None = None
        self._account: JiraAccount | None = None
        self._lock = threading.Lock()

    # --- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP session (a later call opens a new one)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _connect(self) -> JiraClient:
        """python-jira, built on first use (``GET serverInfo``); a site of the wrong deployment is fatal."""
        with self._lock:
            if self._client is None:
                config = self._config
                client = self._call(
                    lambda: connect(
                        self._url,
                        self._credentials,
                        timeout=config.timeout.total_seconds(),
                        verify_tls=config.verify_tls,
                        session_hook=self.transport.watch,
                    ),
                    "GET",
                    "serverInfo",
                    "GET serverInfo",
                    login=True,
                )
                if (client.deployment_type == "Cloud") != self._cloud:
                    client.close()
                    raise FatalError(
                        f"{self.transport.system}: the site reports deploymentType "
                        f"{client.deployment_type!r} but is configured as {self.deployment}"
                    )
                self._client = client
            return self._client

    def _call(
        self,
        fn: Callable[[], T],
        method: str,
        endpoint: str,
        what: str,
        *,
        write: bool = False,
        jira_key: str | None = None,
        login: bool = False,
    ) -> T:
        """Run one request under the transport with its endpoint scope (and issue scope for a write).

        The endpoint (``POST issue``) is also the scope of its circuit breaker: one failing
        endpoint leaves the site's others working. ``login`` marks the calls that log in.
        """
        system = self.transport.system
        endpoint_scope = f"{system}:{method}:{endpoint}"
        issue_scope = f"{system}:issue:{jira_key.upper()}" if write and jira_key else None

        scopes = (endpoint_scope,) if issue_scope is None else (endpoint_scope, issue_scope)
        issue = jira_key.upper() if write and jira_key else None
        return self.transport.call(
            fn,
            method=method,
            what=what,
            write=write,
            scopes=scopes,
            issue=issue,
            endpoint=f"{method} {endpoint}",
            login=login,
        )

    def _throttle_scope(
        self, headers: Mapping[str, str], scopes: Sequence[str], _issue: str | None
    ) -> str | None:
        """The scope a 429 closes, from ``RateLimit-Reason``; ``None`` means the whole site."""
        # _call passes (endpoint scope[, issue scope]) in that order.
        endpoint_scope = scopes[0] if scopes else None
        issue_scope = scopes[1] if len(scopes) > 1 else None
        reason = headers.get("RateLimit-Reason", "")
        if reason == "jira-per-issue-on-write" and issue_scope:
            return str(issue_scope)
        if reason == "jira-burst-based" and endpoint_scope:
            return str(endpoint_scope)
        return None

    def describe(self, project: str) -> SiteDescription:
        """The project (visible? its issue types), the site's statuses and field ids: three GETs."""
        client = self._connect()
        try:
            answer = self._get(client, f"project/{project}", {"expand": "issueTypes"}, "project")
            visible, issue_types = True, tuple(str(t.get("name", "")) for t in answer.get("issueTypes", []))
        except TicketNotAccessible:
            visible, issue_types = False, ()
        statuses = self._call(lambda: client.get_list("status", {}), "GET", "status", "GET status")
        fields = self._call(lambda: client.get_list("field", {}), "GET", "field", "GET field")
        return SiteDescription(
            visible,
            issue_types,
            tuple(str(s.get("name", "")) for s in statuses),
            frozenset(str(f.get("id", "")) for f in fields),
        )

    # --- JiraPort ---------------------------------------------------------------------------------

    def server_time(self) -> datetime | None:
        """The site's clock as of the last answer (``Date`` header); ``None`` before any call."""
        return self.transport.server_time

    def myself(self) -> JiraAccount:
        """The integration account (cached after the first call): accountId on Cloud, name on DC."""
        if self._account is None:
            client = self._connect()
            raw = self._call(client.myself, "GET", "myself", "GET myself", login=True)
            self._account = account_from_json(raw, self._cloud)
        return self._account

    def issues_updated_since(self, project: str, since: datetime, page_size: int) -> Iterator[IssueRef]:
        """Issues of ``project`` with ``updated >= since`` (minute-floored, in the account's zone), oldest first."""
        bound = jql_minute(since, self._zone())
        jql = f"project = {jql_string(project)} AND updated >= {jql_string(bound)} ORDER BY updated ASC, key ASC"
        return self._search(jql, page_size)

    def created_by_me_since(self, project: str, since: datetime) -> list[IssueRef]:
        """Issues of ``project`` we reported with ``created >= since`` (minute-floored), newest first."""
        bound = jql_minute(since, self._zone())
        jql = (
            f"project = {jql_string(project)} AND reporter = currentUser() "
            f"AND created >= {jql_string(bound)} ORDER BY created DESC, key DESC"
        )
        return list(self._search(jql, RECONCILE_PAGE))

    def issue(self, key_or_id: str, fields: Sequence[str], *, comments: bool = True) -> SupplierIssue | None:
        """One issue by a direct GET with our stamp property and comments; ``None`` on 404."""
        client = self._connect()
        wanted = list(dict.fromkeys(["status", "updated", *fields, *(["comment"] if comments else [])]))
        try:
            raw = self._call(
                # The embedded changelog says who made the latest status change (ours or theirs).
                lambda: client.issue(key_or_id, ",".join(wanted), STAMP_PROPERTY, "changelog"),
                "GET",
                "issue",
                f"GET issue {key_or_id}",
            )
        except TicketNotAccessible:
            return None
        values = raw.get("fields") or {}
        found = self._all_comments(client, str(raw["id"]), values.get("comment")) if comments else []
        return issue_from_json(raw, fields, f"{client.server_url}/browse/{raw['key']}", found, self._cloud)

    def create_issue(
        self, project: str, issue_type: str, fields: Mapping[str, Any], properties: Mapping[str, Any]
    ) -> IssueRef:
        """One ``POST issue`` with the entity properties in the same request (atomic stamp)."""
        client = self._connect()
        body = {
            # Project by key and type by name: python-jira's create_issue would look both up (two GETs),
            # could not send properties, and re-GETs the created issue.
            "fields": {
                **fields_payload(fields),
                "project": {"key": project},
                "issuetype": {"name": issue_type},
            },
            "properties": [{"key": key, "value": value} for key, value in properties.items()],
        }
        answer = self._call(lambda: client.post("issue", body), "POST", "issue", "POST issue", write=True)
        return IssueRef(issue_id=str(answer["id"]), key=str(answer["key"]))

    def update_issue(self, key: str, fields: Mapping[str, Any]) -> None:
        """One ``PUT issue/{key}`` (python-jira's ``Issue.update`` needs the issue and re-GETs it after)."""
        client = self._connect()
        body = {"fields": fields_payload(fields)}
        self._call(
            lambda: client.put(f"issue/{key}", body),
            "PUT",
            "issue",
            f"PUT issue {key}",
            write=True,
            jira_key=key,
        )

    def transitions(self, key: str) -> list[Transition]:
        """Transitions available from the issue's current status (one GET)."""
        client = self._connect()
        found = self._call(
            lambda: client.transitions(key), "GET", "issue.transitions", f"GET issue {key} transitions"
        )
        return [transition_from_json(item) for item in found]

    def transition(self, key: str, transition_id: str, fields: Mapping[str, Any]) -> None:
        """One ``POST issue/{key}/transitions``; ``{"resolution": "Done"}`` is sent by name."""
        client = self._connect()
        payload = fields_payload(fields)
        self._call(
            lambda: client.transition(key, transition_id, payload),
            "POST",
            "issue.transitions",
            f"POST issue {key} transition {transition_id}",
            write=True,
            jira_key=key,
        )

    def add_comment(self, key: str, body: str) -> SupplierComment:
        """One ``POST issue/{key}/comment``; the comment as Jira stored it."""
        client = self._connect()
        raw = self._call(
            lambda: client.add_comment(key, body),
            "POST",
            "issue.comment",
            f"POST issue {key} comment",
            write=True,
            jira_key=key,
        )
        return comment_from_json(raw, self._cloud)

    def upsert_remote_link(self, key: str, global_id: str, url: str, title: str) -> None:
        """One ``POST issue/{key}/remotelink`` with the full object (an upsert nulls omitted fields).

        python-jira's ``add_remote_link`` would first GET the application links, on every call.
        """
        client = self._connect()
        parts = urlsplit(url)
        icon = {"url16x16": f"{parts.scheme}://{parts.netloc}/favicon.ico", "title": title}
        body = {"globalId": global_id, "object": {"url": url, "title": title, "icon": icon}}
        self._call(
            lambda: client.post(f"issue/{key}/remotelink", body),
            "POST",
            "issue.remotelink",
            f"POST issue {key} remotelink",
            write=True,
            jira_key=key,
        )

    # --- helpers ----------------------------------------------------------------------------------

    def _zone(self) -> tzinfo:
        """The account's profile time zone (JQL dates are read in it); UTC when Jira names an unknown one."""
        name = self.myself().time_zone
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning(
                "%s: unknown time zone %r of the integration account; using UTC", self.transport.system, name
            )
            return UTC

    def _search(self, jql: str, page_size: int) -> Iterator[IssueRef]:
        """Every page of a search, each issue once: Cloud ``search/jql`` tokens, Data Center ``search`` offsets.

        python-jira's ``search_issues`` returns one page unless ``maxResults=False`` (then it pages
        by 100 regardless) and GETs ``/field`` first; so we page ourselves through its session.
        """
        client = self._connect()
        seen: set[str] = set()
        token: str | None = None
        start_at = 0
        while True:
            if self._cloud:
                params: dict[str, Any] = {"jql": jql, "fields": "updated", "maxResults": page_size}
                if token:
                    params["nextPageToken"] = token
                page = self._get(client, "search/jql", params)
            else:
                params = {"jql": jql, "fields": "updated", "startAt": start_at, "maxResults": page_size}
                page = self._get(client, "search", params)
            issues = page.get("issues") or []
            for item in issues:
                issue_id = str(item["id"])
                if issue_id not in seen:
                    seen.add(issue_id)
                    yield issue_ref_from_json(item)
            if self._cloud:
                token = page.get("nextPageToken")
                if not token or page.get("isLast", False):
                    return
            else:
                start_at += len(issues)
                if not issues or start_at >= int(page.get("total", 0)):
                    return

    def _get(
        self, client: JiraClient, path: str, params: dict[str, Any], endpoint: str | None = None
    ) -> JsonObject:
        """One raw GET under the transport (search pages, comment pages)."""
        return self._call(lambda: client.get(path, params), "GET", endpoint or path, f"GET {path}")

    def _all_comments(self, client: JiraClient, issue_id: str, page: Any) -> list[SupplierComment]:
        """The comments of the ``comment`` field, then further pages only when it says there are more.

        python-jira's ``comments()`` reads one page and drops ``total``, so we page ourselves.
        """
        page = page if isinstance(page, dict) else {"comments": [], "total": 0}
        items: list[JsonObject] = list(page.get("comments") or [])
        total = int(page.get("total", len(items)))
        while len(items) < total:
            params = {"startAt": len(items), "maxResults": COMMENT_PAGE, "orderBy": "created"}
            more = self._get(client, f"issue/{issue_id}/comment", params, "issue.comment")
            batch = more.get("comments") or []
            if not batch:
                break
            items += batch
            total = int(more.get("total", total))
        return [comment_from_json(item, self._cloud) for item in items]


if TYPE_CHECKING:  # mypy proves the adapter satisfies the port
    _PORT: type[JiraPort] = JiraAdapter
