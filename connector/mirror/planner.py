"""Mirroring decisions for one incident x supplier. Pure: a view of both sides in, a :class:`Plan` out.

The rules, in the order they are applied:

* **create** (:mod:`connector.mirror.outbound`) - routed and not linked yet: one issue, stamped, with the rendered fields;
* **ServiceNow-owned Jira fields** (:mod:`connector.mirror.outbound`) - written when *our* rendered value changed since the last sync
  (the shadow); a supplier's edit of such a field is a conflict, noted and never fought over;
  each value is noted as pending before it is written (``@pending:<field>``), so a write whose
  answer was lost but which landed is known as ours, not taken for a supplier's edit;
* **status out** (:mod:`connector.mirror.statuses`) - a changed incident state maps to a supplier status, reached by a workflow path
  that never passes through a terminal status; it waits while a supplier's move is taken in, and
  yields to one made after a move of ours whose answer was lost (``@pending:state``);
* **comments out** (:mod:`connector.mirror.comments`) - public comments (work notes only if the mapping opts in), redacted, once each;
* every text that leaves is scrubbed (:mod:`connector.mirror.redaction`: clipped, sanitised, redacted);
  the connector's own text (links, stamp lines, ServiceNow's identifiers) is added after, so no
  pattern rewrites it;
* **supplier-owned incident fields** and **status in** (:mod:`connector.mirror.statuses`) - written when the supplier's value changed;
  a state change only for allow-listed statuses, with the mandatory resolution fields, in the
  same write as the move's work note (so the note's marker tells whether a lost write landed);
* **comments in** (:mod:`connector.mirror.comments`) - the supplier's comments as work notes (or comments), attributed, once each;
* **shared fields** (:mod:`connector.mirror.shared`) - last writer wins, conflicts reported;
* **problem management** (:mod:`connector.mirror.problem`) - problem links, root cause, RCA problems.

Nothing is planned that the shadows or the comment ledger say was already done: that is both
the no-op guard and the echo guard. This module composes them, in that order, and folds the
writes of one side into as few requests as it can (:func:`plan`).
"""

from __future__ import annotations

from dataclasses import replace

from connector.core import shadows
from connector.core.markers import marker, stamp_line
from connector.core.plan import (
    Change,
    NoteOnIncident,
    Plan,
    RecordShadow,
    RemoteLinkOnIssue,
    UpdateIncident,
    UpdateIssue,
)
from connector.core.templates import render
from connector.mirror.comments import plan_comments_in, plan_comments_out
from connector.mirror.outbound import plan_create, plan_fields_out
from connector.mirror.problem import plan_problem
from connector.mirror.redaction import Scrubber
from connector.mirror.shared import plan_shared
from connector.mirror.statuses import plan_status_in, plan_status_out
from connector.mirror.view import REMOTE_LINK, EntityView, jira_variables


def plan(view: EntityView) -> Plan:
    """The changes that bring this incident's mirror at this supplier up to date."""
    entity = f"{view.incident.sys_id}:{view.supplier}"
    scrubber = Scrubber(view.mapping.outbound.redaction.patterns)
    if view.link is None or view.link.state == "creating":
        if view.link is None and not view.routed:
            return Plan(entity, notes=(f"not routed to {view.supplier}",))
        # The link back rides along: the issue's key is known once created, and the pass after
        # the create then reads the issue once, not twice.
        return Plan(entity, (plan_create(view, scrubber), *_remote_link(view)), alerts=tuple(scrubber.alerts))
    if view.issue is None:
        return Plan(entity, notes=(f"issue {view.link.jira_key} is gone or hidden",))
    changes: list[Change] = []
    conflicts: list[str] = []
    changes += plan_fields_out(view, conflicts, scrubber)
    shared, pending = plan_shared(view, conflicts, scrubber)
    if pending:
        # First of all: a crash or a lost answer after any later write must find them.
        changes.insert(0, RecordShadow("jira", pending, "shared values about to be copied"))
    changes += shared
    changes += _remote_link(view)
    changes += plan_status_out(view)
    changes += plan_comments_out(view, scrubber)
    changes += _link_back(view)
    changes += _fields_in(view, conflicts)
    changes += plan_status_in(view)
    changes += plan_comments_in(view)
    changes += plan_problem(view)
    changes = _coalesce(_one_issue_update(changes))
    return Plan(entity, tuple(changes), tuple(conflicts), alerts=tuple(scrubber.alerts))


