"""What a plan is made of: the changes one incident x supplier needs, each with its reason.

Plans are values: the planner (pure) produces them, ``--dry-run`` prints them (:meth:`Plan.preview`:
each change with its reason and the values it would write, old → new), the executor applies them. Comments and journal entries carry a ``marker`` so an uncertain write can be recognised later.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from connector.core.models import Incident, SupplierIssue


class Operation(StrEnum):
    """What an external write does, as its intent and its audit entry name it (stored as the value)."""

    CREATE_ISSUE = "create_issue"
    UPDATE_ISSUE = "update_issue"
    TRANSITION = "transition"
    REMOTE_LINK = "remote_link"
    ADD_COMMENT = "add_comment"
    ADOPT_ISSUE = "adopt_issue"
    RELEASE_LINK = "release_link"
    UPDATE_INCIDENT = "update_incident"
    ADD_JOURNAL = "add_journal"
    CREATE_PROBLEM = "create_problem"
    UPDATE_PROBLEM = "update_problem"
    CREATE_INCIDENT = "create_incident"
    """A major incident created by a promotion rule (``create-parent``)."""
    PROPOSE = "propose"
    PROMOTE = "promote"
    LINK_CHILD = "link_child"


@dataclass(frozen=True)
class CreateIssue:
    """Create the supplier issue, stamped with our identity in the same request."""

    project: str
    issue_type: str
    fields: Mapping[str, Any]
    shadow: Mapping[str, str]
    """What the fields look like as text once created (becomes the Jira-side shadow)."""
    reason: str


@dataclass(frozen=True)
class UpdateIssue:
    """Set ServiceNow-owned fields on the supplier issue."""

    fields: Mapping[str, Any]
    before: Mapping[str, str]
    after: Mapping[str, str]
    reason: str


@dataclass(frozen=True)
class Hop:
    """One transition of a path: its declared name, the status it leads to, the fields it requires."""

    name: str
    to: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MoveIssue:
    """Walk the supplier workflow along ``hops`` (never through a terminal status) to ``target``."""

    hops: tuple[Hop, ...]
    target: str
    state_shadow: str
    """The incident state this move answers (recorded once done)."""
    reason: str


@dataclass(frozen=True)
class Blocked:
    """Something the plan needs cannot be done (e.g. no workflow path); the entity waits in the DLQ."""

    reason: str


@dataclass(frozen=True)
class CommentOnIssue:
    """Mirror one ServiceNow journal entry as a Jira comment."""

    source_id: str
    body: str
    marker: str
    reason: str


@dataclass(frozen=True)
class RemoteLinkOnIssue:
    """Point the supplier issue back at a ServiceNow record (idempotent by ``global_id``)."""

    global_id: str
    url: str
    title: str
    reason: str
    shadow_key: str = "@remote_link"
    """Where the Jira-side shadow remembers this link (one key per kind of record linked)."""


@dataclass(frozen=True)
class UpdateIncident:
    """Set incident fields (supplier-owned ones, link-back fields, an allowed state change)."""

    fields: Mapping[str, str]
    shadow: Mapping[str, str]
    """Values to remember on the ServiceNow side once written (keys may be pseudo-fields)."""
    reason: str


@dataclass(frozen=True)
class NoteOnIncident:
    """Append one work note (or comment) to the incident for a supplier comment or event."""

    source_id: str
    element: str
    text: str
    marker: str
    reason: str
    fields: Mapping[str, str] = field(default_factory=dict)
    """Incident fields set in the same request (one PATCH instead of two)."""


@dataclass(frozen=True)
class CreateProblem:
    """Create the incident's problem record and link it to the incident (``problem_id``, a work note).

    A lost answer is settled by looking the problem up by ``stamp`` (its ``correlation_id``).
    """

    stamp: str
    fields: Mapping[str, str]
    note: str
    """The incident's work note; ``{problem}`` becomes the problem's number."""
    marker: str
    shadow: Mapping[str, str]
    """Values to remember on the ServiceNow side once done."""
    reason: str


@dataclass(frozen=True)
class UpdateProblem:
    """Write to the incident's problem record: fields (idempotent) and/or a marker-stamped work note."""

    problem_sys_id: str
    fields: Mapping[str, str]
    shadow: Mapping[str, str]
    reason: str
    note: str = ""
    marker: str = ""
    source_id: str = ""
    """Identifies the note in the comment ledger (so it is written once)."""


