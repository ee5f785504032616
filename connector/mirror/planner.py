"""Mirroring decisions for one incident x supplier. Pure: a view of both sides in, a :class:`Plan` out.

The rules, in the order they are applied:

* **create** - routed and not linked yet: one issue, stamped, with the rendered fields;
* **ServiceNow-owned Jira fields** - written when *our* rendered value changed since the last sync
  (the shadow); a supplier's edit of such a field is a conflict, noted and never fought over;
  each value is noted as pending before it is written (``@pending:<field>``), so a write whose
  answer was lost but which landed is known as ours, not taken for a supplier's edit;
* **status out** - a changed incident state maps to a supplier status, reached by a workflow path
  that never passes through a terminal status; it waits while a supplier's move is taken in, and
  yields to one made after a move of ours whose answer was lost (``@pending:state``);
* **comments out** - public comments (work notes only if the mapping opts in), redacted, once each;
* every text that leaves is scrubbed (:mod:`connector.mirror.redaction`: clipped, sanitised, redacted);
  the connector's own text (links, stamp lines, ServiceNow's identifiers) is added after, so no
  pattern rewrites it;
* **supplier-owned incident fields** and **status in** - written when the supplier's value changed;
  a state change only for allow-listed statuses, with the mandatory resolution fields, in the
  same write as the move's work note (so the note's marker tells whether a lost write landed);
* **comments in** - the supplier's comments as work notes (or comments), attributed, once each;
* **shared fields** (:mod:`connector.mirror.shared`) - last writer wins, conflicts reported;
* **problem management** (:mod:`connector.mirror.problem`) - problem links, root cause, RCA problems.

Nothing is planned that the shadows or the comment ledger say was already done: that is both
the no-op guard and the echo guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from connector.config.supplier_file import Workflow
from connector.core import shadows
from connector.core.markers import marker, stamp_line
from connector.core.models import StatusChange
from connector.core.plan import (
    Blocked,
    Change,
    CommentOnIssue,
    CreateIssue,
    Hop,
    MoveIssue,
    NoteOnIncident,
    Plan,
    RecordShadow,
    RemoteLinkOnIssue,
    UpdateIncident,
    UpdateIssue,
)
from connector.core.templates import placeholders, render
from connector.core.times import format_servicenow_time
from connector.core.vocabulary import FINAL_STATES, MAJOR_INCIDENT_STATES
from connector.mirror.problem import plan_problem
from connector.mirror.redaction import Scrubber, sanitize
from connector.mirror.shared import initial_values, plan_shared
from connector.mirror.view import (
    LABELS_OURS,
    REMOTE_LINK,
    STATE_DONE,
    STATE_PENDING,
    STATUS_CHANGE,
    SUMMARY_LIMIT,
    SUPPLIER_STATUS,
    TEXT_LIMIT,
    EntityView,
    clip,
    dated,
    jira_time,
    jira_variables,
    journal_safe,
    norm,
    ours_in_servicenow,
    same,
    same_state,
)

DEFAULT_RESOLUTION = "Done"
_RECORD_IDS = ("number", "sys_id")


def plan(view: EntityView) -> Plan:
    """The changes that bring this incident's mirror at this supplier up to date."""
    entity = f"{view.incident.sys_id}:{view.supplier}"
    scrubber = Scrubber(view.mapping.outbound.redaction.patterns)
    if view.link is None or view.link.state == "creating":
        if view.link is None and not view.routed:
            return Plan(entity, notes=(f"not routed to {view.supplier}",))
        # The link back rides along: the issue's key is known once created, and the pass after
        # the create then reads the issue once, not twice.
        return Plan(entity, (_create(view, scrubber), *_remote_link(view)), alerts=tuple(scrubber.alerts))
    if view.issue is None:
        return Plan(entity, notes=(f"issue {view.link.jira_key} is gone or hidden",))
    changes: list[Change] = []
    conflicts: list[str] = []
    changes += _fields_out(view, conflicts, scrubber)
    shared, pending = plan_shared(view, conflicts, scrubber)
    if pending:
        # First of all: a crash or a lost answer after any later write must find them.
        changes.insert(0, RecordShadow("jira", pending, "shared values about to be copied"))
    changes += shared
    changes += _remote_link(view)
    changes += _status_out(view)
    changes += _comments_out(view, scrubber)
    changes += _link_back(view)
    changes += _fields_in(view, conflicts)
    changes += _status_in(view)
    changes += _comments_in(view)
    changes += plan_problem(view)
    changes = _coalesce(_one_issue_update(changes))
    return Plan(entity, tuple(changes), tuple(conflicts), alerts=tuple(scrubber.alerts))


