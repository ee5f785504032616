"""An issue's comments, remote links and entity properties.

Comments and remote links bump the issue's ``updated`` (remote links also leave a changelog entry,
as Jira does); entity properties do not, but they are re-indexed for ``issue.property[...]`` JQL.
A remote-link POST with a known ``globalId`` replaces the stored link wholesale.
"""

from __future__ import annotations

import json
from typing import Any

from connector.sandbox.jira.errors import JiraApiError, bad_request, field_errors
from connector.sandbox.jira.issues import COMMENT_EMPTY, commit, new_comment
from connector.sandbox.jira.model import ChangeItem, Comment, Issue, RemoteLink
from connector.sandbox.jira.values import InvalidValue, WriteContext, rich_text

PROPERTY_VALUE_LIMIT = 32_768


def _comment_text(ctx: WriteContext, body: Any) -> str:
    raw = body.get("body") if isinstance(body, dict) else None
    try:
        text = rich_text(ctx, raw)
    except InvalidValue as exc:
        raise field_errors({"comment": str(exc)}) from None
    if not text or not text.strip():
        raise field_errors({"comment": COMMENT_EMPTY})
    return text


def add_comment(ctx: WriteContext, issue: Issue, body: Any) -> Comment:
    """Add a comment from a ``POST /comment`` body (string on v2, ADF on v3)."""
    comment = new_comment(ctx, _comment_text(ctx, body))
    visibility = body.get("visibility") if isinstance(body, dict) else None
    if isinstance(visibility, dict):
        comment.visibility = visibility
    issue.comments.append(comment)
    commit(ctx, issue, [], touched=True)
    return comment


def find_comment(issue: Issue, comment_id: str) -> Comment:
    """The comment with this id on ``issue``, or a 404."""
    for comment in issue.comments:
        if comment.comment_id == comment_id:
            return comment
    raise JiraApiError(404, f"Can not find a comment for the id: {comment_id}.")


def update_comment(ctx: WriteContext, issue: Issue, comment: Comment, body: Any) -> None:
    """Replace a comment's body from a ``PUT /comment/{id}`` body."""
    comment.body = _comment_text(ctx, body)
    comment.updated = ctx.now
    comment.update_author = ctx.username
    commit(ctx, issue, [], touched=True)


def delete_comment(ctx: WriteContext, issue: Issue, comment: Comment) -> None:
    """Remove a comment."""
    issue.comments.remove(comment)
    commit(ctx, issue, [], touched=True)


def _link_fields(body: Any) -> tuple[str | None, dict[str, Any] | None, str | None, dict[str, Any]]:
    if not isinstance(body, dict):
        raise bad_request("The remote link must be a JSON object.")
    link_object = body.get("object")
    errors: dict[str, str] = {}
    if not isinstance(link_object, dict) or not link_object.get("url"):
        errors["url"] = "'url' is required."
    if not isinstance(link_object, dict) or not link_object.get("title"):
        errors["title"] = "'title' is required."
    if errors or not isinstance(link_object, dict):
        raise field_errors(errors)
    global_id = body.get("globalId")
    application = body.get("application")
    relationship = body.get("relationship")
    return (
        str(global_id) if global_id is not None else None,
        application if isinstance(application, dict) else None,
        str(relationship) if relationship is not None else None,
        dict(link_object),
    )


def upsert_remote_link(ctx: WriteContext, issue: Issue, body: Any) -> tuple[RemoteLink, bool]:
    """Create a remote link, or replace the one with the same ``globalId``; return it and whether it is new."""
    global_id, application, relationship, link_object = _link_fields(body)
    existing = next((link for link in issue.remote_links if global_id and link.global_id == global_id), None)
    if existing is not None:
        existing.application, existing.relationship, existing.object = application, relationship, link_object
        commit(ctx, issue, [], touched=True)
        return existing, False
    link = RemoteLink(
        ctx.site.next_id("remotelink", 10000), global_id, application, relationship, link_object
    )
    issue.remote_links.append(link)
    title = str(link_object.get("title"))
    item = ChangeItem(
        "RemoteIssueLink",
        "RemoteIssueLink",
        "jira",
        None,
        None,
        str(link.link_id),
        f'This issue links to "{title}"',
    )
    commit(ctx, issue, [item])
    return link, True


def replace_remote_link(ctx: WriteContext, issue: Issue, link: RemoteLink, body: Any) -> None:
    """``PUT /remotelink/{id}``: replace everything but the id."""
    link.global_id, link.application, link.relationship, link.object = _link_fields(body)
    commit(ctx, issue, [], touched=True)


def find_remote_link(issue: Issue, *, link_id: str | None = None, global_id: str | None = None) -> RemoteLink:
    """A remote link by id or by ``globalId``, or a 404."""
    for link in issue.remote_links:
        if (link_id is not None and str(link.link_id) == link_id) or (
            global_id is not None and link.global_id == global_id
        ):
            return link
    raise JiraApiError(404, "No remote link found for this issue with the given id or globalId.")


def delete_remote_link(ctx: WriteContext, issue: Issue, link: RemoteLink) -> None:
    """Remove a remote link."""
    issue.remote_links.remove(link)
    item = ChangeItem("RemoteIssueLink", "RemoteIssueLink", "jira", str(link.link_id), "", None, None)
    commit(ctx, issue, [item])


def set_property(ctx: WriteContext, issue: Issue, key: str, raw_body: bytes) -> bool:
    """Store an entity property from the raw PUT body; return whether it is new."""
    if len(key) > 255:
        raise bad_request("The property key cannot be longer than 255 characters.")
    if not raw_body.strip():
        raise bad_request("The property value cannot be empty.")
    if len(raw_body) > PROPERTY_VALUE_LIMIT:
        raise bad_request(
            f"The property value is too long. The maximum allowed length is {PROPERTY_VALUE_LIMIT} characters."
        )
    try:
        value = json.loads(raw_body)
    except ValueError:
        raise bad_request("The property value must be valid JSON.") from None
    created = key not in issue.properties
    issue.properties[key] = value
    ctx.site.reindex(issue, ctx.now)
    return created


def property_or_404(issue: Issue, key: str) -> Any:
    """The value of an entity property, or the 404 Jira answers."""
    if key not in issue.properties:
        raise JiraApiError(404, f"The property with key '{key}' does not exist.")
    return issue.properties[key]


def delete_property(ctx: WriteContext, issue: Issue, key: str) -> None:
    """Remove an entity property, or 404."""
    property_or_404(issue, key)
    del issue.properties[key]
    ctx.site.reindex(issue, ctx.now)
