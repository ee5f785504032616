"""One supplier's Jira site as the engine sees it: :class:`JiraAdapter` implements ``JiraPort``.

Every request goes through the site's :class:`~connector.http.transport.Transport` (pacing, the one
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

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connector.config.connector_file import JiraSite
from connector.core.errors import FatalError, TicketNotAccessible, Unavailable, UncertainOutcome
from connector.core.markers import STAMP_PROPERTY
from connector.core.models import SupplierComment, SupplierIssue
from connector.core.ports import (
    IssueRef,
    JiraAccount,
    JiraFieldInfo,
    JiraPort,
    JiraProjectInfo,
    JiraStatusInfo,
    SiteDescription,
    Transition,
    WorkflowStep,
)
from connector.core.secrets import interpolate
from connector.http.ratelimit import Limiter
from connector.http.retry import DEFAULT_POLICY, RetryPolicy
from connector.http.transport import DEFAULT_COOLDOWN_SECONDS, Transport
from connector.jira.catalogue import (
    create_fields_page,
    earliest_status_change,
    project_from_json,
    statuses_from_json,
    steps_from_json,
)
from connector.jira.client import JiraClient, JsonObject, connect, credentials_for
from connector.jira.values import (
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

log = logging.getLogger(__name__)
T = TypeVar("T")
COMMENT_PAGE = 100
RECONCILE_PAGE = 100


@dataclass(frozen=True)
class WebhookInfo:
    """One admin webhook of a site, as ``doctor`` reads it."""

    name: str
    url: str
    enabled: bool
    events: tuple[str, ...]


class JiraAdapter:
    """``JiraPort`` for the site ``name``; python-jira is built on the first call (no I/O before).

    Raises :class:`~connector.core.secrets.UnresolvedSecret` at construction when a credential
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
        """Issues of ``project`` with ``updated >= since`` (minute-floored, in the account's zone), oldest first.

        Each hit carries our stamp property, when the issue has it (no extra request).
        """
        bound = jql_minute(since, self._zone())
        jql = f"project = {jql_string(project)} AND updated >= {jql_string(bound)} ORDER BY updated ASC, key ASC"
        return self._search(jql, page_size, properties=(STAMP_PROPERTY,))

    def created_by_me_since(self, project: str, since: datetime) -> Iterator[IssueRef]:
        """Issues of ``project`` we reported with ``created >= since`` (minute-floored), newest first.

        Each hit carries our stamp property (search's ``properties``), so recognising the issue
        of a lost create costs one search page per :data:`RECONCILE_PAGE` issues, not one GET
        per issue; pages are fetched as the caller iterates.
        """
        bound = jql_minute(since, self._zone())
        jql = (
            f"project = {jql_string(project)} AND reporter = currentUser() "
            f"AND created >= {jql_string(bound)} ORDER BY created DESC, key DESC"
        )
        return self._search(jql, RECONCILE_PAGE, properties=(STAMP_PROPERTY,))

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
        what = f"GET issue {key_or_id}"
        values = raw.get("fields") or {}
        issue_id = self._decoded(what, lambda: str(raw["id"]))
        found = self._all_comments(client, issue_id, values.get("comment")) if comments else []
        return self._decoded(
            what,
            lambda: issue_from_json(
                raw, fields, f"{client.server_url}/browse/{raw['key']}", found, self._cloud
            ),
        )

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
        issue_id, key = answer.get("id"), answer.get("key")
        if not issue_id or not key or not isinstance(key, str):
            # Jira answered success without saying what it created: the issue may exist. It is
            # looked for by its stamp before anything is created again (never a blind repeat).
            raise UncertainOutcome(
                f"{self.transport.system}: POST issue answered without the new issue's id and key; "
                "it may have been created"
            )
        return IssueRef(issue_id=str(issue_id), key=key)

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
        what = f"GET issue {key} transitions"
        found = self._call(lambda: client.transitions(key), "GET", "issue.transitions", what)
        return self._decoded(what, lambda: [transition_from_json(item) for item in found])

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
        return self._decoded(
            f"POST issue {key} comment", lambda: comment_from_json(raw, self._cloud), write=True
        )

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

    # --- a project's set-up (supplier init) --------------------------------------------------------

    def project(self, project: str) -> JiraProjectInfo | None:
        """The project with its issue types (one GET); ``None`` when it does not exist or is hidden."""
        client = self._connect()
        try:
            return project_from_json(self._get(client, f"project/{project}", {}, "project"))
        except TicketNotAccessible:
            return None

    def webhooks(self) -> list[WebhookInfo]:
        """The site's admin webhooks (one GET; Jira lets only administrators list them)."""
        client = self._connect()
        found = self._call(client.webhooks, "GET", "webhooks", "GET webhooks")
        return [
            WebhookInfo(
                name=str(item.get("name") or ""),
                url=str(item.get("url") or ""),
                enabled=item.get("enabled") is not False,
                events=tuple(str(event) for event in item.get("events") or ()),
            )
            for item in found
        ]

    def statuses_by_issue_type(self, project: str) -> dict[str, tuple[JiraStatusInfo, ...]]:
        """Each issue type of ``project`` with its workflow's statuses (one GET)."""
        client = self._connect()
        found = self._call(
            lambda: client.get_list(f"project/{project}/statuses", {}),
            "GET",
            "project.statuses",
            f"GET project {project} statuses",
        )
        return statuses_from_json(found)

    def create_fields(self, project: str, issue_type_id: str) -> list[JiraFieldInfo]:
        """The create screen's fields for one issue type (a GET per page of 50).

        python-jira's ``project_issue_fields`` refuses to run on Cloud and reads only Data Center's
        ``values`` (Cloud answers ``fields``), so we page ourselves.
        """
        client = self._connect()
        found: list[JiraFieldInfo] = []
        path = f"issue/createmeta/{project}/issuetypes/{issue_type_id}"
        while True:
            page = self._get(client, path, {"startAt": len(found), "maxResults": 50}, "issue.createmeta")
            batch = create_fields_page(page)
            found += batch
            if not batch or page.get("isLast") is True or len(found) >= int(page.get("total", 0)):
                return found

    def sample_issue(self, project: str, issue_type: str, status: str | None = None) -> str | None:
        """The key of one issue of ``project`` and ``issue_type`` (in ``status``), or ``None`` (one search).

        Without ``status``, the oldest issue; with it, the most recently updated one in that status.
        """
        client = self._connect()
        jql = f"project = {jql_string(project)} AND issuetype = {jql_string(issue_type)}"
        jql += (
            f" AND status = {jql_string(status)} ORDER BY updated DESC" if status else " ORDER BY created ASC"
        )
        params: dict[str, Any] = {"jql": jql, "fields": "status", "maxResults": 1}
        page = self._get(client, "search/jql" if self._cloud else "search", params)
        issues = page.get("issues") or []
        return str(issues[0]["key"]) if issues else None

    def workflow_steps(self, key: str) -> list[WorkflowStep]:
        """The transitions the issue's status offers, with their screens' fields (one GET)."""
        client = self._connect()
        params = {"expand": "transitions.fields"}
        found = self._get(client, f"issue/{key}/transitions", params, "issue.transitions")
        return steps_from_json(found)

    def created_in_status(self, key: str) -> str | None:
        """The status the issue was created in, told by its changelog; ``None`` when it cannot tell.

        Cloud: the oldest page of ``issue/{key}/changelog`` (and the issue when nothing in it moved
        the status). Data Center, which has no such endpoint: the changelog embedded in the issue,
        trusted only when complete. One or two GETs.
        """
        client = self._connect()
        if self._cloud:
            params = {"startAt": 0, "maxResults": 100}
            page = self._get(client, f"issue/{key}/changelog", params, "issue.changelog")
            values = page.get("values") or []
            if (found := earliest_status_change(values)) is not None:
                return found
            if not page.get("isLast", int(page.get("total", 0)) <= len(values)):
                return None
            raw = self._get(client, f"issue/{key}", {"fields": "status"}, "issue")
        else:
            raw = self._get(client, f"issue/{key}", {"fields": "status", "expand": "changelog"}, "issue")
            log = raw.get("changelog") or {}
            histories = log.get("histories") or []
            if int(log.get("total", len(histories))) > len(histories):
                return None
            if (found := earliest_status_change(histories)) is not None:
                return found
        return str(((raw.get("fields") or {}).get("status") or {}).get("name") or "") or None

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

    def _decoded(self, what: str, parse: Callable[[], T], *, write: bool = False) -> T:
        """``parse()`` of an answer; one that lacks what Jira always sends is a classified error.

        A read: :class:`~connector.core.errors.Unavailable` (tried again later). A write:
        :class:`~connector.core.errors.UncertainOutcome` (it was answered, so it may have been applied).
        """
        try:
            return parse()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            detail = f"missing {exc}" if isinstance(exc, KeyError) else type(exc).__name__
            message = f"{self.transport.system}: {what}: unexpected answer ({detail})"
            if write:
                raise UncertainOutcome(message + "; it may have been applied") from None
            raise Unavailable(message) from None

    def _search(self, jql: str, page_size: int, *, properties: Sequence[str] = ()) -> Iterator[IssueRef]:
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
                if properties:
                    params["properties"] = ",".join(properties)
                page, issues = self._search_page(client, "search/jql", params)
            else:
                params = {"jql": jql, "fields": "updated", "startAt": start_at, "maxResults": page_size}
                if properties:
                    params["properties"] = ",".join(properties)
                page, issues = self._search_page(client, "search", params)
            refs = self._decoded("search", functools.partial(_refs, issues))
            for ref in refs:
                if ref.issue_id not in seen:
                    seen.add(ref.issue_id)
                    yield ref
            if self._cloud:
                token = page.get("nextPageToken")
                if not token or page.get("isLast", False):
                    return
            else:
                start_at += len(issues)
                if not issues or start_at >= int(page.get("total", 0)):
                    return

    def _search_page(
        self, client: JiraClient, path: str, params: dict[str, Any]
    ) -> tuple[JsonObject, list[JsonObject]]:
        """One search page and its issues; an answer without an ``issues`` list is :class:`Unavailable`.

        Jira always sends ``issues`` (``[]`` when nothing matches); a body without it (a proxy's or
        a broken node's answer) is not an empty page: taken as one, it would end the poll as if
        nothing had changed and move the watermark past changes never read. Raised inside the
        transport, so the retry policy treats it like any other bad answer.
        """

        def fetch() -> tuple[JsonObject, list[JsonObject]]:
            page = client.get(path, params)
            issues = page.get("issues")
            if not isinstance(issues, list) or not all(isinstance(item, dict) for item in issues):
                raise Unavailable(
                    f"{self.transport.system}: GET {path}: the answer has no list of issues "
                    f"(keys: {', '.join(sorted(page)[:8]) or 'none'}); not taken as an empty page"
                )
            return page, issues

        return self._call(fetch, "GET", path, f"GET {path}")

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
        return self._decoded(
            f"GET issue {issue_id} comments", lambda: [comment_from_json(item, self._cloud) for item in items]
        )


def _refs(items: Sequence[Mapping[str, Any]]) -> list[IssueRef]:
    return [issue_ref_from_json(item) for item in items]


if TYPE_CHECKING:  # mypy proves the adapter satisfies the port
    _PORT: type[JiraPort] = JiraAdapter