# --- outbound -----------------------------------------------------------------------------------------


def outbound_values(view: EntityView, scrubber: Scrubber | None = None) -> dict[str, tuple[Any, str]]:
    """Jira field -> (API value, text as the adapter reads it back) for every ServiceNow-owned field."""
    mapping = view.mapping
    out = mapping.outbound
    scrubber = scrubber or Scrubber(out.redaction.patterns)
    incident_values, own = _outbound_variables(view)

    def text(template: str, limit: int, what: str) -> str:
        return fill(template, incident_values, own, limit, scrubber, what)

    values: dict[str, tuple[Any, str]] = {
        "summary": _same(text(out.summary, SUMMARY_LIMIT, "summary").replace("\n", " ")),
        "description": _same(text(out.description, TEXT_LIMIT, "description")),
    }
    priority = out.priority_map.get(view.incident.get("priority"))  # type: ignore[call-overload]
    if priority:
        values["priority"] = _same(priority)
    if out.components:
        values["components"] = (list(out.components), ", ".join(sorted(out.components)))
    for field_id, template in out.fields.items():
        values[field_id] = _same(text(template, TEXT_LIMIT, field_id))
    mim = out.mim
    if mim.target == "field" and mim.field:
        values[mim.field] = _same(view.incident.get("major_incident_state"))
    if mim.bridge_field:
        bridge = view.incident.get(mim.bridge_source)
        values[mim.bridge_field] = _same(scrubber.text(bridge, TEXT_LIMIT, mim.bridge_field).strip())
    if mim.next_update_field:
        raw = view.incident.get(mim.next_update_source)
        due = jira_time(raw)
        if due == raw:  # not a ServiceNow date-time: text like any other
            due = scrubber.text(raw, SUMMARY_LIMIT, mim.next_update_field)
        values[mim.next_update_field] = (due or None, due)
    return values


def our_labels(view: EntityView) -> list[str]:
    """The labels this connector owns on the issue: the mapping's plus the major-incident state label."""
    labels = list(view.mapping.outbound.labels)
    mim_state = view.incident.get("major_incident_state")
    if view.mapping.outbound.mim.target == "label" and mim_state:
        labels.append(f"{view.mapping.outbound.mim.label_prefix}{mim_state}")
    return sorted(set(labels))


def fill(
    template: str,
    incident_values: Mapping[str, str],
    own: Mapping[str, str],
    limit: int,
    scrubber: Scrubber,
    what: str,
) -> str:
    """``template`` rendered for a supplier, at most ``limit`` characters.

    Each incident value it names is scrubbed on its own, to the room the template's own text
    leaves it (so a long description does not push the link back to the incident out); the
    connector's own values (``own``: links, ServiceNow's identifiers) go in after, unredacted.
    """
    room = max(limit - len(render(template, own)), 1)
    names = [name for name in placeholders(template) if name not in own]
    scrubbed = {
        name: scrubber.text(incident_values.get(name, ""), room, f"{what} {{{name}}}") for name in names
    }
    return clip(sanitize(render(template, {**scrubbed, **own})).strip(), limit)


def _create(view: EntityView, scrubber: Scrubber) -> CreateIssue:
    values = outbound_values(view, scrubber)
    labels = our_labels(view)
    fields = {name: api for name, (api, _text) in values.items() if api is not None}
    shadow = {name: text for name, (_api, text) in values.items()}
    shared_fields, shared_shadow = initial_values(view, scrubber)
    fields.update(shared_fields)
    shadow.update(shared_shadow)
    if labels:
        fields["labels"] = labels
    shadow["labels"] = " ".join(labels)
    shadow[LABELS_OURS] = " ".join(labels)
    jira = view.mapping.jira
    reason = f"{view.incident.number} is routed to {view.mapping.display_name} and has no issue there yet"
    return CreateIssue(jira.project, jira.issue_type, fields, shadow, reason)


