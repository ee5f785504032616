"""The small interfaces the engine talks to. Adapters implement them; nothing else does I/O.

Every method raises only :mod:`connector.core.errors` exceptions (never ``requests``, pysnow or
python-jira ones), after the adapter's own pacing and its one retry layer. Writes that may have
happened without us hearing back raise :class:`~connector.core.errors.UncertainOutcome`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from connector.core.models import (
    Incident,
    IssueStamp,
    JournalElement,
    JournalEntry,
    Problem,
    SupplierComment,
    SupplierIssue,
)
from connector.core.plan import Operation

T = TypeVar("T")


class ServiceNowPort(Protocol):
    """The ServiceNow instance."""

    @property
    def integration_user(self) -> str:
        """The ``user_name`` our writes carry as ``sys_created_by`` / ``sys_updated_by``."""
        ...

    def server_time(self) -> datetime | None:
        """The instance's clock as of the last answer (its ``Date`` header); ``None`` before any call."""
        ...

    def incidents_changed(self, since: datetime, fields: Sequence[str], page_size: int) -> Iterator[Incident]:
        """Incidents with ``sys_updated_on >= since``, ordered by (sys_updated_on, sys_id), keyset-paged.

        ``since`` is aware and taken to the second (ServiceNow's precision, floored); a naive one
        raises ``InvalidRequest``.

        ``fields`` are the columns (and dot-walked paths) to read; ``sys_id``, ``number``,
        ``sys_mod_count`` and ``sys_updated_on`` are always included. References come as sys_ids.
        """
        ...

    def incident(self, sys_id: str, fields: Sequence[str]) -> Incident | None:
        """One incident by sys_id, or ``None`` when it does not exist (or is not readable)."""
        ...

    def incident_where(self, field: str, value: str, fields: Sequence[str]) -> Incident | None:
        """The first incident whose ``field`` equals ``value`` (e.g. ``number``, ``correlation_id``)."""
        ...

    def create_incident(self, fields: Mapping[str, str], read: Sequence[str]) -> Incident:
        """Create an incident (one POST); a lost answer raises ``UncertainOutcome``."""
        ...

    def journal_since(self, since: datetime, page_size: int) -> Iterator[JournalEntry]:
        """Incident work notes and comments with ``sys_created_on >= since``, in (created, sys_id) order.

        ``since`` as for :meth:`incidents_changed`.
        """
        ...

    def journal_of(self, incident_sys_id: str) -> list[JournalEntry]:
        """Every work note and comment of one incident, oldest first."""
        ...

    def update_incident(self, sys_id: str, fields: Mapping[str, str]) -> int | None:
        """Change fields of an incident (one PATCH); ``work_notes`` / ``comments`` append journal entries.

        Returns the incident's ``sys_mod_count`` after the write, when the answer says.
        """
        ...

    def add_journal(self, sys_id: str, element: JournalElement, text: str) -> None:
        """Append a work note or an additional comment to an incident."""
        ...

    def problem_where(self, field: str, value: str) -> Problem | None:
        """The first problem whose ``field`` equals ``value`` (e.g. ``correlation_id``)."""
        ...

    def create_problem(self, fields: Mapping[str, str]) -> Problem:
        """Create a problem (one POST); a lost answer raises ``UncertainOutcome``."""
        ...

    def update_problem(self, sys_id: str, fields: Mapping[str, str]) -> None:
        """Change fields of a problem (one PATCH); ``work_notes`` appends a journal entry."""
        ...

    def problem_journal(self, sys_id: str) -> list[JournalEntry]:
        """Every work note and comment of one problem, oldest first."""
        ...


@dataclass(frozen=True)
class IssueRef:
    """Where a supplier issue is, and when it last changed (from search or create)."""

    issue_id: str
    key: str
    updated: datetime | None = None
    identity: IssueStamp | None = None
    """Our entity property, when the search asked for it and the issue carries it."""


@dataclass(frozen=True)
class Transition:
    """A transition available from an issue's current status."""

    transition_id: str
    name: str
    to_status: str


@dataclass(frozen=True)
class JiraAccount:
    """Who the connector is on a Jira site."""

    account_id: str
    """Cloud accountId, or the Data Center user name."""
    display_name: str
    time_zone: str


@dataclass(frozen=True)
class SiteDescription:
    """What a supplier site offers the connector (for ``doctor``)."""

    project_visible: bool
    issue_types: tuple[str, ...]
    statuses: tuple[str, ...]
    field_ids: frozenset[str]


@dataclass(frozen=True)
class JiraStatusInfo:
    """A status of a project's workflow, with its category (``todo``, ``in_progress`` or ``done``)."""

    name: str
    category: str


@dataclass(frozen=True)
class JiraFieldInfo:
    """A field of a create or transition screen: is it required, and which values does Jira list for it."""

    field_id: str
    name: str
    required: bool
    allowed_values: tuple[str, ...] = ()
    has_default: bool = False


@dataclass(frozen=True)
class JiraProjectInfo:
    """A project as its issue types show it."""

    key: str
    name: str
    issue_type_ids: Mapping[str, str]
    """Issue type name -> id, in the order Jira lists them (sub-task types left out)."""