@dataclass(frozen=True)
class RecordShadow:
    """Nothing to write, but remember what was seen (a value already equal, a conflict noted)."""

    side: str
    values: Mapping[str, str]
    reason: str


Change = (
    Blocked
    | CreateIssue
    | UpdateIssue
    | MoveIssue
    | CommentOnIssue
    | RemoteLinkOnIssue
    | UpdateIncident
    | NoteOnIncident
    | CreateProblem
    | UpdateProblem
    | RecordShadow
)


@dataclass(frozen=True)
class Plan:
    """The changes for one entity, in the order they must be applied, and what was noticed."""

    entity: str
    changes: tuple[Change, ...] = ()
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    """Why nothing (more) is planned, for dry runs and logs."""
    alerts: tuple[str, ...] = field(default=())
    """What the operator must be told, e.g. a text withheld because its redaction ran out of time."""

    @property
    def writes(self) -> tuple[Change, ...]:
        """The changes that write to a remote system."""
        return tuple(change for change in self.changes if not isinstance(change, RecordShadow))

    def describe(self, incident: Incident | None = None, issue: SupplierIssue | None = None) -> list[str]:
        """What ``sync --dry-run`` prints for this plan: each change with its reason and values (see :meth:`preview`)."""
        return self.preview(incident, issue).lines()

    def preview(self, incident: Incident | None = None, issue: SupplierIssue | None = None) -> Preview:
        """Each change as a reviewer reads it: what, where, why, and the values it would write.

        ``incident`` and ``issue`` (as read when planning) supply the values fields have now (the
        *old* of old → new) and the issue's key and status (where a move starts).
        """
        return Preview(
            tuple(_preview(change, incident, issue) for change in self.changes),
            self.conflicts,
            self.notes,
            self.alerts,
        )


PREVIEW_LIMIT = 160
"""Characters of a value a dry run shows before clipping it (saying how much more there is)."""


@dataclass(frozen=True)
class ValuePreview:
    """One value a change writes: ``old`` is ``None`` when the change creates or appends it."""

    name: str
    new: str
    old: str | None = None


@dataclass(frozen=True)
class ChangePreview:
    """One change of a plan for a reviewer.

    ``symbol``: ``+`` creates or appends, ``~`` changes, ``!`` cannot be done, ``=`` writes nothing
    (remembers what was seen).
    """

    symbol: str
    action: str
    reason: str
    values: tuple[ValuePreview, ...] = ()

    def lines(self) -> list[str]:
        """``+ action``, ``# reason``, then ``name: "old" → "new"`` per value, texts clipped."""
        if self.symbol == "=":
            return [f"= {self.action}: {self.reason}"]
        lines = [f"{self.symbol} {self.action}", f"    # {self.reason}"]
        width = max((len(value.name) for value in self.values), default=0)
        for value in self.values:
            label = f"{value.name}:".ljust(width + 1)
            if value.old is None:
                lines.append(f"    {label} {_shown(value.new)}")
            else:
                lines.append(f"    {label} {_shown(value.old)} → {_shown(value.new)}")
        return lines


@dataclass(frozen=True)
class Preview:
    """A plan for a reviewer (``sync --dry-run``): its changes, conflicts and, when empty, why."""

    changes: tuple[ChangePreview, ...]
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    alerts: tuple[str, ...] = ()
    """What the operator must be told (a text withheld because its redaction did not finish)."""

    def lines(self) -> list[str]:
        """The plan's writes as text, one after the other (``nothing to do (why)`` when there is none).

        What a plan only remembers (``=``) writes nothing and is left to :meth:`as_json`.
        """
        lines = [line for change in self.changes if change.symbol != "=" for line in change.lines()]
        lines += [f"! conflict: {text}" for text in self.conflicts]
        lines += [f"! alert: {text}" for text in self.alerts]
        return lines or [f"nothing to do ({'; '.join(self.notes) or 'in sync'})"]

    def as_json(self) -> dict[str, Any]:
        """The plan as plain data (``sync --dry-run --json``); values are never clipped here."""
        return {
            "changes": [asdict(change) for change in self.changes],
            "conflicts": list(self.conflicts),
            "notes": list(self.notes),
            "alerts": list(self.alerts),
        }