def _fields_out(view: EntityView, conflicts: list[str], scrubber: Scrubber) -> list[Change]:
    assert view.issue is not None
    write: dict[str, Any] = {}
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    remember: dict[str, str] = {}
    pending: dict[str, str] = {}
    for name, (api, wanted) in outbound_values(view, scrubber).items():
        current = norm(view.issue.fields.get(name, ""))
        shadow = view.jira_shadow.get(name)
        lost = view.jira_shadow.get(shadows.pending(name))
        if lost and same(current, lost) and (shadow is None or not same(shadow, lost)):
            # A write of ours whose answer was lost landed: it is the last value we synced, not
            # a supplier's edit (kept with the next pending note, should that answer be lost too).
            shadow = pending[name] = remember[name] = lost
        if shadow is not None and same(shadow, wanted):
            if not same(current, wanted) and view.jira_shadow.get(shadows.conflict(name)) != current:
                conflicts.append(
                    f"{view.issue.key} {name} was changed in Jira; ServiceNow owns it, left as is"
                )
                remember[shadows.conflict(name)] = current
            continue
        if same(current, wanted):
            remember[name] = wanted
            continue
        write[name], before[name], after[name] = api, current, wanted
        pending[shadows.pending(name)], after[shadows.pending(name)] = wanted, ""
    labels_change = _labels(view)
    if labels_change is not None:
        api_labels, text_labels, ours = labels_change
        write["labels"], before["labels"], after["labels"] = (
            api_labels,
            view.issue.fields.get("labels", ""),
            text_labels,
        )
        after[LABELS_OURS] = ours
    changes: list[Change] = []
    if write:
        names = ", ".join(sorted(k for k in after if not k.startswith("@")))
        if pending:
            changes.append(
                RecordShadow("jira", pending, "values about to be written, noted in case the answer is lost")
            )
        changes.append(
            UpdateIssue(write, before, after, f"ServiceNow changed {names} of {view.incident.number}")
        )
    if remember:
        changes.append(RecordShadow("jira", remember, "already equal in Jira, or a supplier edit noted"))
    return changes


def _labels(view: EntityView) -> tuple[list[str], str, str] | None:
    """New label list when ours changed: the supplier's own labels are kept."""
    assert view.issue is not None
    ours = our_labels(view)
    previous = set(view.jira_shadow.get(LABELS_OURS, "").split())
    mim = view.mapping.outbound.mim
    if mim.target == "label":
        # Every state label is ours, recorded or not: a label write whose answer was lost
        # leaves the shadow behind, and the next state change must still take the old one off.
        previous |= {f"{mim.label_prefix}{state}" for state in MAJOR_INCIDENT_STATES}
    if set(ours) == previous:
        return None
    current = set(view.issue.fields.get("labels", "").split())
    wanted = sorted((current - previous) | set(ours))
    if set(wanted) == current:
        return None
    return wanted, " ".join(wanted), " ".join(ours)


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