@dataclass(frozen=True)
class WorkflowStep:
    """A transition an issue in some status can take, with its screen's fields (for ``supplier init``)."""

    transition_id: str
    name: str
    to_status: str
    is_global: bool
    """Jira marks it available from every status (``isGlobal``); Data Center does not say (``False``)."""
    fields: tuple[JiraFieldInfo, ...] = ()


class JiraPort(Protocol):
    """One supplier's Jira site."""

    @property
    def site(self) -> str:
        """The supplier's name."""
        ...

    @property
    def deployment(self) -> str:
        """``cloud`` or ``datacenter``."""
        ...

    def server_time(self) -> datetime | None:
        """The site's clock as of the last answer (``Date`` header); ``None`` before any call."""
        ...

    def myself(self) -> JiraAccount:
        """The integration account, with the profile time zone JQL dates are read in."""
        ...

    def issues_updated_since(self, project: str, since: datetime, page_size: int) -> Iterator[IssueRef]:
        """Issues of ``project`` with ``updated >= since`` (JQL, minute precision, in the account's zone).

        Each with its ``identity`` when the issue carries our stamp property.
        """
        ...

    def created_by_me_since(self, project: str, since: datetime) -> Iterator[IssueRef]:
        """Issues of ``project`` we reported since ``since``, newest first, each with its ``identity``.

        To reconcile a create whose answer was lost: pages are read as the caller iterates (one
        request each), so stopping at the issue looked for costs no further call. Search lags
        writes: an issue created moments ago may be missing.
        """
        ...

    def issue(self, key_or_id: str, fields: Sequence[str], *, comments: bool = True) -> SupplierIssue | None:
        """One issue read directly (never from search), with our stamp property and its comments.

        ``None`` when it does not exist or is hidden from us.
        """
        ...

    def create_issue(
        self, project: str, issue_type: str, fields: Mapping[str, Any], properties: Mapping[str, Any]
    ) -> IssueRef:
        """Create an issue with its entity ``properties`` set in the same request (one POST)."""
        ...

    def update_issue(self, key: str, fields: Mapping[str, Any]) -> None:
        """Edit fields (one PUT). Values: text, ``list[str]`` for labels/components, priority by name."""
        ...

    def transitions(self, key: str) -> list[Transition]:
        """Transitions available from the issue's current status."""
        ...

    def transition(self, key: str, transition_id: str, fields: Mapping[str, Any]) -> None:
        """Move the issue along one transition, with the fields its screen requires (e.g. resolution)."""
        ...

    def add_comment(self, key: str, body: str) -> SupplierComment:
        """Add a plain-text comment."""
        ...

    def upsert_remote_link(self, key: str, global_id: str, url: str, title: str) -> None:
        """Create or replace the remote link identified by ``global_id`` (idempotent)."""
        ...


@dataclass(frozen=True)
class Write:
    """One external write as its intent and its audit entry name it.

    ``stamp`` is what finds the write on the other side if its answer is lost (a marker in a
    journal entry or comment, an issue's stamp property, a ``correlation_id``); an idempotent
    write, which re-planning redoes, carries a random one.
    """

    entity: str
    """Whose write it is: ``<incident_sys_id>:<supplier>``, or ``<incident_sys_id>:rules``."""
    operation: Operation
    system: str
    """``servicenow`` or ``jira:<supplier>``."""
    target: str
    """The record written (``INC0010001``, ``ACME-12``)."""
    reason: str
    stamp: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    """What the intent remembers of the write (never secrets, never whole texts)."""
    destination: str = ""
    """Where the intent says the write goes (default ``<system>/<target>``); a create names its container."""

    @property
    def intent_target(self) -> str:
        """The intent's target: :attr:`destination`, else ``<system>/<target>``."""
        return self.destination or f"{self.system}/{self.target}"


@dataclass(frozen=True)
class Written:
    """What a write's answer settles: the intent's ``outcome``, the audit entry's ``before`` and ``after``."""

    outcome: Mapping[str, Any] | None = None
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    target: str = ""
    """The record the write made, when the write's own target was not known before (a create's key)."""


@dataclass(frozen=True)
class OpenWrite:
    """A write whose outcome is unknown (a crash before its answer, or the answer lost).

    Settled by looking for its ``stamp`` on the system written: found means done, provably
    absent means abandoned (re-planning may send it again); never repeated blindly.
    """

    intent_id: int
    entity: str
    operation: str
    stamp: str
    created_at: datetime


Settled = Literal["done", "abandoned"]


class WriteLedger(Protocol):
    """The one write protocol: intent before the write, its outcome and audit entry after, in one transaction."""

    def write(self, write: Write, send: Callable[[], T], written: Callable[[T], Written] | None = None) -> T:
        """Record the intent, call ``send``, record what ``written`` makes of its answer; return the answer.

        Raises what ``send`` raises (a :class:`~connector.core.errors.ConnectorError`), after
        recording the intent ``failed``, or ``uncertain`` for an
        :class:`~connector.core.errors.UncertainOutcome` (left open: see :meth:`open_writes`).
        """
        ...

    def open_writes(self, scope: str) -> list[OpenWrite]:
        """Writes of entities ``<incident_sys_id>:<scope>`` whose outcome is unknown, oldest first."""
        ...

    def settle(self, intent_id: int, state: Settled, outcome: Mapping[str, Any] | None = None) -> None:
        """Record what an open write turned out to be, once its stamp was looked for."""
        ...
