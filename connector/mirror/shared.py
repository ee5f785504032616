"""Shared fields for one incident x supplier: both sides may edit them, the last writer wins. Pure.

For each ``shared`` pair the shadow remembers the value both sides last agreed on, in Jira's terms.
Only one side moved away from it: that side's value is copied to the other. Both moved (to
different values): the change made later by its own server's clock wins (``sys_updated_on`` of the
incident, ``updated`` of the issue), and the conflict is reported once. Outbound values are mapped
(``values``) and scrubbed (clipped, sanitised, redacted) like every other text that leaves ServiceNow.

Before a value is copied, the shadow also notes it as *pending* (``@pending:``, with its
direction): when the write's answer is lost and a person edits the field again before the next
cycle, the pending value tells which side moved after the copy, so no clock has to decide.
"""

from __future__ import annotations

from typing import Any

from connector.config.supplier_file import SharedField
from connector.core import shadows
from connector.core.plan import Change, RecordShadow, UpdateIncident, UpdateIssue
from connector.mirror.redaction import Scrubber
from connector.mirror.view import TEXT_LIMIT, EntityView, norm

OUT = "out"
"""Pending towards Jira (ServiceNow won)."""
IN = "in"
"""Pending towards ServiceNow (the supplier won)."""


def to_jira(shared: SharedField, value: str, scrubber: Scrubber) -> str:
    """A ServiceNow value as it is shown in Jira (mapped, then scrubbed)."""
    mapped = shared.values.get(value, value)
    return norm(scrubber.text(mapped, TEXT_LIMIT, f"shared {shared.servicenow}"))


def to_servicenow(shared: SharedField, value: str) -> str:
    """A Jira value as ServiceNow stores it (the value map read backwards)."""
    back = {jira: snow for snow, jira in shared.values.items()}
    return back.get(value, value)


def initial_values(
    view: EntityView, scrubber: Scrubber | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """For a new issue: the shared Jira fields to set, and their shadow (the agreed values)."""
    scrubber = scrubber or Scrubber(view.mapping.outbound.redaction.patterns)
    fields: dict[str, Any] = {}
    shadow: dict[str, str] = {}
    for shared in view.mapping.shared:
        value = to_jira(shared, view.incident.get(shared.servicenow), scrubber)
        if value:
            fields[shared.jira] = value
        shadow[shadows.shared(shared.jira)] = value
    return fields, shadow


def plan_shared(
    view: EntityView, conflicts: list[str], scrubber: Scrubber | None = None
) -> tuple[list[Change], dict[str, str]]:
    """The writes that bring every shared field to the last writer's value, and the pending notes.

    The pending notes (Jira-side shadow values) must be recorded before any write of the plan.
    """
    issue = view.issue
    assert issue is not None
    scrubber = scrubber or Scrubber(view.mapping.outbound.redaction.patterns)
    to_issue: dict[str, Any] = {}
    before: dict[str, str] = {}
    after: dict[str, str] = {}
    to_incident: dict[str, str] = {}
    agreed: dict[str, str] = {}
    pending: dict[str, str] = {}
    for shared in view.mapping.shared:
        key = shadows.shared(shared.jira)
        ours = to_jira(shared, view.incident.get(shared.servicenow), scrubber)
        theirs = norm(issue.fields.get(shared.jira, ""))
        last = view.jira_shadow.get(key)
        direction, _, value = view.jira_shadow.get(shadows.pending(key), "").partition(":")
        held = view.jira_shadow.get(shadows.held(key))
        settled = {shadows.pending(key): ""} if direction else {}
        if ours == theirs:
            if last != ours and (last is not None or ours):
                agreed[key] = ours
            agreed.update(settled)
            continue
        arrived = last is not None and (
            (direction == OUT and theirs == value) or (direction == IN and ours == value)
        )
        if arrived:
            last = value  # the copy arrived, though its answer did not: that is the agreement now
        winner = _winner(view, shared, (ours, theirs, last), (direction, value, held), conflicts)
        # Kept with the next pending copy: a second lost answer must not forget the first one.
        recorded = {key: value} if arrived else {}
        if winner == "servicenow":
            to_issue[shared.jira], before[shared.jira], after[shared.jira] = ours or None, theirs, ours
            after[key] = ours
            after[shadows.pending(key)] = ""
            pending |= recorded | {shadows.pending(key): f"{OUT}:{ours}", shadows.held(key): theirs}
        else:
            to_incident[shared.servicenow] = to_servicenow(shared, theirs)
            agreed[key] = theirs
            agreed[shadows.pending(key)] = ""
            pending |= recorded | {shadows.pending(key): f"{IN}:{theirs}", shadows.held(key): ours}
    changes: list[Change] = []
    if to_issue:
        names = ", ".join(sorted(to_issue))
        changes.append(UpdateIssue(to_issue, before, after, f"ServiceNow changed shared {names}"))
    if to_incident:
        names = ", ".join(sorted(to_incident))
        changes.append(
            UpdateIncident(to_incident, {}, f"{view.supplier} changed shared {names} in {issue.key}")
        )
    if agreed:
        # After the incident write (if any): recorded only once ServiceNow holds the value.
        changes.append(RecordShadow("jira", agreed, "shared values both sides now agree on"))
    return changes, pending


def _winner(
    view: EntityView,
    shared: SharedField,
    values: tuple[str, str, str | None],
    pending: tuple[str, str, str | None],
    conflicts: list[str],
) -> str:
    assert view.issue is not None
    ours, theirs, last = values
    direction, value, held = pending
    if last is None:
        return "supplier" if not ours else "servicenow"
    if theirs == last:
        return "servicenow"
    if ours == last:
        return "supplier"
    # A copy that did not arrive: the side that still holds what it held when we decided has
    # not changed since, so the copy is sent again; otherwise that side changed since, and wins.
    if direction == OUT and ours == value:
        return "servicenow" if theirs == held else "supplier"
    if direction == IN and theirs == value:
        return "supplier" if ours == held else "servicenow"
    incident_time = view.incident.sys_updated_on
    later = "supplier" if incident_time is None or view.issue.updated >= incident_time else "servicenow"
    conflicts.append(
        f"{view.incident.number} {shared.servicenow} / {view.issue.key} {shared.jira} changed on both sides; "
        f"the later change wins ({'Jira' if later == 'supplier' else 'ServiceNow'})"
    )
    return later
