"""The URL map of one site (paths after ``/<site>``) and the handler of every endpoint.

Endpoint names double as the burst rate-limit bucket. Handlers of endpoints with several methods
are registered as ``endpoint:METHOD``.
"""

from __future__ import annotations

from werkzeug.routing import Map, Rule

from connector.sandbox.jira import (
    routes_issue,
    routes_links,
    routes_meta,
    routes_parts,
    routes_project,
    routes_search,
    routes_webhooks,
)
from connector.sandbox.jira.call import Handler

_API = "/rest/api/<any('2','3','latest'):version>"
_ISSUE = f"{_API}/issue/<issue_ref>"
_READ, _WRITE = ["GET"], ["POST"]
_WEBHOOKS = "/rest/webhooks/1.0/webhook"

URL_MAP = Map(
    [
        Rule(f"{_API}/serverInfo", endpoint="serverInfo", methods=_READ),
        Rule(f"{_API}/myself", endpoint="myself", methods=_READ),
        Rule(f"{_API}/field", endpoint="field", methods=_READ),
        Rule(f"{_API}/project", endpoint="projects", methods=_READ),
        Rule(f"{_API}/project/<project_ref>", endpoint="project", methods=_READ),
        Rule(f"{_API}/project/<project_ref>/statuses", endpoint="project_statuses", methods=_READ),
        Rule(
            f"{_API}/issue/createmeta/<project_ref>/issuetypes/<issue_type_id>",
            endpoint="createmeta_fields",
            methods=_READ,
        ),
        Rule(f"{_API}/issuetype", endpoint="issuetype", methods=_READ),
        Rule(f"{_API}/priority", endpoint="priority", methods=_READ),
        Rule(f"{_API}/resolution", endpoint="resolution", methods=_READ),
        Rule(f"{_API}/status", endpoint="status", methods=_READ),
        Rule(f"{_API}/issue", endpoint="issue_create", methods=_WRITE),
        Rule(_ISSUE, endpoint="issue", methods=["GET", "PUT", "DELETE"]),
        Rule(f"{_ISSUE}/changelog", endpoint="changelog", methods=_READ),
        Rule(f"{_ISSUE}/transitions", endpoint="transitions", methods=["GET", "POST"]),
        Rule(f"{_ISSUE}/comment", endpoint="comments", methods=["GET", "POST"]),
        Rule(f"{_ISSUE}/comment/<comment_id>", endpoint="comment", methods=["GET", "PUT", "DELETE"]),
        Rule(f"{_ISSUE}/remotelink", endpoint="remotelinks", methods=["GET", "POST", "DELETE"]),
        Rule(f"{_ISSUE}/remotelink/<link_id>", endpoint="remotelink", methods=["GET", "PUT", "DELETE"]),
        Rule(f"{_ISSUE}/properties", endpoint="properties", methods=_READ),
        Rule(
            f"{_ISSUE}/properties/<path:property_key>", endpoint="property", methods=["GET", "PUT", "DELETE"]
        ),
        Rule(f"{_API}/issueLinkType", endpoint="issueLinkTypes", methods=_READ),
        Rule(f"{_API}/issueLinkType/<link_type_id>", endpoint="issueLinkType", methods=_READ),
        Rule(f"{_API}/issueLink", endpoint="issueLink_create", methods=_WRITE),
        Rule(f"{_API}/issueLink/<issue_link_id>", endpoint="issueLink", methods=["GET", "DELETE"]),
        Rule(f"{_API}/search", endpoint="search", methods=["GET", "POST"]),
        Rule(f"{_API}/search/jql", endpoint="search_jql", methods=["GET", "POST"]),
        Rule(f"{_API}/search/approximate-count", endpoint="approximate_count", methods=_WRITE),
        Rule(f"{_API}/user", endpoint="user", methods=_READ),
        Rule("/rest/applinks/latest/listApplicationlinks", endpoint="applinks", methods=_READ),
        Rule(_WEBHOOKS, endpoint="webhooks", methods=["GET", "POST"]),
        Rule(f"{_WEBHOOKS}/<webhook_id>", endpoint="webhook", methods=["GET", "PUT", "DELETE"]),
    ],
    strict_slashes=False,
    merge_slashes=False,
)

HANDLERS: dict[str, Handler] = (
    routes_meta.HANDLERS
    | routes_issue.HANDLERS
    | routes_parts.HANDLERS
    | routes_links.HANDLERS
    | routes_search.HANDLERS
    | routes_project.HANDLERS
    | routes_webhooks.HANDLERS
)
ANONYMOUS = {"serverInfo"}
CLOUD_ONLY = {"search_jql", "approximate_count", "changelog"}
ISSUE_WRITES = {"issue", "transitions", "comments", "comment", "remotelinks", "remotelink", "property"}


def handler_for(endpoint: str, method: str) -> Handler:
    """The handler of an endpoint and method (``HEAD`` is served as ``GET``)."""
    method = "GET" if method == "HEAD" else method
    return HANDLERS.get(f"{endpoint}:{method}") or HANDLERS[endpoint]