def _preview(change: Change, incident: Incident | None, issue: SupplierIssue | None) -> ChangePreview:
    key = issue.key if issue is not None else "(the new issue)"
    number = incident.number if incident is not None else "the incident"

    def now(name: str) -> str:
        return incident.get(name) if incident is not None else ""

    if isinstance(change, CreateIssue):
        sent = [ValuePreview(k, v) for k, v in change.shadow.items() if k in change.fields]
        action = f"create issue in {change.project} ({change.issue_type})"
        return ChangePreview("+", action, change.reason, tuple(sent))
    if isinstance(change, UpdateIssue):
        values = [
            ValuePreview(k, v, change.before.get(k, "")) for k, v in change.after.items() if k[0] != "@"
        ]
        return ChangePreview("~", f"update issue {key}", change.reason, tuple(values))
    if isinstance(change, MoveIssue):
        start = issue.status if issue is not None else "?"
        names = ", ".join(hop.name for hop in change.hops)
        path = " → ".join([start, *(hop.to for hop in change.hops)])
        via = f" (transition{'s' if len(change.hops) > 1 else ''} {names})" if names else ""
        values = [ValuePreview(f"{hop.name}.{k}", v) for hop in change.hops for k, v in hop.fields.items()]
        return ChangePreview("~", f"move issue {key}: {path}{via}", change.reason, tuple(values))
    if isinstance(change, CommentOnIssue):
        return ChangePreview(
            "+", f"comment on issue {key}", change.reason, (ValuePreview("text", change.body),)
        )
    if isinstance(change, RemoteLinkOnIssue):
        link = (ValuePreview("title", change.title), ValuePreview("url", change.url))
        return ChangePreview("+", f"remote link on issue {key}", change.reason, link)
    if isinstance(change, UpdateIncident):
        values = [ValuePreview(k, v, now(k)) for k, v in change.fields.items()]
        return ChangePreview("~", f"update incident {number}", change.reason, tuple(values))
    if isinstance(change, NoteOnIncident):
        kind = "work note" if change.element == "work_notes" else "comment"
        values = [
            ValuePreview("text", change.text),
            *(ValuePreview(k, v, now(k)) for k, v in change.fields.items()),
        ]
        return ChangePreview("+", f"{kind} on incident {number}", change.reason, tuple(values))
    if isinstance(change, CreateProblem):
        values = [
            *(ValuePreview(k, v) for k, v in change.fields.items()),
            ValuePreview("work note", change.note),
        ]
        return ChangePreview("+", f"create problem for incident {number}", change.reason, tuple(values))
    if isinstance(change, UpdateProblem):
        problem = now("problem_id.number") or change.problem_sys_id
        values = [ValuePreview(k, v, now(f"problem_id.{k}")) for k, v in change.fields.items()]
        if change.note:
            values.append(ValuePreview("work note", change.note))
        return ChangePreview("~", f"update problem {problem}", change.reason, tuple(values))
    if isinstance(change, Blocked):
        return ChangePreview("!", "blocked", change.reason)
    return ChangePreview("=", "no write", change.reason)


def _shown(text: str) -> str:
    """``text`` quoted as JSON (a newline shows as a backslash and ``n``), clipped to :data:`PREVIEW_LIMIT` characters."""
    if len(text) <= PREVIEW_LIMIT:
        return json.dumps(text, ensure_ascii=False)
    return (
        f"{json.dumps(text[:PREVIEW_LIMIT], ensure_ascii=False)}… (+{len(text) - PREVIEW_LIMIT} characters)"
    )
