"""The deliveries an issue or comment write makes to the site's admin webhooks.

After a write the route handler calls :func:`notify`, which picks the enabled webhooks that
subscribe to the event and whose JQL filter (``filters["issue-related-events-section"]``) matches
the issue as the write left it - evaluated by the simulator's JQL evaluator as the user who
registered the webhook, in their time zone; a filter that no longer compiles (it names a deleted
issue, say) matches nothing - and queues one delivery each on the app's
:class:`~connector.sandbox.push.Dispatcher`. The write has committed by then: a fault that loses
the API's answer (``after_commit``) does not stop its deliveries.

Which writes fire which events, as on Jira:

- create: ``jira:issue_created`` (``issue_event_type_name`` ``issue_created``);
- edit: ``jira:issue_updated`` (``issue_updated``) when something changed, with the changelog entry;
- transition: ``jira:issue_updated`` (``issue_generic``: the simulator's workflows have no
  post-function events such as ``issue_resolved``) with the changelog entry;
- comment added, edited, deleted: ``comment_created``/``comment_updated``/``comment_deleted``,
  and ``jira:issue_updated`` (``issue_commented``/``issue_comment_edited``/
  ``issue_comment_deleted``) carrying the comment; a comment added by an edit or a transition
  (``update.comment``) fires ``comment_created`` besides the edit's or transition's event (one given
  in a create's body does not);
- delete: ``jira:issue_deleted`` (``issue_deleted``);
- remote links, entity properties and issue links fire none of these (Jira fires ``issuelink_*``
  for issue links, which the simulator does not implement).

The body is Jira's: ``timestamp`` (epoch ms), ``webhookEvent``, on issue events
``issue_event_type_name`` and ``user`` (who wrote), ``issue`` with ``id``, ``self``, ``key`` and
``fields`` (every navigable field, by the API v2 renderers: text as wiki-markup strings), and
``changelog`` ``{id, items}`` and ``comment`` where they apply. Timestamps are rendered in UTC
(``2026-12-08T01:51:23.000+0000``): the format ``GET issue`` uses, for the same instant, though
``GET issue`` shows it in the caller's profile time zone. The URL is used as registered (Jira's
``${issue.key}`` URL variables are not substituted); ``excludeBody`` sends an empty body.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from connector.sandbox.jira.call import Call
from connector.sandbox.jira.errors import JiraApiError
from connector.sandbox.jira.jql import parse
from connector.sandbox.jira.jqleval import JqlContext, compile_query
from connector.sandbox.jira.model import Comment, History, Issue
from connector.sandbox.jira.render import View, comment_json, field_value, history_json, user_json
from connector.sandbox.jira.site import JiraSite
from connector.sandbox.jira.webhooks import Webhook
from connector.sandbox.push import Delivery, hmac_sha256

USER_AGENT = "Atlassian Webhook HTTP Client"
RETRY_HEADER = "X-Atlassian-Webhook-Retry"
ISSUE_EVENTS = ("jira:issue_created", "jira:issue_updated", "jira:issue_deleted")
COMMENT_EVENTS = ("comment_created", "comment_updated", "comment_deleted")


def headers(delivery_id: str, body: bytes, secret: str | None) -> dict[str, str]:
    """The headers of a first attempt (the dispatcher adds ``X-Atlassian-Webhook-Retry: n`` on retries).

    ``X-Hub-Signature: sha256=<lowercase hex HMAC-SHA256(secret, raw body)>`` when the webhook has a secret.
    """
    out = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Atlassian-Webhook-Identifier": delivery_id,
        "X-Atlassian-Webhook-Flow": "Primary",
    }
    if secret:
        out["X-Hub-Signature"] = "sha256=" + hmac_sha256(secret, body).hex()
    return out


@dataclass(frozen=True)
class Before:
    """An issue's changelog length and comment ids before a write, to tell what the write added."""

    history_count: int
    comment_ids: frozenset[str]

    @classmethod
    def of(cls, issue: Issue) -> Before:
        """Take the measure of ``issue`` before writing to it."""
        return cls(len(issue.history), frozenset(c.comment_id for c in issue.comments))

    def history(self, issue: Issue) -> History | None:
        """The changelog entry the write added, if any."""
        return issue.history[-1] if len(issue.history) > self.history_count else None

    def new_comments(self, issue: Issue) -> list[Comment]:
        """The comments the write added, oldest first."""
        return [c for c in issue.comments if c.comment_id not in self.comment_ids]


