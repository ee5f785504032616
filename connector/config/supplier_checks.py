"""Checks of one supplier mapping: workflow, status maps, redaction, templates and field ownership."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping

from connector.config.connector_file import ConnectorConfig
from connector.config.fieldcheck import (
    PlaceholderPolicy,
    condition_problems,
    field_problem,
    incident_placeholder,
    states_of,
    template_problems,
)
from connector.config.regexcheck import backtracking_problems
from connector.config.supplier_draft import PLACEHOLDER
from connector.config.supplier_file import SupplierMapping, Workflow
from connector.config.yamlsource import SourceDoc
from connector.core import vocabulary
from connector.core.problems import Loc, Problem, one_of
from connector.core.templates import placeholders

OUTBOUND_EXTRA_VARS = ("url", "mim_state", "supplier")
COMMENT_OUT_VARS = ("author", "created", "number")
JIRA_VARS = (
    "key",
    "url",
    "summary",
    "status",
    "resolution",
    "assignee",
    "reporter",
    "priority",
    "duedate",
    "supplier",
)
COMMENT_IN_VARS = ("key", "author", "supplier", "created")
_CUSTOM_FIELD = re.compile(r"^customfield_\d+$")
OWN_OUTBOUND_KEYS = {
    "summary": "summary",
    "description": "description",
    "labels": "labels",
    "components": "components",
    "priority": "priority_map",
}
INBOUND_PROTECTED = {
    "state": "use inbound.status_map to let the supplier change the state",
    "priority": "priority is owned by the service desk",
    "impact": "impact is owned by the service desk",
    "urgency": "urgency is owned by the service desk",
    "major_incident_state": "the major-incident state is owned by the service desk",
    "work_notes": "use inbound.comments for supplier comments",
    "comments": "use inbound.comments for supplier comments",
    "correlation_id": "correlation_id holds the connector's own identity stamp",
    "correlation_display": "correlation_display holds the connector's own identity stamp",
    "number": "number is assigned by ServiceNow",
}


def check_supplier(
    doc: SourceDoc, mapping: SupplierMapping, connector: ConnectorConfig | None
) -> list[Problem]:
    """Workflow consistency, status maps, redaction and ownership of one supplier mapping."""
    states = states_of(connector)
    problems = _workflow_problems(doc, mapping)
    problems += condition_problems(doc, mapping.routing.match, ("routing", "match"), states)
    problems += _outbound_problems(doc, mapping, states)
    problems += _inbound_problems(doc, mapping, states)
    problems += _ownership_problems(doc, mapping)
    problems += _shared_problems(doc, mapping)
    problems += _placeholder_problems(doc)
    problem = mapping.problem
    if problem.create_problem == "on_root_cause" and not (
        problem.root_cause_field or problem.root_cause_link
    ):
        problems.append(
            doc.problem(
                ("problem", "create_problem"),
                "on_root_cause needs problem.root_cause_field or problem.root_cause_link",
            )
        )
    return problems


def _placeholder_problems(doc: SourceDoc) -> list[Problem]:
    """A warning for every value ``supplier init`` left for the admin to decide (valid, but inert)."""
    problems = []
    for loc in sorted(doc.value_marks, key=lambda at: (doc.value_marks[at].line, doc.value_marks[at].col)):
        value = doc.get(loc)
        if isinstance(value, str) and value.startswith(PLACEHOLDER):
            consequence = (
                f"; until it is, {doc.get(('supplier',))} gets no incidents"
                if loc[:1] == ("routing",)
                else ""
            )
            problems.append(
                doc.problem(
                    loc, f"placeholder left by `supplier init`: replace it{consequence}", severity="warning"
                )
            )
    return problems


def _status_problem(
    doc: SourceDoc, loc: Loc, status: str, mapping: SupplierMapping, *, key: bool = False
) -> Problem | None:
    known = list(mapping.jira.workflow.statuses)
    if status in known:
        return None
    return doc.problem(loc, one_of(status, known, f"a status of {mapping.supplier}"), key=key)


def _state_value(state: str, states: Mapping[str, str]) -> str | None:
    if state in states:
        return state
    return next((value for value, label in states.items() if label == state), None)


def _state_problem(
    doc: SourceDoc, loc: Loc, state: str, states: Mapping[str, str], *, key: bool = False
) -> Problem | None:
    if _state_value(state, states) is not None:
        return None
    known = [f"{label} ({value})" for value, label in states.items()]
    return doc.problem(loc, one_of(state, known, "an incident state", hints=list(states.values())), key=key)


def _workflow_problems(doc: SourceDoc, mapping: SupplierMapping) -> list[Problem]:
    workflow = mapping.jira.workflow
    base: Loc = ("jira", "workflow")
    problems = []
    if problem := _status_problem(doc, (*base, "initial"), workflow.initial, mapping):
        problems.append(problem)
    for index, transition in enumerate(workflow.transitions):
        for position, status in enumerate(transition.from_):
            if problem := _status_problem(
                doc, (*base, "transitions", index, "from", position), status, mapping
            ):
                problems.append(problem)
        if problem := _status_problem(doc, (*base, "transitions", index, "to"), transition.to, mapping):
            problems.append(problem)
    return problems


def reachable(workflow: Workflow, start: str) -> set[str]:
    """Statuses reachable from ``start`` without passing *through* a terminal status."""
    seen = {start}
    queue = deque([start])
    while queue:
        status = queue.popleft()
        spec = workflow.statuses.get(status)
        if spec is None or (spec.terminal and status != start):
            continue
        for transition in workflow.transitions:
            if (not transition.from_ or status in transition.from_) and transition.to not in seen:
                seen.add(transition.to)
                queue.append(transition.to)
    return seen


def _outbound_problems(doc: SourceDoc, mapping: SupplierMapping, states: Mapping[str, str]) -> list[Problem]:
    out = mapping.outbound
    problems = []
    for index, field in enumerate(out.redaction.allow_fields):
        if field in vocabulary.INTERNAL_FIELDS:
            problems.append(
                doc.problem(
                    ("outbound", "redaction", "allow_fields", index),
                    f"{field} is internal and never leaves ServiceNow",
                )
            )
        elif problem := field_problem(doc, ("outbound", "redaction", "allow_fields", index), field):
            problems.append(problem)
    allowed = _outbound_placeholder(mapping)
    templates: list[tuple[Loc, str]] = [
        (("outbound", "summary"), out.summary),
        (("outbound", "description"), out.description),
    ]
    templates += [(("outbound", "fields", key), value) for key, value in out.fields.items()]
    for loc, template in templates:
        problems += template_problems(doc, loc, template, allowed)
    problems += template_problems(
        doc,
        ("outbound", "comments", "header"),
        out.comments.header,
        lambda name: (
            None if name in COMMENT_OUT_VARS else one_of(name, COMMENT_OUT_VARS, "a comment variable")
        ),
    )
    for field in out.fields:
        if field in OWN_OUTBOUND_KEYS:
            problems.append(
                doc.problem(
                    ("outbound", "fields", field),
                    f"use outbound.{OWN_OUTBOUND_KEYS[field]} for {field}",
                    key=True,
                )
            )
    reach = reachable(mapping.jira.workflow, mapping.jira.workflow.initial)
    for state, status in out.status_map.items():
        loc = ("outbound", "status_map", state)
        if problem := _state_problem(doc, loc, state, states, key=True):
            problems.append(problem)
        if problem := _status_problem(doc, loc, status, mapping):
            problems.append(problem)
        elif status not in reach:
            problems.append(
                doc.problem(
                    loc,
                    f"no transition path leads from '{mapping.jira.workflow.initial}' to "
                    f"'{status}' without passing a terminal status",
                )
            )
    if out.mim.target == "field" and out.mim.field is None:
        problems.append(doc.problem(("outbound", "mim", "target"), "target 'field' needs outbound.mim.field"))
    for shown, source in (("bridge_field", "bridge_source"), ("next_update_field", "next_update_source")):
        if getattr(out.mim, shown) is not None:
            problems += _leaving_field_problems(
                doc, mapping, ("outbound", "mim", source), getattr(out.mim, source)
            )
    names = [pattern.name for pattern in out.redaction.patterns]
    for index, name in enumerate(names):
        if names.index(name) != index:
            problems.append(
                doc.problem(("outbound", "redaction", "patterns", index, "name"), "duplicate pattern name")
            )
    for index, pattern in enumerate(out.redaction.patterns):
        problems += [
            doc.problem(("outbound", "redaction", "patterns", index, "regex"), message, severity=severity)
            for severity, message in backtracking_problems(pattern.regex)
        ]
    return problems


def _outbound_placeholder(mapping: SupplierMapping) -> PlaceholderPolicy:
    allow = set(mapping.outbound.redaction.allow_fields)
    exists = incident_placeholder(OUTBOUND_EXTRA_VARS)

    def check(name: str) -> str | None:
        if name in OUTBOUND_EXTRA_VARS:
            return None
        if name.split(".")[0] in vocabulary.INTERNAL_FIELDS:
            return f"{name} is internal and never leaves ServiceNow"
        if (message := exists(name)) is not None:
            return message
        if name not in allow and name.split(".")[0] not in allow:
            return f"'{name}' is not in outbound.redaction.allow_fields, so it may not leave ServiceNow"
        return None

    return check


def _jira_placeholder(extra: tuple[str, ...]) -> PlaceholderPolicy:
    def check(name: str) -> str | None:
        if name in extra or _CUSTOM_FIELD.match(name):
            return None
        return one_of(name, extra, "a Jira value (or customfield_N)")

    return check


def _inbound_problems(doc: SourceDoc, mapping: SupplierMapping, states: Mapping[str, str]) -> list[Problem]:
    inbound = mapping.inbound
    problems = template_problems(
        doc, ("inbound", "comments", "header"), inbound.comments.header, _jira_placeholder(COMMENT_IN_VARS)
    )
    for status, change in inbound.status_map.items():
        loc: Loc = ("inbound", "status_map", status)
        if problem := _status_problem(doc, loc, status, mapping, key=True):
            problems.append(problem)
        if problem := _state_problem(doc, (*loc, "state"), change.state, states):
            problems.append(problem)
        elif _state_value(change.state, states) in vocabulary.RESOLVED_OR_CLOSED_STATES:
            if change.close_code is None:
                problems.append(doc.problem(loc, "resolving an incident needs close_code (and close_notes)"))
            elif change.close_code not in vocabulary.CLOSE_CODES:
                problems.append(
                    doc.problem(
                        (*loc, "close_code"),
                        one_of(change.close_code, vocabulary.CLOSE_CODES, "a standard close code"),
                        severity="warning",
                    )
                )
            if change.close_notes is None:
                problems.append(doc.problem(loc, "resolving an incident needs close_notes"))
        if change.close_notes is not None:
            problems += template_problems(
                doc, (*loc, "close_notes"), change.close_notes, _jira_placeholder(JIRA_VARS)
            )
    for field, template in inbound.fields.items():
        loc = ("inbound", "fields", field)
        if field in INBOUND_PROTECTED or field.startswith("sys_"):
            problems.append(
                doc.problem(loc, INBOUND_PROTECTED.get(field, "system fields cannot be written"), key=True)
            )
        elif "." in field:
            problems.append(doc.problem(loc, "only the incident's own fields can be written", key=True))
        elif problem := field_problem(doc, loc, field):
            problems.append(problem)
        problems += template_problems(doc, loc, template, _jira_placeholder(JIRA_VARS))
    return problems


def _ownership_problems(doc: SourceDoc, mapping: SupplierMapping) -> list[Problem]:
    written = {key: ("outbound", "fields", key) for key in mapping.outbound.fields}
    mim = mapping.outbound.mim
    for attribute in ("field", "bridge_field", "next_update_field"):
        if (field := getattr(mim, attribute)) is not None:
            written.setdefault(field, ("outbound", "mim", attribute))
    read: list[tuple[Loc, str]] = []
    for field, template in mapping.inbound.fields.items():
        read += [(("inbound", "fields", field), name) for name in placeholders(template)]
    if mapping.problem.root_cause_field:
        read.append((("problem", "root_cause_field"), mapping.problem.root_cause_field))
    problems = []
    for loc, name in read:
        if name in written:
            line = doc.mark(written[name]).line
            problems.append(
                doc.problem(
                    loc, f"{name} is written by ServiceNow (line {line}), so the supplier cannot own it too"
                )
            )
    return problems


def _leaving_field_problems(doc: SourceDoc, mapping: SupplierMapping, loc: Loc, field: str) -> list[Problem]:
    """An incident field whose value is sent to the supplier as is: it must exist and be allowed out."""
    if problem := field_problem(doc, loc, field):
        return [problem]
    allow = mapping.outbound.redaction.allow_fields
    if field not in allow and field.split(".")[0] not in allow:
        return [
            doc.problem(
                loc, f"'{field}' is not in outbound.redaction.allow_fields, so it may not leave ServiceNow"
            )
        ]
    return []


def _shared_problems(doc: SourceDoc, mapping: SupplierMapping) -> list[Problem]:
    """Shared fields: allowed out, writable in, and owned by nobody else on either side."""
    out = mapping.outbound
    jira_written = {*out.fields, *(key for key in OWN_OUTBOUND_KEYS if key not in ("priority", "components"))}
    if out.priority_map:
        jira_written.add("priority")
    if out.components:
        jira_written.add("components")
    jira_written |= {f for f in (out.mim.field, out.mim.bridge_field, out.mim.next_update_field) if f}
    jira_read = {name for template in mapping.inbound.fields.values() for name in placeholders(template)}
    jira_read |= {f for f in (mapping.problem.root_cause_field,) if f}
    problems: list[Problem] = []
    seen_snow: set[str] = set()
    seen_jira: set[str] = set()
    for index, shared in enumerate(mapping.shared):
        loc: Loc = ("shared", index)
        snow_field = shared.servicenow
        if snow_field in INBOUND_PROTECTED or snow_field.startswith("sys_"):
            problems.append(
                doc.problem(
                    (*loc, "servicenow"), INBOUND_PROTECTED.get(snow_field, "system fields cannot be written")
                )
            )
        elif "." in snow_field:
            problems.append(doc.problem((*loc, "servicenow"), "only the incident's own fields can be shared"))
        else:
            problems += _leaving_field_problems(doc, mapping, (*loc, "servicenow"), snow_field)
        if snow_field in mapping.inbound.fields:
            problems.append(
                doc.problem((*loc, "servicenow"), f"{snow_field} is already written by inbound.fields")
            )
        if shared.jira in jira_written:
            problems.append(doc.problem((*loc, "jira"), f"{shared.jira} is already written by outbound"))
        if shared.jira in jira_read:
            problems.append(
                doc.problem((*loc, "jira"), f"{shared.jira} is already read by inbound or problem")
            )
        if snow_field in seen_snow or shared.jira in seen_jira:
            problems.append(doc.problem(loc, "a field may be shared only once"))
        seen_snow.add(snow_field)
        seen_jira.add(shared.jira)
    return problems
