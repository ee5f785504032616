"""The admin webhook REST API of Jira Cloud and Data Center: ``/rest/webhooks/1.0/webhook[/{id}]``.

``POST`` registers (201 with the webhook and its ``self``), ``GET`` lists or reads, ``PUT``
replaces (a secret left out is kept), ``DELETE`` removes (204). A body is
``{"name", "url", "events": [...], "filters": {"issue-related-events-section": "<JQL>"},
"excludeBody": false, "enabled": true, "secret": "..."}``; the secret is never shown back. The
JQL is checked as search checks it (a 400 with Jira's message). Event names are not checked
against a list: those the simulator never fires (see :mod:`.webhook_events`) are kept and never
delivered.

Real Jira lets only administrators manage webhooks. The simulator has no administrators: every
authenticated user of the site may, as every one of them may edit every issue.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

from connector.sandbox.jira.call import Call, Handler, no_content, ok
from connector.sandbox.jira.errors import JiraApiError, bad_request
from connector.sandbox.jira.jql import parse
from connector.sandbox.jira.jqleval import JqlContext, compile_query
from connector.sandbox.jira.webhooks import JQL_FILTER, Webhook


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise JiraApiError(400, errors={key: f"The {key} must be a non-empty string."})
    return value


def _secret(body: dict[str, Any]) -> str | None:
    value = body.get("secret")
    if value is not None and not isinstance(value, str):
        raise JiraApiError(400, errors={"secret": "The secret must be a string."})
    return value or None


def _flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise JiraApiError(400, errors={key: f"The {key} must be true or false."})
    return value


def _webhook(call: Call, body: Any, webhook_id: int) -> Webhook:
    """A webhook from a registration body; raises a 400 ``JiraApiError`` when it is invalid."""
    if not isinstance(body, dict):
        raise bad_request("The webhook must be a JSON object.")
    errors: dict[str, str] = {}
    name, url = _text(body, "name"), _text(body, "url")
    if name is None:
        errors["name"] = "The name is required."
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        errors["url"] = "The URL must be an absolute http or https URL."
    events = body.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) and e for e in events):
        errors["events"] = "At least one event is required, as a list of event names."
    filters = body.get("filters") or {}
    if not isinstance(filters, dict) or not isinstance(filters.get(JQL_FILTER) or "", str):
        errors["filters"] = f"The filters must be an object whose '{JQL_FILTER}' is a JQL string."
    if errors or not isinstance(events, list) or not isinstance(filters, dict):
        raise JiraApiError(400, errors=errors)
    jql = str(filters.get(JQL_FILTER) or "").strip() or None
    if jql is not None:
        compile_query(parse(jql), JqlContext(call.site, call.user, call.view.zone, call.now))
    return Webhook(
        webhook_id=webhook_id,
        name=name or "",
        url=url or "",
        events=tuple(dict.fromkeys(events)),
        jql=jql,
        exclude_body=_flag(body, "excludeBody", False),
        secret=_secret(body),
        enabled=_flag(body, "enabled", True),
        owner=call.user,
        updated=call.now,
    )


def webhook_json(call: Call, hook: Webhook) -> dict[str, Any]:
    """A webhook as the API shows it: never its secret."""
    site = call.site
    owner = site.users[hook.owner]
    return {
        "name": hook.name,
        "url": hook.url,
        "excludeBody": hook.exclude_body,
        "filters": {JQL_FILTER: hook.jql or ""},
        "events": list(hook.events),
        "enabled": hook.enabled,
        "self": f"{call.view.site_url}/rest/webhooks/1.0/webhook/{hook.webhook_id}",
        "lastUpdatedUser": owner.account_id if site.is_cloud else hook.owner,
        "lastUpdatedDisplayName": owner.display_name,
        "lastUpdated": int(hook.updated.timestamp() * 1000),
    }


def register(call: Call, _args: dict[str, str]) -> Response:
    """``POST /rest/webhooks/1.0/webhook``: 201 with the webhook; 400 for an invalid one."""
    webhooks = call.site.webhooks
    hook = _webhook(call, call.body(), 0)
    hook.webhook_id = webhooks.next_id()
    webhooks.put(hook)
    return ok(webhook_json(call, hook), 201)


def list_webhooks(call: Call, _args: dict[str, str]) -> Response:
    """``GET /rest/webhooks/1.0/webhook``: every webhook of the site, oldest first."""
    return ok([webhook_json(call, hook) for hook in call.site.webhooks.hooks.values()])


def get_webhook(call: Call, args: dict[str, str]) -> Response:
    """``GET /rest/webhooks/1.0/webhook/{id}``: 404 when unknown."""
    return ok(webhook_json(call, call.site.webhooks.get(args["webhook_id"])))


def replace_webhook(call: Call, args: dict[str, str]) -> Response:
    """``PUT /rest/webhooks/1.0/webhook/{id}``: 200 with the webhook; the old secret stays if none is given."""
    webhooks = call.site.webhooks
    old = webhooks.get(args["webhook_id"])
    hook = _webhook(call, call.body(), old.webhook_id)
    if hook.secret is None:
        hook.secret = old.secret
    webhooks.put(hook)
    return ok(webhook_json(call, hook))


def delete_webhook(call: Call, args: dict[str, str]) -> Response:
    """``DELETE /rest/webhooks/1.0/webhook/{id}``: 204; 404 when unknown."""
    call.site.webhooks.remove(args["webhook_id"])
    return no_content()


HANDLERS: dict[str, Handler] = {
    "webhooks:GET": list_webhooks,
    "webhooks:POST": register,
    "webhook:GET": get_webhook,
    "webhook:PUT": replace_webhook,
    "webhook:DELETE": delete_webhook,
}