def issue_written(call: Call, issue: Issue, before: Before, type_name: str) -> None:
    """Fire what an edit or a transition did: ``jira:issue_updated`` and a ``comment_created`` per comment.

    Nothing when the write changed nothing (no changelog entry, no comment).
    """
    history = before.history(issue)
    comments = before.new_comments(issue)
    if history is None and not comments:
        return
    notify(
        call,
        "jira:issue_updated",
        issue,
        type_name=type_name,
        history=history,
        comment=comments[0] if comments else None,
    )
    for comment in comments:
        notify(call, "comment_created", issue, comment=comment)


def comment_written(call: Call, issue: Issue, comment: Comment, action: str) -> None:
    """Fire what a comment write did; ``action`` is ``created``, ``updated`` or ``deleted``."""
    type_name = {"created": "issue_commented", "updated": "issue_comment_edited"}.get(
        action, "issue_comment_deleted"
    )
    notify(call, "jira:issue_updated", issue, type_name=type_name, comment=comment)
    notify(call, f"comment_{action}", issue, comment=comment)


def notify(
    call: Call,
    event: str,
    issue: Issue,
    *,
    type_name: str | None = None,
    history: History | None = None,
    comment: Comment | None = None,
) -> None:
    """Queue a delivery of ``event`` about ``issue`` to every webhook of the site that wants it.

    ``type_name`` is the ``issue_event_type_name`` of issue events. Called under the app's lock,
    right after the write, so the body shows the issue as this write left it.
    """
    site = call.site
    dispatcher = site.webhooks.dispatcher
    if dispatcher is None:
        return
    hooks = [hook for hook in site.webhooks.subscribed(event) if _matches(site, hook, issue, call.now)]
    if not hooks:
        return
    view = View(site, call.view.site_url, "2", UTC)
    body = _encode(_body(view, call.user, call.now, event, issue, type_name, history, comment))
    for hook in hooks:
        payload = b"" if hook.exclude_body else body
        delivery_id = str(uuid.uuid4())
        dispatcher.enqueue(
            Delivery(hook.url, payload, headers(delivery_id, payload, hook.secret), delivery_id, event)
        )


def _matches(site: JiraSite, hook: Webhook, issue: Issue, now: datetime) -> bool:
    if hook.jql is None:
        return True
    context = JqlContext(site, hook.owner, site.zones[hook.owner], now, strict=False)
    try:
        return compile_query(parse(hook.jql), context)(issue)
    except JiraApiError:
        return False


def _body(
    view: View,
    username: str,
    now: datetime,
    event: str,
    issue: Issue,
    type_name: str | None,
    history: History | None,
    comment: Comment | None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"timestamp": int(now.timestamp() * 1000), "webhookEvent": event}
    if event in ISSUE_EVENTS:
        out["issue_event_type_name"] = type_name or "issue_generic"
        out["user"] = user_json(view, username)
    field_ids = view.site.fields.issue_field_ids(navigable_only=True)
    out["issue"] = {
        "id": issue.issue_id,
        "self": f"{view.rest}/issue/{issue.issue_id}",
        "key": issue.key,
        "fields": {field_id: field_value(view, issue, field_id) for field_id in field_ids},
    }
    if history is not None:
        entry = history_json(view, history)
        out["changelog"] = {"id": entry["id"], "items": entry["items"]}
    if comment is not None:
        out["comment"] = comment_json(view, issue, comment)
    return out


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
