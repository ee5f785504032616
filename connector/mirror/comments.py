"""Comments both ways for one incident x supplier, each once. Pure.

* :func:`plan_comments_out` - the incident's public comments (work notes only if the mapping opts
  in) as issue comments, author and body scrubbed (:mod:`connector.mirror.redaction`), stamped;
  the connector's own entries never go out;
* :func:`plan_comments_in` - the supplier's comments as work notes (or comments), attributed,
  stamped; comments of our own account, or recorded as created by us, never come back.

The comment ledger (``mirrored_out``, ``mirrored_in``, ``created_in_jira``) is both the no-op
guard and the echo guard.
"""

from __future__ import annotations

from datetime import datetime

from connector.core.markers import marker, stamp_line
from connector.core.plan import Change, CommentOnIssue, NoteOnIncident
from connector.core.templates import render
from connector.core.times import format_servicenow_time
from connector.mirror.redaction import Scrubber, sanitize
from connector.mirror.view import SUMMARY_LIMIT, TEXT_LIMIT, EntityView, journal_safe, ours_in_servicenow


def plan_comments_out(view: EntityView, scrubber: Scrubber) -> list[Change]:
    """The incident's journal entries not mirrored yet, as comments on the issue."""
    assert view.issue is not None
    settings = view.mapping.outbound.comments
    elements = {"comments"} if settings.public else set()
    if settings.work_notes:
        elements.add("work_notes")
    changes: list[Change] = []
    for entry in sorted(view.journal, key=lambda e: (e.sys_created_on, e.sys_id)):
        if entry.element not in elements or entry.sys_id in view.mirrored_out:
            continue
        if ours_in_servicenow(entry, view.integration_user):
            continue
        ref = marker("o", view.incident.sys_id, entry.sys_id)
        # The author is a user name (often an e-mail address): redacted like the body. The time
        # and the number are ServiceNow's own and go in as they are.
        author = scrubber.text(entry.created_by, SUMMARY_LIMIT, f"author of {entry.element} {entry.sys_id}")
        header = sanitize(
            render(
                settings.header,
                {
                    "author": author,
                    "created": format_servicenow_time(entry.sys_created_on),
                    "number": view.incident.number,
                },
            )
        )
        room = max(TEXT_LIMIT - len(header) - 1, 1)
        body = scrubber.text(entry.value, room, f"{entry.element} {entry.sys_id}")
        text = f"{header}\n{body}\n\n{stamp_line(ref)}"
        changes.append(
            CommentOnIssue(
                entry.sys_id, text, ref, f"{entry.element} {entry.sys_id} of {view.incident.number}"
            )
        )
    return changes


def plan_comments_in(view: EntityView) -> list[Change]:
    """The supplier's comments not mirrored yet, as journal entries on the incident."""
    assert view.issue is not None
    settings = view.mapping.inbound.comments
    changes: list[Change] = []
    for comment in sorted(view.issue.comments, key=lambda c: (c.created, c.comment_id)):
        # Ours by identity (our account, or recorded as created by us), not by text: a reply that
        # quotes or pastes one of our comments carries its marker and is the supplier's.
        if comment.author_id == view.account_id or comment.comment_id in view.created_in_jira:
            continue
        if comment.comment_id in view.mirrored_in:
            continue
        ref = marker("i", view.supplier, comment.comment_id)
        header = render(
            settings.header,
            {
                "key": view.issue.key,
                "author": comment.author,
                "supplier": view.mapping.display_name,
                "created": _iso(comment.created),
            },
        )
        text = journal_safe(f"{header}\n{comment.body}") + f"\n{stamp_line(ref)}"
        reason = f"comment {comment.comment_id} by {comment.author} on {view.issue.key}"
        changes.append(NoteOnIncident(comment.comment_id, settings.target, text, ref, reason))
    return changes


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
