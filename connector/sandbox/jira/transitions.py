"""Moving issues through their project's workflow (``GET|POST /issue/{key}/transitions``).

Entering a done-category status sets the resolution (the one given on the transition screen, else
the first of the site's resolutions, as Jira's default post function does) and ``resolutiondate``;
leaving the done category clears both.
"""

from __future__ import annotations

from typing import Any

from connector.sandbox.jira.errors import JiraApiError, bad_request, field_errors
from connector.sandbox.jira.issues import change_items, commit, new_comment, plan_values
from connector.sandbox.jira.model import Issue
from connector.sandbox.jira.render import View, status_json
from connector.sandbox.jira.values import WriteContext
from connector.sandbox.jira.workflow import Transition


def transitions_json(
    view: View, issue: Issue, transition_id: str | None, expand_fields: bool
) -> dict[str, Any]:
    """The ``Transitions`` answer: what an issue in its current status may take."""
    graph = view.site.project_of(issue).workflow
    available = [
        t for t in graph.available(issue.status) if transition_id is None or t.transition_id == transition_id
    ]
    return {
        "expand": "transitions",
        "transitions": [_transition_json(view, t, expand_fields) for t in available],
    }


def _transition_json(view: View, transition: Transition, expand_fields: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": transition.transition_id,
        "name": transition.name,
        "to": status_json(view, transition.to),
        "hasScreen": bool(transition.requires),
        "isGlobal": transition.is_global,
        "isInitial": False,
        "isAvailable": True,
        "isConditional": False,
        "isLooped": False,
    }
    if expand_fields:
        out["fields"] = {field_id: _screen_field(view, field_id) for field_id in transition.requires}
    return out


def _screen_field(view: View, field_id: str) -> dict[str, Any]:
    definition = view.site.fields.get(field_id)
    name = definition.name if definition else field_id
    schema = dict(definition.schema) if definition and definition.schema else {"type": "string"}
    out: dict[str, Any] = {
        "required": True,
        "schema": schema,
        "name": name,
        "key": field_id,
        "operations": ["set"],
    }
    if field_id == "resolution":
        out["allowedValues"] = [
            {"self": f"{view.rest}/resolution/{rid}", "id": rid, "name": name}
            for name, rid in view.site.resolutions.items()
        ]
    return out


def _transition_id(body: Any) -> str:
    transition = body.get("transition") if isinstance(body, dict) else None
    if not isinstance(transition, dict) or transition.get("id") is None:
        raise bad_request("Missing 'transition' identifier")
    return str(transition["id"])


def transition_issue(ctx: WriteContext, issue: Issue, body: Any) -> None:
    """Apply a ``POST /transitions`` body; raises 400 for an unavailable transition or missing fields."""
    transition_id = _transition_id(body)
    project = ctx.site.project_of(issue)
    graph = project.workflow
    transition = graph.transition(transition_id)
    if transition is None or not transition.available_from(issue.status):
        raise JiraApiError(400, f"Transition id '{transition_id}' is not valid for this issue.")
    screen_only = {
        "fields": body.get("fields") or {},
        "update": {"comment": (body.get("update") or {}).get("comment", [])},
    }
    values, comments, errors = plan_values(ctx, issue, screen_only, allowed=set(transition.requires))
    for field_id in transition.requires:
        if values.get(field_id) is None and field_id not in errors:
            definition = ctx.site.fields.get(field_id)
            errors[field_id] = f"{definition.name if definition else field_id} is required."
    if errors:
        raise field_errors(errors)
    was_done = graph.category(issue.status) == "done"
    done = graph.category(transition.to) == "done"
    values["status"] = transition.to
    if done:
        values["resolution"] = (
            values.get("resolution") or issue.resolution or next(iter(ctx.site.resolutions), None)
        )
    elif was_done:
        values["resolution"] = None
    if graph.category(issue.status) != graph.category(transition.to):
        issue.status_changed = ctx.now
    if done and not was_done:
        issue.resolution_date = ctx.now
    elif was_done and not done:
        issue.resolution_date = None
    items = change_items(ctx, issue, values)
    issue.comments += [new_comment(ctx, text) for text in comments]
    commit(ctx, issue, items, touched=True)
