"""Endpoints of an issue's parts: comments, remote links and entity properties.

Comment writes notify the site's webhooks (:mod:`.webhook_events`); remote links and entity
properties do not, as on Jira.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from connector.sandbox.jira.call import Call, Handler, no_content, ok
from connector.sandbox.jira.errors import bad_request
from connector.sandbox.jira.issues import require_issue
from connector.sandbox.jira.params import int_param
from connector.sandbox.jira.parts import (
    add_comment,
    delete_comment,
    delete_property,
    delete_remote_link,
    find_comment,
    find_remote_link,
    property_or_404,
    replace_remote_link,
    set_property,
    update_comment,
    upsert_remote_link,
)
from connector.sandbox.jira.render import comment_json, comments_page, remote_link_json
from connector.sandbox.jira.webhook_events import comment_written

COMMENT_PAGE_LIMIT = 100


def list_comments(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{key}/comment``: one page (at most 100), ``orderBy=created|-created``."""
    issue = require_issue(call.writer(), args["issue_ref"])
    query = call.request.args
    start_at = max(0, int_param(query, "startAt", 0))
    max_results = min(COMMENT_PAGE_LIMIT, max(0, int_param(query, "maxResults", COMMENT_PAGE_LIMIT)))
    ordered = sorted(issue.comments, key=lambda c: (c.created, int(c.comment_id)))
    if query.get("orderBy", "created").lstrip("+") == "-created":
        ordered.reverse()
    page = ordered[start_at : start_at + max_results]
    return ok(comments_page(call.view, issue, page, start_at, max_results, len(ordered)))


def post_comment(call: Call, args: dict[str, str]) -> Response:
    """``POST issue/{key}/comment``: 201 with the comment."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    comment = add_comment(writer, issue, call.body())
    comment_written(call, issue, comment, "created")
    return ok(comment_json(call.view, issue, comment), 201)


def get_comment(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{key}/comment/{id}``."""
    issue = require_issue(call.writer(), args["issue_ref"])
    return ok(comment_json(call.view, issue, find_comment(issue, args["comment_id"])))


def put_comment(call: Call, args: dict[str, str]) -> Response:
    """``PUT issue/{key}/comment/{id}``: 200 with the updated comment."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    comment = find_comment(issue, args["comment_id"])
    update_comment(writer, issue, comment, call.body())
    comment_written(call, issue, comment, "updated")
    return ok(comment_json(call.view, issue, comment))


def remove_comment(call: Call, args: dict[str, str]) -> Response:
    """``DELETE issue/{key}/comment/{id}``: 204."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    comment = find_comment(issue, args["comment_id"])
    delete_comment(writer, issue, comment)
    comment_written(call, issue, comment, "deleted")
    return no_content()


def list_links(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{key}/remotelink[?globalId=]``: a list, or the one link with that global id."""
    issue = require_issue(call.writer(), args["issue_ref"])
    global_id = call.request.args.get("globalId")
    if global_id is not None:
        return ok(remote_link_json(call.view, issue, find_remote_link(issue, global_id=global_id)))
    return ok([remote_link_json(call.view, issue, link) for link in issue.remote_links])


def post_link(call: Call, args: dict[str, str]) -> Response:
    """``POST issue/{key}/remotelink``: 201 when new, 200 when the ``globalId`` replaced a link."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    link, created = upsert_remote_link(writer, issue, call.body())
    return ok(
        {"id": link.link_id, "self": f"{call.view.rest}/issue/{issue.key}/remotelink/{link.link_id}"},
        201 if created else 200,
    )


def delete_link_by_global_id(call: Call, args: dict[str, str]) -> Response:
    """``DELETE issue/{key}/remotelink?globalId=``: 204."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    global_id = call.request.args.get("globalId")
    if not global_id:
        raise bad_request("The globalId parameter is required.")
    delete_remote_link(writer, issue, find_remote_link(issue, global_id=global_id))
    return no_content()


def get_link(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{key}/remotelink/{id}``."""
    issue = require_issue(call.writer(), args["issue_ref"])
    return ok(remote_link_json(call.view, issue, find_remote_link(issue, link_id=args["link_id"])))


def put_link(call: Call, args: dict[str, str]) -> Response:
    """``PUT issue/{key}/remotelink/{id}``: 204; the link is replaced."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    replace_remote_link(writer, issue, find_remote_link(issue, link_id=args["link_id"]), call.body())
    return no_content()


def delete_link(call: Call, args: dict[str, str]) -> Response:
    """``DELETE issue/{key}/remotelink/{id}``: 204."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    delete_remote_link(writer, issue, find_remote_link(issue, link_id=args["link_id"]))
    return no_content()


def list_properties(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{key}/properties``: the keys."""
    issue = require_issue(call.writer(), args["issue_ref"])
    base = f"{call.view.rest}/issue/{issue.issue_id}/properties"
    return ok({"keys": [{"self": f"{base}/{key}", "key": key} for key in issue.properties]})


def get_property(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{key}/properties/{propertyKey}``."""
    issue = require_issue(call.writer(), args["issue_ref"])
    key = args["property_key"]
    return ok({"key": key, "value": property_or_404(issue, key)})


def put_property(call: Call, args: dict[str, str]) -> Response:
    """``PUT issue/{key}/properties/{propertyKey}``: 201 when new, 200 when replaced."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    call.body()  # the same JSON checks as every other body
    created = set_property(writer, issue, args["property_key"], call.request.get_data(cache=True))
    return ok({}, 201 if created else 200)


def remove_property(call: Call, args: dict[str, str]) -> Response:
    """``DELETE issue/{key}/properties/{propertyKey}``: 204."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    delete_property(writer, issue, args["property_key"])
    return no_content()


HANDLERS: dict[str, Handler] = {
    "comments:GET": list_comments,
    "comments:POST": post_comment,
    "comment:GET": get_comment,
    "comment:PUT": put_comment,
    "comment:DELETE": remove_comment,
    "remotelinks:GET": list_links,
    "remotelinks:POST": post_link,
    "remotelinks:DELETE": delete_link_by_global_id,
    "remotelink:GET": get_link,
    "remotelink:PUT": put_link,
    "remotelink:DELETE": delete_link,
    "properties": list_properties,
    "property:GET": get_property,
    "property:PUT": put_property,
    "property:DELETE": remove_property,
}