def _remote_link(view: EntityView) -> list[Change]:
    global_id = f"servicenow:incident:{view.incident.sys_id}"
    if view.jira_shadow.get(REMOTE_LINK) == global_id:
        return []
    title = f"ServiceNow {view.incident.number}"
    return [
        RemoteLinkOnIssue(
            global_id, view.incident_url, title, "link the issue back to its ServiceNow incident"
        )
    ]


def _link_back(view: EntityView) -> list[Change]:
    assert view.issue is not None and view.link is not None
    keys = ", ".join(sorted(set(view.sibling_keys) | {view.issue.key}))
    fields = {"correlation_display": keys} if view.incident.get("correlation_display") != keys else {}
    note_key = f"link:{view.issue.key}"
    if note_key not in view.mirrored_in:
        ref = marker("l", view.supplier, view.issue.key)
        text = f"Mirrored to {view.mapping.display_name} as {view.issue.key}: {view.issue.url}\n{stamp_line(ref)}"
        reason = f"tell the service desk where {view.issue.key} is"
        return [NoteOnIncident(note_key, "work_notes", text, ref, reason, fields)]
    if fields:
        return [UpdateIncident(fields, {}, f"record the supplier issues {keys} on {view.incident.number}")]
    return []


def _fields_in(view: EntityView, conflicts: list[str]) -> list[Change]:
    variables = jira_variables(view)
    write: dict[str, str] = {}
    remember: dict[str, str] = {}
    for field, template in view.mapping.inbound.fields.items():
        wanted = render(template, variables).strip()
        current = view.incident.get(field)
        shadow = view.snow_shadow.get(field)
        if shadow == wanted:
            if current != wanted and view.snow_shadow.get(shadows.conflict(field)) != current:
                conflicts.append(
                    f"{view.incident.number} {field} was changed in ServiceNow; {view.supplier} owns it"
                )
                remember[shadows.conflict(field)] = current
            continue
        if current == wanted:
            remember[field] = wanted
        else:
            write[field] = wanted
    changes: list[Change] = []
    if write:
        reason = f"{view.supplier} changed {', '.join(sorted(write))} in {variables['key']}"
        changes.append(UpdateIncident(write, dict(write), reason))
    if remember:
        changes.append(RecordShadow("servicenow", remember, "already equal in ServiceNow, or an edit noted"))
    return changes


# --- helpers ------------------------------------------------------------------------------------------


def _one_issue_update(changes: list[Change]) -> list[Change]:
    """Fold every issue field update into the first: one PUT instead of several."""
    updates = [c for c in changes if isinstance(c, UpdateIssue)]
    if len(updates) < 2:
        return changes
    merged = UpdateIssue(
        {k: v for u in updates for k, v in u.fields.items()},
        {k: v for u in updates for k, v in u.before.items()},
        {k: v for u in updates for k, v in u.after.items()},
        "; ".join(u.reason for u in updates),
    )
    return [
        merged if c is updates[0] else c for c in changes if c is updates[0] or not isinstance(c, UpdateIssue)
    ]


def _coalesce(changes: list[Change]) -> list[Change]:
    """Fold incident field updates into the first journal note: one PATCH instead of several."""
    updates = [c for c in changes if isinstance(c, UpdateIncident)]
    first_note = next((c for c in changes if isinstance(c, NoteOnIncident)), None)
    if not updates or first_note is None:
        return changes
    # The merged write goes where the earliest of them was: what a plan records after an
    # incident update (say, shared values now agreed) must not be recorded before it is written.
    at = next(i for i, change in enumerate(changes) if change is updates[0] or change is first_note)
    fields: dict[str, str] = {}
    shadow: dict[str, str] = {}
    for update in updates:
        fields.update(update.fields)
        shadow.update(update.shadow)
    merged = replace(
        first_note,
        fields={**first_note.fields, **fields},
        reason="; ".join([first_note.reason, *(u.reason for u in updates)]),
    )
    out: list[Change] = []
    for i, change in enumerate(changes):
        if i == at:
            out.append(merged)
            if shadow:
                out.append(RecordShadow("servicenow", shadow, "values written with the note above"))
        if not (isinstance(change, UpdateIncident) or change is first_note):
            out.append(change)
    return out