def _status_out(view: EntityView) -> list[Change]:
    assert view.issue is not None
    state = view.incident.get("state")
    # The state with the reopen it dates from: resolved, reopened and resolved again while this
    # link was not looked at, it is news all the same.
    token = dated(state, view.incident)
    done = view.jira_shadow.get(STATE_DONE)
    moving = view.jira_shadow.get(STATE_PENDING, done)
    # A move for another state whose answer was lost may have landed: the issue is not
    # known to show this state until it is looked at again.
    if not state or (same_state(done, token) and same_state(moving, token)):
        return []
    label = view.states.get(state, state)
    status_map = view.mapping.outbound.status_map
    target = status_map.get(label) or status_map.get(state)
    if _supplier_move(view) is not None:
        if same_state(moving, token):
            # We were moving the issue for this very state (the answer may have been lost) and
            # the supplier has moved it since: theirs is the later word.
            return [_mirrored(token, f"{view.issue.key} was moved by the supplier since")]
        if target is not None and target == view.issue.status:
            # The supplier's move put the issue where the state asks: the state is mirrored now,
            # so that a later move of theirs does not meet it as news and get undone.
            return [_mirrored(token, f"{view.issue.key} is already {target}, as incident state {label} asks")]
        return []  # the supplier's move is taken in first; the state is mirrored next cycle
    if target is None or target == view.issue.status:
        return [_mirrored(token, f"incident state {label} needs no supplier status change")]
    workflow = view.mapping.jira.workflow
    here = workflow.statuses.get(view.issue.status)
    if here is not None and here.terminal:
        # The supplier closed the issue for good; nothing may move it, and waiting cannot help.
        return [
            _mirrored(
                token,
                f"{view.issue.key} is {view.issue.status} (final) at {view.supplier}: incident state {label} not mirrored",
            )
        ]
    hops = find_path(workflow, view.issue.status, target)
    if hops is None:
        return [
            Blocked(
                f"{view.issue.key}: no transition path from '{view.issue.status}' to '{target}' avoids a terminal status"
            )
        ]
    reason = f"incident {view.incident.number} is {label}: move {view.issue.key} from {view.issue.status} to {target}"
    return [
        RecordShadow("jira", {STATE_PENDING: token}, f"moving {view.issue.key} for incident state {label}"),
        MoveIssue(tuple(hops), target, token, reason),
    ]


def _mirrored(state: str, reason: str) -> RecordShadow:
    """The incident state (:func:`dated`, or bare) counts as mirrored, with no move of ours outstanding."""
    return RecordShadow("jira", {STATE_DONE: state, STATE_PENDING: state}, reason)


def find_path(workflow: Workflow, start: str, target: str) -> list[Hop] | None:
    """Shortest transition path from ``start`` to ``target`` whose intermediate statuses are not terminal."""
    if start == target:
        return []
    paths: dict[str, list[Hop]] = {start: []}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for status in frontier:
            spec = workflow.statuses.get(status)
            if status != start and spec is not None and spec.terminal:
                continue
            for transition in workflow.transitions:
                if (transition.from_ and status not in transition.from_) or transition.to in paths:
                    continue
                fields = {"resolution": DEFAULT_RESOLUTION} if "resolution" in transition.requires else {}
                paths[transition.to] = [*paths[status], Hop(transition.name, transition.to, fields)]
                if transition.to == target:
                    return paths[target]
                following.append(transition.to)
        frontier = following
    return None


def _comments_out(view: EntityView, scrubber: Scrubber) -> list[Change]:
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


# --- inbound ------------------------------------------------------------------------------------------


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


def _status_in(view: EntityView) -> list[Change]:
    """A supplier's status move: a work note, and the incident state when the status is allow-listed.

    A move is recognised by its changelog entry when the read shows one (so a move back to the
    status we last saw still counts, and our own moves never come back), else by the status.
    """
    assert view.issue is not None
    issue = view.issue
    previous = view.snow_shadow.get(SUPPLIER_STATUS)
    seen = view.snow_shadow.get(STATUS_CHANGE)
    moved = _latest_move(view)
    shadow = {SUPPLIER_STATUS: issue.status} | ({STATUS_CHANGE: moved.change_id} if moved else {})
    if (moved is not None and moved.change_id == seen) or (moved is None and previous == issue.status):
        return []
    ours = moved is not None and moved.author_id == view.account_id
    if (previous is None and (moved is None or ours)) or (seen is None and previous == issue.status):
        # A move someone else made before our first read (say, of an issue whose creation
        # answer was lost) is news all the same; only the status we created it in is not.
        return [RecordShadow("servicenow", shadow, f"first sight of {issue.key}'s status")]
    if ours:
        # Our own move, whose answer we may never have seen (a dropped response, a crash): not news.
        return [RecordShadow("servicenow", shadow, f"our move of {issue.key}")]
    if moved is not None and moved.from_status:
        previous = moved.from_status
    inbound = view.mapping.inbound
    # The changelog entry names one move for good; `updated` would change with every comment.
    identity = moved.change_id if moved is not None else issue.updated.isoformat()
    key = f"status:{issue.key}:{identity}:{issue.status}"
    # A noted move's state change went in the same write as its note: if the state is gone
    # again, the desk changed it since (the write's answer was lost), and that stands.
    noted = inbound.status_work_note and key in view.mirrored_in
    fields = {} if noted else _state_in(view)
    moving = f"{issue.key} status {previous} -> {issue.status}"
    if fields:
        label = view.states.get(fields["state"], fields["state"])
        moving += f": set {view.incident.number} to {label}"
    changes: list[Change]
    if inbound.status_work_note and not noted:
        ref = marker("i", view.supplier, key)
        who = (
            f"{moved.author} ({view.mapping.display_name})"
            if moved is not None and moved.author
            else view.mapping.display_name
        )
        said = f"[{issue.key}] {who} moved the issue from {previous} to {issue.status}."
        text = journal_safe(said) + f"\n{stamp_line(ref)}"
        changes = [
            NoteOnIncident(key, "work_notes", text, ref, moving, fields),
            RecordShadow("servicenow", shadow, f"{issue.key} is now {issue.status}"),
        ]
    elif fields:
        changes = [UpdateIncident(fields, shadow, moving)]
    else:
        changes = [RecordShadow("servicenow", shadow, f"{issue.key} is now {issue.status}")]
    taken = _state_taken(view)
    if taken is not None:
        # The supplier's status is the source of this state: it counts as mirrored to the issue,
        # so the desk setting the state back (a reopen) moves the issue again. Recorded after
        # the write, and on its retry too (when the desk changed the state since, theirs is later).
        label = view.states.get(taken, taken)
        changes.append(
            _mirrored(dated(taken, view.incident), f"incident state {label} comes from {issue.key}'s status")
        )
    return changes


