"""Issue link endpoints: ``issueLinkType`` (list, one) and ``issueLink`` (create, get, delete).

Linking needs no permission beyond what editing needs: the simulator lets every authenticated
user edit every issue, so every authenticated user may link and unlink them too.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from connector.sandbox.jira.call import Call, Handler, no_content, ok
from connector.sandbox.jira.links import create_link, delete_link, ends, find_link, find_link_type
from connector.sandbox.jira.render import issue_link_json, link_type_json


def list_link_types(call: Call, _args: dict[str, str]) -> Response:
    """``GET issueLinkType``: ``{"issueLinkTypes": [...]}`` in the site's order."""
    return ok({"issueLinkTypes": [link_type_json(call.view, type_id) for type_id in call.site.link_types]})


def get_link_type(call: Call, args: dict[str, str]) -> Response:
    """``GET issueLinkType/{id}``: 400 for a non-numeric id, 404 for an unknown one."""
    return ok(link_type_json(call.view, find_link_type(call.site, args["link_type_id"])))


def post_link(call: Call, _args: dict[str, str]) -> Response:
    """``POST issueLink``: 201 with an empty body; the id is only in ``issuelinks`` of either issue.

    Data Center also sends ``Location: .../rest/api/2/issueLink/{id}`` (its ``LinkIssueResource``
    does); Cloud documents that it "returns nothing", so the simulator sends no Location there.
    """
    link = create_link(call.writer(), call.body())
    response = Response(status=201)
    if not call.site.is_cloud:
        response.headers["Location"] = f"{call.view.site_url}/rest/api/2/issueLink/{link.link_id}"
    return response


def get_link(call: Call, args: dict[str, str]) -> Response:
    """``GET issueLink/{id}``: both ends, ``inwardIssue`` the source and ``outwardIssue`` the destination."""
    link = find_link(call.site, args["issue_link_id"])
    source, destination = ends(call.site, link)
    return ok(issue_link_json(call.view, link, source, destination))


def remove_link(call: Call, args: dict[str, str]) -> Response:
    """``DELETE issueLink/{id}``: 204."""
    writer = call.writer()
    delete_link(writer, find_link(call.site, args["issue_link_id"]))
    return no_content()


HANDLERS: dict[str, Handler] = {
    "issueLinkTypes": list_link_types,
    "issueLinkType": get_link_type,
    "issueLink_create": post_link,
    "issueLink:GET": get_link,
    "issueLink:DELETE": remove_link,
}
