"""Knowing our own work without the store: issues, comments and notes recognised by their stamps. Pure.

The store is not the only copy of identity. Each issue carries our entity property (the
incident's sys_id and its ServiceNow instance), each incident lists its issues' keys in
``correlation_display``, and every comment or note we append ends with a marker line. So a
restored, emptied or foreign store is recovered from both sides:

* :func:`candidate_keys` - before an entity's first create, the keys the incident lists for the
  supplier's project (read with the incident: no extra call); the engine reads each directly and
  adopts it only if its stamp says it is ours, for this incident of this instance;
* :func:`already_landed` - the appending writes of a plan whose marker is already on their target
  (the comment ledger did not know them): recorded, not sent again;
* :func:`rebuilt_shadow` - the Jira-side shadow of an adopted or stale link, chosen so that
  nothing a supplier changed since is fought (see its docstring).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from connector.core import shadows
from connector.core.links import Direction
from connector.core.markers import own_ref
from connector.core.models import JournalEntry, SupplierIssue
from connector.core.plan import Change, CommentOnIssue, NoteOnIncident
from connector.mirror.outbound import outbound_values
from connector.mirror.redaction import Scrubber
from connector.mirror.shared import to_jira
from connector.mirror.view import STATE_DONE, STATE_PENDING, EntityView, dated, norm

_KEY = re.compile(r"[A-Z][A-Z0-9_]*-\d+")


@dataclass(frozen=True)
class Landed:
    """An appending write found already done: what the comment ledger records for it."""

    direction: Direction
    source_id: str
    marker: str
    target_id: str
    """The Jira comment id (outbound) or the marker (inbound, as the executor records it)."""


def candidate_keys(listed: str, project: str) -> list[str]:
    """The issue keys of ``project`` in ``listed`` (``correlation_display``), each once, in order."""
    prefix = project.upper() + "-"
    found = [key for key in _KEY.findall(listed.upper()) if key.startswith(prefix)]
    return list(dict.fromkeys(found))


def already_landed(
    changes: Iterable[Change], issue: SupplierIssue, journal: Sequence[JournalEntry] | None
) -> list[Landed]:
    """The comments on ``issue`` and notes in ``journal`` that ``changes`` would append again.

    ``journal`` is the incident's whole journal, or ``None`` when only part of it is at hand
    (then notes are not checked: absence from a part proves nothing).
    """
    # By the marker on a text's own last line: a reply quoting one of ours carries it elsewhere,
    # and is the supplier's, not the landing of ours.
    comments: dict[str | None, str] = {}
    for comment in issue.comments:
        comments.setdefault(own_ref(comment.body), comment.comment_id)
    notes = {own_ref(entry.value) for entry in journal} if journal is not None else set()
    found: list[Landed] = []
    for change in changes:
        if isinstance(change, CommentOnIssue):
            target = comments.get(change.marker)
            if target is not None:
                found.append(Landed("out", change.source_id, change.marker, target))
        elif isinstance(change, NoteOnIncident) and change.marker in notes:
            found.append(Landed("in", change.source_id, change.marker, change.marker))
    return found


def rebuilt_shadow(view: EntityView) -> dict[str, str]:
    """The Jira-side shadow of a link whose shadow is missing or stale, from the issue as read.

    The issue's changelog says who changed what last. A ServiceNow-owned field the supplier
    changed last counts as synced with our value (their edit is a conflict, noted, not fought);
    any other field as synced with what the issue holds (so a ServiceNow change made since is
    written). A shared field the supplier changed last counts as agreed on ours (theirs is the
    later word), else on theirs. When the supplier made the latest status move, the incident's
    state counts as mirrored (their status stands until the state changes again); when we did,
    or nobody did, it does not (a state changed since is mirrored).
    """
    issue = view.issue
    assert issue is not None
    authors = issue.field_authors

    def supplier_changed(field_id: str) -> bool:
        return authors.get(field_id, view.account_id) != view.account_id

    shadow: dict[str, str] = {}
    scrubber = Scrubber(view.mapping.outbound.redaction.patterns)
    for field_id, (_api, wanted) in outbound_values(view, scrubber).items():
        shadow[field_id] = wanted if supplier_changed(field_id) else norm(issue.fields.get(field_id, ""))
    for shared in view.mapping.shared:
        ours = to_jira(shared, view.incident.get(shared.servicenow), scrubber)
        theirs = norm(issue.fields.get(shared.jira, ""))
        shadow[shadows.shared(shared.jira)] = ours if supplier_changed(shared.jira) else theirs
    moved = issue.status_change
    state = view.incident.get("state")
    if state and moved is not None and moved.author_id != view.account_id:
        shadow[STATE_DONE] = shadow[STATE_PENDING] = dated(state, view.incident)
    return shadow
