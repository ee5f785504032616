"""Search endpoints: Cloud ``search/jql`` (GET and POST), Data Center ``search``, Cloud's 410."""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from connector.sandbox.core import json_response
from connector.sandbox.jira.call import Call, Handler, ok
from connector.sandbox.jira.errors import bad_request
from connector.sandbox.jira.jqleval import JqlContext
from connector.sandbox.jira.params import bool_param, int_param, list_param
from connector.sandbox.jira.search import SearchParams, approximate_count, cloud_search, datacenter_search

REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
_CLOUD_BODY = {
    "jql",
    "nextPageToken",
    "maxResults",
    "fields",
    "expand",
    "properties",
    "fieldsByKeys",
    "failFast",
    "reconcileIssues",
}
_DC_BODY = {"jql", "startAt", "maxResults", "validateQuery", "fields", "expand", "properties", "fieldsByKeys"}


def _context(call: Call, strict: bool) -> JqlContext:
    return JqlContext(call.site, call.user, call.view.zone, call.now, strict=strict)


def _unsupported_media(call: Call) -> Response | None:
    """Cloud's ``application/problem+json`` 415 for a POST without a JSON body."""
    if call.request.mimetype == "application/json" and call.request.get_data(cache=True):
        return None
    problem = {
        "title": "Unsupported Media Type",
        "detail": f"Content-Type '{call.request.mimetype or 'null'}' is not supported.",
        "instance": call.request.path.removeprefix(f"/{call.site.name}"),
    }
    response = json_response(problem, 415)
    response.mimetype = "application/problem+json"
    return response


def _body_as_args(call: Call, allowed: set[str]) -> MultiDict[str, str]:
    """A POST body turned into the same shape as query parameters (POST ignores the query string)."""
    body = call.body()
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f'Unrecognized field "{unknown[0]}" in the request body.')
    args: MultiDict[str, str] = MultiDict()
    for key, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                args.add(key, _text(key, item))
    return args


def _text(key: str, value: Any) -> str:
    if isinstance(value, dict | list):
        raise bad_request(f"Can not deserialize '{key}' from the given value.")
    return str(value).lower() if isinstance(value, bool) else str(value)


def _params(args: MultiDict[str, str], *, default_max: int) -> SearchParams:
    return SearchParams(
        jql=args.get("jql", ""),
        fields=args.getlist("fields"),
        expand=set(list_param(args, "expand")),
        properties=list_param(args, "properties"),
        max_results=int_param(args, "maxResults", default_max),
        start_at=int_param(args, "startAt", 0),
        next_page_token=args.get("nextPageToken") or None,
        reconcile_ids=tuple(list_param(args, "reconcileIssues")),
    )


def search_jql(call: Call, _args: dict[str, str]) -> Response:
    """``GET|POST search/jql`` (Cloud): bounded JQL, token paging, ``reconcileIssues``."""
    if call.request.method == "POST" and (refusal := _unsupported_media(call)) is not None:
        return refusal
    args = _body_as_args(call, _CLOUD_BODY) if call.request.method == "POST" else call.request.args
    return ok(cloud_search(call.view, _context(call, strict=True), _params(args, default_max=50)))


def search(call: Call, _args: dict[str, str]) -> Response:
    """``GET|POST search``: 410 on Cloud; offset paging with ``total`` on Data Center."""
    if call.site.is_cloud:
        return json_response({"errorMessages": [REMOVED], "errors": {}}, 410)
    args = _body_as_args(call, _DC_BODY) if call.request.method == "POST" else call.request.args
    strict = _validation(args)
    context = _context(call, strict=strict is True)
    result = datacenter_search(call.view, context, _params(args, default_max=50))
    if strict is None:
        result.pop("warningMessages", None)
    return ok(result)


def _validation(args: MultiDict[str, str]) -> bool | None:
    """``validateQuery``: true/strict (errors), false/warn (warnings), none (silent -> ``None``)."""
    raw = (args.get("validateQuery") or "true").lower()
    if raw in ("strict", "warn", "none"):
        return {"strict": True, "warn": False, "none": None}[raw]
    return bool_param(args, "validateQuery", True)


def count(call: Call, _args: dict[str, str]) -> Response:
    """``POST search/approximate-count`` (Cloud): ``{"count": n}`` for a bounded query."""
    if (refusal := _unsupported_media(call)) is not None:
        return refusal
    jql = _body_as_args(call, {"jql"}).get("jql", "")
    return ok(approximate_count(call.view, _context(call, strict=True), jql))


HANDLERS: dict[str, Handler] = {"search_jql": search_jql, "search": search, "approximate_count": count}
