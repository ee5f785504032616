"""What ServiceNow sends a supplier's Jira: the issue's payload and its ServiceNow-owned fields. Pure.

* :func:`outbound_values` - every ServiceNow-owned Jira field, rendered from the mapping's templates
  (summary, description, priority, components, custom fields, the major-incident fields), as the
  API value and as the text the adapter reads back; :func:`our_labels` - the labels the connector
  owns; :func:`fill` - one template rendered, its incident values scrubbed
  (:mod:`connector.mirror.redaction`), the connector's own values (links, ServiceNow's identifiers)
  put in after, so no pattern rewrites them;
* :func:`plan_create` - the issue to create for an incident routed and not linked yet, with the
  shadow of every value it is created with;
* :func:`plan_fields_out` - a write when *our* rendered value changed since the last sync (the
  shadow); a supplier's edit of such a field is a conflict, noted and never fought over; each
  value is noted as pending before it is written (``@pending:<field>``), so a write whose answer
  was lost but which landed is known as ours, not taken for a supplier's edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.core import shadows
from connector.core.plan import Change, CreateIssue, RecordShadow, UpdateIssue
from connector.core.templates import placeholders, render
from connector.core.vocabulary import MAJOR_INCIDENT_STATES
from connector.mirror.redaction import Scrubber, sanitize
from connector.mirror.shared import initial_values
from connector.mirror.view import (
    LABELS_OURS,
    SUMMARY_LIMIT,
    TEXT_LIMIT,
    EntityView,
    clip,
    jira_time,
    norm,
    same,
)

_RECORD_IDS = ("number", "sys_id")


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


def plan_create(view: EntityView, scrubber: Scrubber) -> CreateIssue:
    """The issue to create for an incident routed here and not linked yet, and its shadow."""
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


def plan_fields_out(view: EntityView, conflicts: list[str], scrubber: Scrubber) -> list[Change]:
    """Writes of the ServiceNow-owned Jira fields whose rendered value changed since the last sync."""
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


def _same(value: str) -> tuple[str, str]:
    return value, value
