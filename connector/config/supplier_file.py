"""``mappings/suppliers/<name>.yaml``: which incidents go to a supplier and how they are mirrored.

*Outbound* is ServiceNow -> the supplier's Jira; *inbound* is the supplier's Jira -> ServiceNow.
Ownership follows direction: Jira fields written outbound belong to ServiceNow and are never read
back; ServiceNow fields written inbound belong to the supplier; ``shared`` fields belong to both,
the last writer winning. Work notes never leave ServiceNow
unless ``outbound.comments.work_notes`` says so, and every outbound text passes the redaction rules.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connector.config.conditions import Condition
from connector.config.types import (
    ConfigModel,
    FieldPath,
    JiraFieldId,
    ProjectKey,
    Regex,
    Slug,
    Template,
)

SnowPriority = Literal["1", "2", "3", "4", "5"]


class StatusSpec(ConfigModel):
    """One status of the supplier's workflow."""

    category: Literal["todo", "in_progress", "done"]
    terminal: bool = False
    """Path-finding never passes *through* a terminal status (it may end there)."""


class TransitionSpec(ConfigModel):
    """A workflow transition as the supplier's Jira names it."""

    name: str = Field(min_length=1)
    from_: tuple[str, ...] = Field((), alias="from")
    """Statuses it leaves from; empty means from any status (a global transition)."""
    to: str
    requires: tuple[JiraFieldId, ...] = ()
    """Fields the transition screen makes mandatory (e.g. ``resolution``)."""


class Workflow(ConfigModel):
    """The supplier's declared workflow, used for status mapping checks and path-finding."""

    initial: str
    statuses: dict[str, StatusSpec] = Field(min_length=1)
    transitions: tuple[TransitionSpec, ...] = ()


class JiraTarget(ConfigModel):
    """Where mirrored issues live in the supplier's Jira."""

    project: ProjectKey
    issue_type: str = Field(min_length=1)
    workflow: Workflow


class Routing(ConfigModel):
    """Which incidents this supplier gets, and when."""

    triggers: tuple[Literal["assignment", "major_incident"], ...] = Field(
        ("assignment", "major_incident"), min_length=1
    )
    """``assignment``: as soon as a matching incident exists; ``major_incident``: once it is accepted as major."""
    match: Condition


class OutboundComments(ConfigModel):
    """Which ServiceNow journal entries become Jira comments."""

    public: bool = True
    """Mirror ``comments`` (customer-visible additional comments)."""
    work_notes: bool = False
    """Mirror internal ``work_notes`` too. Off unless this supplier is explicitly trusted with them."""
    header: Template = "{author} (service desk) wrote:"


class MimMirror(ConfigModel):
    """How the incident's major-incident state, bridge and next update show on the supplier issue.

    The state goes to a label (``<label_prefix><state>``) or a field. The bridge (war-room) link and
    the time the next update is due are copied from incident fields into Jira fields when both are
    named; their incident fields must be in ``redaction.allow_fields`` like any other outbound value.
    """

    target: Literal["label", "field"] = "label"
    field: JiraFieldId | None = None
    """The Jira field receiving the MIM state when ``target: field``."""
    label_prefix: str = "mim-"
    bridge_field: JiraFieldId | None = None
    """Jira field showing the bridge / war-room link."""
    bridge_source: FieldPath = "u_bridge_url"
    """Incident field holding the bridge link."""
    next_update_field: JiraFieldId | None = None
    """Jira (date-time) field showing when the next update is due."""
    next_update_source: FieldPath = "u_next_update"
    """Incident field holding the next update's due time (ServiceNow date-time, UTC)."""


class RedactionPattern(ConfigModel):
    """Text matching ``regex`` is replaced in every outbound string."""

    name: Slug
    regex: Regex
    replace: str = "[redacted]"


class Redaction(ConfigModel):
    """What may leave ServiceNow for this supplier."""

    allow_fields: tuple[FieldPath, ...] = Field(min_length=1)
    """Incident fields outbound templates may use; anything else is an error at load time."""
    patterns: tuple[RedactionPattern, ...] = ()


class Outbound(ConfigModel):
    """ServiceNow -> Jira: the fields ServiceNow owns on the supplier issue."""

    summary: Template
    description: Template
    labels: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    priority_map: dict[SnowPriority, str] = Field(default_factory=dict)
    """ServiceNow priority (1-5) -> Jira priority name."""
    fields: dict[JiraFieldId, Template] = Field(default_factory=dict)
    """Further Jira fields, e.g. ``customfield_10050: "{number}"``."""
    status_map: dict[str, str] = Field(default_factory=dict)
    """ServiceNow state (label or value) -> Jira status, reached by transitions."""
    comments: OutboundComments = OutboundComments()
    mim: MimMirror = MimMirror()
    redaction: Redaction


class StateChange(ConfigModel):
    """A ServiceNow state the supplier may set, with the fields resolving requires."""

    state: str
    close_code: str | None = None
    close_notes: Template | None = None


class InboundComments(ConfigModel):
    """How supplier comments land in the incident."""

    target: Literal["work_notes", "comments"] = "work_notes"
    header: Template = "[{key}] {author} ({supplier}):"


class Inbound(ConfigModel):
    """Jira -> ServiceNow: what the supplier's work changes in the incident."""

    comments: InboundComments = InboundComments()
    status_work_note: bool = True
    """Write a work note on every supplier status change."""
    status_map: dict[str, StateChange] = Field(default_factory=dict)
    """Allow-list: only these Jira statuses change the incident state."""
    fields: dict[FieldPath, Template] = Field(default_factory=dict)
    """Supplier-owned incident fields, e.g. ``u_supplier_reference: "{key}"``."""


class SharedField(ConfigModel):
    """A field both sides may edit: the last writer wins, by each server's own clock.

    ``values`` maps ServiceNow values to Jira values (and back); unmapped values pass unchanged.
    """

    servicenow: FieldPath
    jira: JiraFieldId
    values: dict[str, str] = Field(default_factory=dict)


class ProblemLinks(ConfigModel):
    """Problem management: links to the problem record and root cause write-back."""

    link_problem: bool = True
    """Add a remote link to the incident's problem on the supplier issue, with a comment."""
    root_cause_field: JiraFieldId | None = None
    """Jira field where the supplier records the root cause."""
    root_cause_link: str | None = None
    """Or: a link description on the supplier issue (e.g. ``is caused by``) naming the cause issue."""
    root_cause_target: Literal["cause_notes", "work_notes"] = "cause_notes"
    """Where the root cause goes on the problem: its cause notes (when free) or a work note."""
    create_problem: Literal["never", "on_root_cause", "on_resolve"] = "never"
    """Create the incident's problem when the supplier gives a root cause, or when the major
    incident is resolved (for root-cause analysis); never when the incident has one already."""


class SupplierMapping(ConfigModel):
    """The root of ``mappings/suppliers/<name>.yaml``."""

    version: Literal[1] = 1
    supplier: Slug
    """Must equal the file name and a supplier in ``config/connector.yaml``."""
    display_name: str = Field(min_length=1)
    jira: JiraTarget
    routing: Routing
    outbound: Outbound
    inbound: Inbound = Inbound()
    shared: tuple[SharedField, ...] = ()
    """Fields both sides own (last writer wins); every other field has one owner, by direction."""
    problem: ProblemLinks = ProblemLinks()
