"""Bootstrap and catalogue endpoints: serverInfo, myself, field, project, issuetype, priority..."""

from __future__ import annotations

from werkzeug.wrappers import Response

from connector.sandbox.jira.call import Call, Handler, ok
from connector.sandbox.jira.errors import JiraApiError
from connector.sandbox.jira.params import list_param
from connector.sandbox.jira.render import (
    issuetype_json,
    named_json,
    project_json,
    status_json,
    user_json,
)

_VERSIONS = {
    "cloud": ("1001.0.0-SNAPSHOT", [1001, 0, 0], 100305),
    "datacenter": ("9.12.15", [9, 12, 15], 9120015),
}
BUILD_DATE = "2026-01-01T00:00:00.000+0000"


def server_info(call: Call, _args: dict[str, str]) -> Response:
    """``GET serverInfo``: readable anonymously; ``deploymentType`` steers python-jira's search."""
    version, numbers, build = _VERSIONS[call.site.spec.deployment]
    return ok(
        {
            "baseUrl": call.view.site_url,
            "displayUrl": call.view.site_url,
            "version": version,
            "versionNumbers": numbers,
            "deploymentType": "Cloud" if call.site.is_cloud else "Server",
            "buildNumber": build,
            "buildDate": BUILD_DATE,
            "serverTime": call.view.time(call.now),
            "scmInfo": "0f6e3c1d2b4a59687766554433221100ffeeddcc",
            "serverTitle": "Jira",
        }
    )


def myself(call: Call, _args: dict[str, str]) -> Response:
    """``GET myself``: the authenticated user with ``timeZone`` (JQL dates are read in it)."""
    me = user_json(call.view, call.user) or {}
    return ok(me | {"locale": "en_US", "expand": "groups,applicationRoles"})


def user(call: Call, _args: dict[str, str]) -> Response:
    """``GET user?accountId=`` (Cloud) or ``?username=`` / ``?key=`` (Data Center)."""
    query, site = call.request.args, call.site
    if site.is_cloud:
        ref = query.get("accountId", "")
        found = next((u for u in site.users.values() if u.account_id == ref), None)
    else:
        ref = query.get("username") or query.get("key") or ""
        found = site.user_by_reference({"name": ref} if "username" in query else {"key": ref})
    if found is None:
        raise JiraApiError(404, f"The user '{ref}' does not exist.")
    return ok(user_json(call.view, found.username))


def fields(call: Call, _args: dict[str, str]) -> Response:
    """``GET field``: system and custom fields with ``clauseNames`` and ``schema``."""
    return ok([definition.as_json() for definition in call.site.fields.fields])


def projects(call: Call, _args: dict[str, str]) -> Response:
    """``GET project``: every project (issue types only with ``expand=issueTypes``)."""
    with_types = "issueTypes" in list_param(call.request.args, "expand")
    return ok([project_json(call.view, info, issue_types=with_types) for info in call.site.projects.values()])


def project(call: Call, args: dict[str, str]) -> Response:
    """``GET project/{idOrKey}``: by key or id, with its issue types."""
    ref = args["project_ref"]
    info = call.site.project(ref)
    if info is None:
        kind = "id" if ref.isdigit() else "key"
        raise JiraApiError(404, f"No project could be found with {kind} '{ref}'.")
    return ok(project_json(call.view, info, issue_types=True))


def issue_types(call: Call, _args: dict[str, str]) -> Response:
    """``GET issuetype``."""
    return ok([issuetype_json(call.view, name) for name in call.site.issue_types])


def priorities(call: Call, _args: dict[str, str]) -> Response:
    """``GET priority``."""
    return ok([named_json(call.view, "priority", name) for name in call.site.priorities])


def resolutions(call: Call, _args: dict[str, str]) -> Response:
    """``GET resolution``."""
    return ok([named_json(call.view, "resolution", name) for name in call.site.resolutions])


def statuses(call: Call, _args: dict[str, str]) -> Response:
    """``GET status``."""
    return ok([status_json(call.view, name) for name in call.site.statuses])


def application_links(_call: Call, _args: dict[str, str]) -> Response:
    """``GET /rest/applinks/latest/listApplicationlinks``: none (python-jira warns on anything but 200)."""
    return ok({"list": []})


HANDLERS: dict[str, Handler] = {
    "serverInfo": server_info,
    "myself": myself,
    "user": user,
    "field": fields,
    "projects": projects,
    "project": project,
    "issuetype": issue_types,
    "priority": priorities,
    "resolution": resolutions,
    "status": statuses,
    "applinks": application_links,
}
