"""JQL search over the lagging index: Cloud ``search/jql`` (tokens) and Data Center ``search`` (offsets).

Search sees issues as the index holds them (``index_lag_seconds`` behind writes); Cloud's
``reconcileIssues`` swaps in the live state of the listed ids. Cloud rejects unbounded JQL, pages
with an opaque ``nextPageToken`` and never reports ``total``; Data Center clamps ``maxResults``
silently and echoes the clamped value.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from connector.sandbox.jira.errors import bad_request
from connector.sandbox.jira.jql import parse
from connector.sandbox.jira.jqleval import JqlContext, compile_query, sort_issues
from connector.sandbox.jira.model import Issue
from connector.sandbox.jira.render import View, issue_json

UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
CLOUD_MAX_RESULTS = 5000
CLOUD_MAX_ORDER_BY = 7
RECONCILE_LIMIT = 50
CLOUD_MAX_PROPERTIES = 5


@dataclass(frozen=True)
class SearchParams:
    """A search request, whether it came as query parameters or as a POST body."""

    jql: str
    fields: list[str]
    expand: set[str]
    properties: list[str]
    max_results: int
    start_at: int = 0
    next_page_token: str | None = None
    reconcile_ids: tuple[str, ...] = ()


def matching_issues(view: View, ctx: JqlContext, params: SearchParams, *, cloud: bool) -> list[Issue]:
    """The issues the query matches, in order, as search sees them."""
    query = parse(params.jql)
    if cloud and query.where is None:
        raise bad_request(UNBOUNDED)
    if cloud and len(query.order_by) > CLOUD_MAX_ORDER_BY:
        raise bad_request(f"The ORDER BY clause can contain at most {CLOUD_MAX_ORDER_BY} fields.")
    predicate = compile_query(query, ctx)
    site = view.site
    candidates = {
        issue.issue_id: issue for issue in site.index.visible(ctx.now, site.settings.index_lag_seconds)
    }
    for issue_id in params.reconcile_ids:
        live = site.issues.get(issue_id)
        if live is None:
            candidates.pop(issue_id, None)
        else:
            candidates[issue_id] = live
    found = [issue for issue in candidates.values() if predicate(issue)]
    return sort_issues(found, query.order_by, ctx)


def _issues_json(
    view: View, issues: list[Issue], params: SearchParams, default_fields: str
) -> list[dict[str, Any]]:
    field_ids, ids_only = view.site.fields.select(params.fields, default_fields)
    if ids_only and view.site.is_cloud:
        with_key = any("key" in value.split(",") for value in params.fields)
        return [{"id": i.issue_id, **({"key": i.key} if with_key else {})} for i in issues]
    per_issue = params.expand - {"names", "schema"}
    return [
        issue_json(view, issue, field_ids, expand=per_issue, properties=params.properties) for issue in issues
    ]


def _names(view: View, params: SearchParams, default_fields: str) -> dict[str, str]:
    field_ids, _ids_only = view.site.fields.select(params.fields, default_fields)
    return {f: d.name for f in field_ids if (d := view.site.fields.get(f)) is not None}


def _token(offset: int, jql: str) -> str:
    payload = json.dumps(
        {"o": offset, "q": hashlib.sha1(jql.encode(), usedforsecurity=False).hexdigest()[:12]}
    )
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _offset(token: str | None, jql: str) -> int:
    if not token:
        return 0
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(payload["o"])
        same_query = payload["q"] == hashlib.sha1(jql.encode(), usedforsecurity=False).hexdigest()[:12]
    except (ValueError, KeyError, TypeError):
        raise bad_request("The provided next page token is invalid or expired.") from None
    if not same_query or offset < 0:
        raise bad_request("The provided next page token is invalid or expired.")
    return offset


def cloud_search(view: View, ctx: JqlContext, params: SearchParams) -> dict[str, Any]:
    """A ``SearchAndReconcileResults`` page: ``issues``, ``isLast``, ``nextPageToken`` unless last."""
    if not 1 <= params.max_results <= CLOUD_MAX_RESULTS:
        raise bad_request(f"The maxResults parameter must be between 1 and {CLOUD_MAX_RESULTS}.")
    if len(params.reconcile_ids) > RECONCILE_LIMIT:
        raise bad_request(f"reconcileIssues accepts at most {RECONCILE_LIMIT} issue ids.")
    if len(params.properties) > CLOUD_MAX_PROPERTIES:
        raise bad_request(f"At most {CLOUD_MAX_PROPERTIES} issue properties can be requested.")
    offset = _offset(params.next_page_token, params.jql)
    issues = matching_issues(view, ctx, params, cloud=True)
    _field_ids, ids_only = view.site.fields.select(params.fields, "id")
    page_size = min(
        params.max_results, CLOUD_MAX_RESULTS if ids_only else view.site.settings.max_results_limit
    )
    page = issues[offset : offset + page_size]
    out: dict[str, Any] = {"issues": _issues_json(view, page, params, "id")}
    if "names" in params.expand:
        out["names"] = _names(view, params, "id")
    is_last = offset + len(page) >= len(issues)
    if not is_last:
        out["nextPageToken"] = _token(offset + len(page), params.jql)
    out["isLast"] = is_last
    return out


def datacenter_search(view: View, ctx: JqlContext, params: SearchParams) -> dict[str, Any]:
    """A ``SearchResults`` page with ``startAt``, the clamped ``maxResults`` and ``total``."""
    issues = matching_issues(view, ctx, params, cloud=False)
    max_results = max(0, min(params.max_results, view.site.settings.max_results_limit))
    start_at = max(0, params.start_at)
    page = issues[start_at : start_at + max_results]
    out: dict[str, Any] = {
        "expand": "schema,names",
        "startAt": start_at,
        "maxResults": max_results,
        "total": len(issues),
        "issues": _issues_json(view, page, params, "*navigable"),
    }
    if "names" in params.expand:
        out["names"] = _names(view, params, "*navigable")
    if ctx.warnings:
        out["warningMessages"] = list(ctx.warnings)
    return out


def approximate_count(view: View, ctx: JqlContext, jql: str) -> dict[str, int]:
    """``{"count": n}`` for a bounded query, as the index sees it (Cloud ``search/approximate-count``)."""
    params = SearchParams(jql=jql, fields=[], expand=set(), properties=[], max_results=1)
    return {"count": len(matching_issues(view, ctx, params, cloud=True))}
