"""Statuses both ways for one incident x supplier: incident state out, supplier status in. Pure.

* :func:`plan_status_out` - a changed incident state maps to a supplier status, reached by a
  workflow path (:func:`find_path`) that never passes through a terminal status; it waits while a
  supplier's move is taken in, and yields to one made after a move of ours whose answer was lost
  (``@pending:state``);
* :func:`plan_status_in` - a supplier's status move becomes a work note and, only for allow-listed
  statuses, an incident state with the mandatory resolution fields, in the same write as the
  move's note (so the note's marker tells whether a lost write landed).

What was mirrored is recorded in the shadows (``STATE_DONE``, ``STATE_PENDING``,
``SUPPLIER_STATUS``, ``STATUS_CHANGE``): nothing is planned that they say was already done.
"""

from __future__ import annotations

from collections.abc import Mapping

from connector.config.supplier_file import Workflow
from connector.core.markers import marker, stamp_line
from connector.core.models import StatusChange
from connector.core.plan import (
    Blocked,
    Change,
    Hop,
    MoveIssue,
    NoteOnIncident,
    RecordShadow,
    UpdateIncident,
)
from connector.core.templates import render
from connector.core.vocabulary import FINAL_STATES
from connector.mirror.view import (
    STATE_DONE,
    STATE_PENDING,
    STATUS_CHANGE,
    SUPPLIER_STATUS,
    EntityView,
    dated,
    jira_variables,
    journal_safe,
    same_state,
)

DEFAULT_RESOLUTION = "Done"


def plan_status_out(view: EntityView) -> list[Change]:
    """The move of the issue to the supplier status the incident's state maps to, if it needs one."""
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


def plan_status_in(view: EntityView) -> list[Change]:
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


def _state_value(state: str, states: Mapping[str, str]) -> str | None:
    if state in states:
        return state
    return next((value for value, label in states.items() if label == state), None)
