"""What a project offers a client that is about to work in it: statuses per issue type, create fields.

``GET project/{key}/statuses`` lists each issue type of the project with the statuses of its
workflow (in the workflow's order here; Jira does not promise an order). ``GET
issue/createmeta/{key}/issuetypes/{typeId}`` lists the fields of the create screen, one page at a
time: Cloud answers ``{"fields": [...]}``, Data Center ``{"values": [...], "isLast": ...}`` (which
is why python-jira's ``project_issue_fields``, reading ``values``, finds nothing on Cloud, where it
refuses to run anyway). Every field a client may set on create is on the screen; ``project``,
``issuetype`` and ``summary`` are required, as the create endpoint enforces.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from connector.sandbox.jira.call import Call, Handler, ok
from connector.sandbox.jira.errors import JiraApiError, bad_request
from connector.sandbox.jira.fields import FieldDef
from connector.sandbox.jira.params import int_param
from connector.sandbox.jira.render import View, issuetype_json, named_json, project_json, status_json
from connector.sandbox.jira.site import ProjectInfo

CREATE_REQUIRED = ("project", "issuetype", "summary")
CREATEMETA_PAGE_LIMIT = 200
_OPERATIONS = {"labels": ["add", "set", "remove"], "array": ["add", "set", "remove"]}


def _project(call: Call, ref: str) -> ProjectInfo:
    info = call.site.project(ref)
    if info is None:
        kind = "id" if ref.isdigit() else "key"
        raise JiraApiError(404, f"No project could be found with {kind} '{ref}'.")
    return info


def project_statuses(call: Call, args: dict[str, str]) -> Response:
    """``GET project/{idOrKey}/statuses``: each issue type of the project with its workflow's statuses."""
    info = _project(call, args["project_ref"])
    view = call.view
    statuses = [status_json(view, name) for name in info.workflow.statuses]
    return ok(
        [
            {
                "self": f"{view.rest}/issueType/{call.site.issue_types[name]}",
                "id": call.site.issue_types[name],
                "name": name,
                "subtask": False,
                "statuses": statuses,
            }
            for name in info.spec.issue_types
        ]
    )


def create_fields(call: Call, args: dict[str, str]) -> Response:
    """``GET issue/createmeta/{idOrKey}/issuetypes/{issueTypeId}``: the create screen, paged by ``startAt``.

    Not verified against Jira: the 404 texts for an unknown project or an issue type the project
    does not have.
    """
    info = _project(call, args["project_ref"])
    type_id = args["issue_type_id"]
    issue_type = next(
        (name for name in info.spec.issue_types if call.site.issue_types[name] == type_id), None
    )
    if issue_type is None:
        raise JiraApiError(404, f"Issue type with id '{type_id}' not found.")
    query = call.request.args
    start_at = max(0, int_param(query, "startAt", 0))
    max_results = int_param(query, "maxResults", 50)
    if call.site.is_cloud and max_results > CREATEMETA_PAGE_LIMIT:
        raise bad_request(f"Parameter 'maxResults' must not exceed the limit '{CREATEMETA_PAGE_LIMIT}'")
    max_results = max(1, min(max_results, CREATEMETA_PAGE_LIMIT))
    on_screen = [d for d in call.site.fields.fields if d.screen in ("create", "edit")]
    page = [_field_json(call.view, info, issue_type, d) for d in on_screen[start_at : start_at + max_results]]
    answer: dict[str, Any] = {"startAt": start_at, "maxResults": max_results, "total": len(on_screen)}
    if call.site.is_cloud:
        answer["fields"] = page
    else:
        answer["isLast"] = start_at + len(page) >= len(on_screen)
        answer["values"] = page
    return ok(answer)


def _field_json(view: View, info: ProjectInfo, issue_type: str, definition: FieldDef) -> dict[str, Any]:
    field_id = definition.field_id
    schema = dict(definition.schema) if definition.schema else {"type": "string"}
    out: dict[str, Any] = {
        "required": field_id in CREATE_REQUIRED,
        "schema": schema,
        "name": definition.name,
        "key": field_id,
        "fieldId": field_id,
        "hasDefaultValue": field_id == "priority" and bool(view.site.priorities),
        "operations": _OPERATIONS.get(schema.get("type", ""), ["set"]),
    }
    if field_id == "project":
        out["allowedValues"] = [project_json(view, info, issue_types=False, brief=True)]
    elif field_id == "issuetype":
        out["allowedValues"] = [issuetype_json(view, issue_type)]
    elif field_id == "priority":
        out["allowedValues"] = [named_json(view, "priority", name) for name in view.site.priorities]
        names = list(view.site.priorities)
        if names:  # the priority create_issue gives an issue sent without one
            default = "Medium" if "Medium" in names else names[len(names) // 2]
            out["defaultValue"] = named_json(view, "priority", default)
    return out


HANDLERS: dict[str, Handler] = {
    "project_statuses": project_statuses,
    "createmeta_fields": create_fields,
}
