"""What a plan is made of: the changes one incident x supplier needs, each with its reason.

Plans are values: the planner (pure) produces them, ``--dry-run`` prints them, the executor applies
them. Comments and journal entries carry a ``marker`` so an uncertain write can be recognised later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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

    def describe(self) -> list[str]:
        """One line per change: kind and reason (what ``sync --dry-run`` prints)."""
        lines = [f"{type(change).__name__}: {change.reason}" for change in self.changes]
        lines += [f"conflict: {text}" for text in self.conflicts]
        lines += [f"alert: {text}" for text in self.alerts]
        return lines or [f"nothing to do ({'; '.join(self.notes) or 'in sync'})"]
