"""Issue endpoints: create, get, edit, delete, changelog and transitions.

Writes notify the site's webhooks once applied (:mod:`.webhook_events`).
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from connector.sandbox.jira.call import Call, Handler, no_content, ok
from connector.sandbox.jira.errors import JiraApiError
from connector.sandbox.jira.issues import create_issue, edit_issue, require_issue
from connector.sandbox.jira.params import bool_param, int_param, list_param
from connector.sandbox.jira.render import history_json, issue_json
from connector.sandbox.jira.transitions import transition_issue, transitions_json
from connector.sandbox.jira.webhook_events import Before, issue_written, notify


def create(call: Call, _args: dict[str, str]) -> Response:
    """``POST issue``: 201 ``{id, key, self}``; 400 with errors by field."""
    issue = create_issue(call.writer(), call.body())
    notify(call, "jira:issue_created", issue, type_name="issue_created")
    return ok(
        {"id": issue.issue_id, "key": issue.key, "self": f"{call.view.rest}/issue/{issue.issue_id}"}, 201
    )


def get(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{idOrKey}``: always fresh; ``fields``, ``expand`` and ``properties`` honoured."""
    issue = require_issue(call.writer(), args["issue_ref"])
    query = call.request.args
    field_ids, _ids_only = call.site.fields.select(query.getlist("fields"), "*all")
    expand = set(list_param(query, "expand"))
    return ok(
        issue_json(call.view, issue, field_ids, expand=expand, properties=list_param(query, "properties"))
    )


def edit(call: Call, args: dict[str, str]) -> Response:
    """``PUT issue/{idOrKey}``: 204, or 200 with the issue when ``returnIssue=true``."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    before = Before.of(issue)
    edit_issue(writer, issue, call.body())
    issue_written(call, issue, before, "issue_updated")
    if bool_param(call.request.args, "returnIssue", False):
        field_ids, _ids_only = call.site.fields.select([], "*all")
        return ok(issue_json(call.view, issue, field_ids))
    return no_content()


def delete(call: Call, args: dict[str, str]) -> Response:
    """``DELETE issue/{idOrKey}``: 204; search keeps finding it until the index catches up."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    call.site.remove(issue, call.now)
    notify(call, "jira:issue_deleted", issue, type_name="issue_deleted")
    return no_content()


def changelog(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{idOrKey}/changelog`` (Cloud): the full history, oldest first, paginated."""
    issue = require_issue(call.writer(), args["issue_ref"])
    start_at = max(0, int_param(call.request.args, "startAt", 0))
    max_results = min(100, max(1, int_param(call.request.args, "maxResults", 100)))
    page = issue.history[start_at : start_at + max_results]
    return ok(
        {
            "self": f"{call.view.rest}/issue/{issue.key}/changelog?startAt={start_at}&maxResults={max_results}",
            "maxResults": max_results,
            "startAt": start_at,
            "total": len(issue.history),
            "isLast": start_at + len(page) >= len(issue.history),
            "values": [history_json(call.view, history) for history in page],
        }
    )


def transitions(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/{idOrKey}/transitions``: those available from the current status."""
    issue = require_issue(call.writer(), args["issue_ref"])
    query = call.request.args
    expand_fields = "transitions.fields" in list_param(query, "expand")
    return ok(transitions_json(call.view, issue, query.get("transitionId"), expand_fields))


def transition(call: Call, args: dict[str, str]) -> Response:
    """``POST issue/{idOrKey}/transitions``: 204; 400 for an unavailable transition or a missing field."""
    writer = call.writer()
    issue = require_issue(writer, args["issue_ref"])
    body = call.body()
    if not isinstance(body, dict):
        raise JiraApiError(400, "Missing 'transition' identifier")
    before = Before.of(issue)
    transition_issue(writer, issue, body)
    issue_written(call, issue, before, "issue_generic")
    return no_content()


HANDLERS: dict[str, Handler] = {
    "issue_create": create,
    "issue:GET": get,
    "issue:PUT": edit,
    "issue:DELETE": delete,
    "changelog": changelog,
    "transitions:GET": transitions,
    "transitions:POST": transition,
}