def _state_taken(view: EntityView) -> str | None:
    """The incident state the supplier's current status stands for (allow-listed), or ``None``.

    ``None`` too when the incident is closed or canceled: that is final, and a supplier status
    can only leave a note there.
    """
    assert view.issue is not None
    change = view.mapping.inbound.status_map.get(view.issue.status)
    target = _state_value(change.state, view.states) if change else None
    return None if view.incident.get("state") in FINAL_STATES else target


def _state_in(view: EntityView) -> dict[str, str]:
    """The incident fields the supplier's current status sets (allow-listed), or none."""
    assert view.issue is not None
    target = _state_taken(view)
    if target is None or view.incident.get("state") == target:
        return {}
    change = view.mapping.inbound.status_map[view.issue.status]
    fields = {"state": target}
    if change.close_code:
        fields["close_code"] = change.close_code
    if change.close_notes:
        fields["close_notes"] = render(change.close_notes, jira_variables(view))
    return fields


def _latest_move(view: EntityView) -> StatusChange | None:
    """The changelog entry that put the issue in its current status, when the read shows it."""
    assert view.issue is not None
    change = view.issue.status_change
    return change if change is not None and change.to_status == view.issue.status else None


def _supplier_move(view: EntityView) -> StatusChange | None:
    """The supplier's latest status move when we have not taken it in yet."""
    moved = _latest_move(view)
    if moved is None or moved.author_id == view.account_id:
        return None
    return None if moved.change_id == view.snow_shadow.get(STATUS_CHANGE) else moved


def _comments_in(view: EntityView) -> list[Change]:
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


def _outbound_variables(view: EntityView) -> tuple[dict[str, str], dict[str, str]]:
    """What outbound templates see: the incident's allowed values (user text), and the connector's own.

    The own values are the link back, the supplier's name, the major-incident state and the
    identifiers ServiceNow generates (``number``, ``sys_id``, when allowed out): no pattern may
    rewrite them (a phone pattern once mangled the ``sys_id`` in the link back).
    """
    allowed = set(view.mapping.outbound.redaction.allow_fields)
    fields = {
        name: value
        for name, value in view.incident.values().items()
        if name in allowed or name.split(".")[0] in allowed
    }
    own = {name: fields.pop(name) for name in _RECORD_IDS if name in fields}
    own |= {
        "url": view.incident_url,
        "mim_state": view.incident.get("major_incident_state"),
        "supplier": view.mapping.display_name,
    }
    return fields, own


def _state_value(state: str, states: Mapping[str, str]) -> str | None:
    if state in states:
        return state
    return next((value for value, label in states.items() if label == state), None)


def _same(value: str) -> tuple[str, str]:
    return value, value


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
