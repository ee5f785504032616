"""A first ``mappings/suppliers/<name>.yaml``, drafted from what a supplier's Jira project shows.

Pure: :func:`workflow_of` turns what was read (statuses, the transitions each sampled status
offers) into the mapping's workflow; :func:`render` writes the commented YAML. What only the admin
can decide is left as placeholders starting with :data:`PLACEHOLDER` that are valid configuration
but inert: routing matches no incident until it is filled in, and ``check`` warns about each one
left. Optional maps (priorities, statuses both ways) stay empty, with suggestions in comments
drawn from the site's own values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import yaml

from connector.core.ports import JiraFieldInfo, JiraStatusInfo, WorkflowStep

PLACEHOLDER = "TODO:"
"""Strings starting with this were left by ``supplier init`` for the admin; ``check`` warns about them."""
SET_BY_CONNECTOR = frozenset({"project", "issuetype", "summary", "description", "labels", "priority"})
"""Create-screen fields the connector fills from the mapping's own sections."""
COMMENT_COLUMN = 38
_PLAIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.()/&'+-]*$")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.()/&'+-]*$")


@dataclass(frozen=True)
class DraftTransition:
    """A transition as the mapping declares it, with the fields its screen requires."""

    name: str
    from_: tuple[str, ...]
    """Empty for a global transition (available from every status)."""
    to: str
    requires: tuple[JiraFieldInfo, ...] = ()


@dataclass(frozen=True)
class DraftWorkflow:
    """The workflow as far as the sampled issues show it."""

    initial: str
    initial_from: str | None
    """The issue whose history told the initial status; ``None`` when it is a guess."""
    statuses: tuple[JiraStatusInfo, ...]
    transitions: tuple[DraftTransition, ...]
    terminal: frozenset[str]
    unseen: tuple[str, ...]
    """Statuses no issue was found in: the transitions leaving them are unknown."""


@dataclass(frozen=True)
class SupplierDraft:
    """Everything the draft says, read from the site (and the site entry, when not configured yet)."""

    supplier: str
    display_name: str
    url: str
    deployment: str
    project: str
    issue_type: str
    other_issue_types: tuple[str, ...]
    workflow: DraftWorkflow
    create_fields: tuple[JiraFieldInfo, ...] = ()
    incident_states: Mapping[str, str] = field(default_factory=dict)
    """ServiceNow state value -> label, for the suggested status maps."""
    site_entry: str | None = None
    """The ``suppliers:`` entry ``config/connector.yaml`` still needs, as YAML; ``None`` when present."""


RECOMMENDED_PATTERNS = """\
      - name: email
        # john@example.com, JOHN@EXAMPLE.COM, john%40example.com, john&#64;example.com,
        # john [at] example [dot] com, and addresses split by markup: john@<b>example</b>.com,
        # *john*@example.com. Linear: a match starts only where a run of address characters does.
        regex: |-
          (?ix)
          (?<![a-z0-9._%+-]) [a-z0-9._%+-]+
          (?: <[^<>\\n]{0,40}> | [*_~^] | \\{\\{ | \\}\\} | \\{color(?::[^{}\\n]{0,20})?\\} ){0,6}
          (?: @ | %40 | &\\#0*64; | &\\#x0*40; | &commat; | \\s?[\\[(]at[\\])]\\s? )
          (?: <[^<>\\n]{0,40}> | [*_~^] | \\{\\{ | \\}\\} | \\{color(?::[^{}\\n]{0,20})?\\} ){0,6}
          [a-z0-9-]{1,63}
          (?:
            (?: <[^<>\\n]{0,40}> | [*_~^] | \\{\\{ | \\}\\} | \\{color(?::[^{}\\n]{0,20})?\\} ){0,6}
            (?: \\. | %2e | &\\#0*46; | &period; | \\s?[\\[(]dot[\\])]\\s? )
            (?: <[^<>\\n]{0,40}> | [*_~^] | \\{\\{ | \\}\\} | \\{color(?::[^{}\\n]{0,20})?\\} ){0,6}
            [a-z0-9-]{1,63}
          ){1,8}
        replace: "[e-mail removed]"
      - name: card-number
        # 4111 1111 1111 1111, 4111-1111-1111-1111, 4111.1111.1111.1111, 3782 822463 10005 (Amex),
        # 13 to 19 digits in a row; not IP addresses or version numbers.
        regex: '(?<!\\d)(?:\\d{4}[ .-]?\\d{4}[ .-]?\\d{4}[ .-]?\\d{4}(?:[ .-]?\\d{3})?|\\d{4}[ .-]?\\d{6}[ .-]?\\d{4,5}|\\d{13,19})(?!\\d)'
        replace: "[card number removed]"
      - name: phone
        # +44 20 7946 0958, (020) 7946 0958, +1-555-123-4567; not ISO dates (2026-11-22 09:30), not
        # digits that start inside a longer word such as a sys_id.
        regex: '(?<![\\w+])(?!(?:19|20)\\d\\d-[01]\\d-[0-3]\\d)\\+?\\d[\\d ()-]{7,20}\\d(?!\\d)'
        replace: "[phone removed]"
"""
"""The redaction patterns a draft starts with, as YAML lines: those the shipped mappings use for
e-mail addresses, card numbers and phone numbers (linear in the text's length; see docs/redaction.md)."""


def workflow_of(
    statuses: Sequence[JiraStatusInfo],
    steps_by_status: Mapping[str, Sequence[WorkflowStep]],
    initial: str | None,
    initial_from: str | None,
) -> DraftWorkflow:
    """The mapping's workflow from the transitions issues in each status offer.

    ``steps_by_status`` holds the sampled statuses only. Transitions are identified by name and
    target, as the mapping names them; one Jira flags as global gets no ``from`` list. A sampled
    done status is terminal (path-finding never passes through it) unless a transition leads from
    it to another done status (Resolved -> Closed): what else leaves it reopens the work. Without a known ``initial`` status the
    first To Do one is assumed (``initial_from`` is then ``None``).
    """
    names = [status.name for status in statuses]
    found: dict[tuple[str, str], tuple[list[str], bool, dict[str, JiraFieldInfo]]] = {}
    for status in names:
        for step in steps_by_status.get(status, ()):
            sources, is_global, required = found.setdefault((step.name, step.to_status), ([], False, {}))
            if status not in sources:
                sources.append(status)
            required.update((f.field_id, f) for f in step.fields if f.required)
            if step.is_global and not is_global:
                found[(step.name, step.to_status)] = (sources, True, required)
    transitions = tuple(
        DraftTransition(name, () if is_global else tuple(sources), to, tuple(required.values()))
        for (name, to), (sources, is_global, required) in found.items()
        if to in names
    )
    category = {status.name: status.category for status in statuses}
    terminal = frozenset(
        name
        for name, sampled in steps_by_status.items()
        if category.get(name) == "done" and all(category.get(s.to_status) != "done" for s in sampled)
    )
    if initial not in names:
        initial, initial_from = next((s.name for s in statuses if s.category == "todo"), names[0]), None
    return DraftWorkflow(
        initial=str(initial),
        initial_from=initial_from,
        statuses=tuple(statuses),
        transitions=transitions,
        terminal=terminal,
        unseen=tuple(name for name in names if name not in steps_by_status),
    )


def render(draft: SupplierDraft) -> str:
    """The mapping file: commented like the shipped ones, valid as is, with TODOs for the admin."""
    lines = _header(draft)
    lines += [
        "version: 1",
        f"supplier: {draft.supplier}",
        _commented(f"display_name: {_q(draft.display_name)}", "the project's name in Jira; rename at will"),
        "",
        *_jira(draft),
        "",
        *_routing(draft),
        "",
        *_outbound(draft),
        "",
        *_inbound(draft),
    ]
    return "\n".join(lines) + "\n"


# --- sections -----------------------------------------------------------------------------------------


def _header(draft: SupplierDraft) -> list[str]:
    kind = "Jira Cloud" if draft.deployment == "cloud" else "Jira Data Center"
    lines = [
        "# yaml-language-server: $schema=../schema/supplier.schema.json",
        "#",
        f"# {draft.display_name}: project {draft.project} on {draft.url} ({kind}).",
        f"# Drafted by `mim-connector supplier init {draft.supplier}` from what the site shows: the workflow,",
        "# its statuses and transitions, and the fields its screens require. Every 'TODO' is yours to",
        f"# decide: until routing is filled in, {draft.supplier} gets no incidents, and `mim-connector check`",
        "# warns about each TODO left. Then run `mim-connector doctor` against the live site.",
    ]
    if draft.site_entry:
        lines += [
            "#",
            "# config/connector.yaml does not know this supplier yet; add this under `suppliers:`",
            *(f"#   {line}" if line else "#" for line in draft.site_entry.splitlines()),
        ]
    return lines


def _jira(draft: SupplierDraft) -> list[str]:
    workflow = draft.workflow
    others = ", ".join(draft.other_issue_types)
    lines = [
        "jira:",
        f"  project: {draft.project}",
        _commented(
            f"  issue_type: {_q(draft.issue_type)}",
            f"the project also has: {others}" if others else "the project's only issue type",
        ),
    ]
    lines += _required_on_create(draft)
    origin = (
        f"from the history of {workflow.initial_from}"
        if workflow.initial_from
        else "TODO check: no issue told, so the first To Do status is assumed"
    )
    lines += ["  workflow:", _commented(f"    initial: {_q(workflow.initial)}", origin), "    statuses:"]
    for status in workflow.statuses:
        spec = f"category: {status.category}"
        note = ""
        if status.name in workflow.terminal:
            spec += ", terminal: true"
            leaves = any(t.from_ and status.name in t.from_ for t in workflow.transitions)
            note = "never passed through: only reopening leaves it" if leaves else "no transition leaves it"
        lines.append(_commented(f"      {_key(status.name)}: {{{spec}}}", note))
    if workflow.transitions:
        lines.append("    transitions:")
    else:
        lines.append("    transitions: []")
    for transition in workflow.transitions:
        parts = [f"name: {_q(transition.name)}"]
        if transition.from_:
            parts.append(f"from: [{', '.join(_q(s) for s in transition.from_)}]")
        parts.append(f"to: {_q(transition.to)}")
        if transition.requires:
            parts.append(f"requires: [{', '.join(f.field_id for f in transition.requires)}]")
        notes = [f"{f.field_id}: {_values_note(f)}" for f in transition.requires if f.allowed_values]
        if not transition.from_:
            notes.insert(0, "global: from any status")
        lines.append(_commented(f"      - {{{', '.join(parts)}}}", "; ".join(notes)))
    if workflow.unseen:
        lines += [
            f"    # TODO: no {draft.issue_type} is in {_names(workflow.unseen)}, so the transitions leaving",
            f"    # {'it are' if len(workflow.unseen) == 1 else 'them are'} unknown: add them above (the supplier's "
            "Jira admin can tell),",
            "    # or move an issue there and run `mim-connector supplier init --force` again.",
        ]
    return lines


def _required_on_create(draft: SupplierDraft) -> list[str]:
    required = [f for f in draft.create_fields if f.required and not f.has_default]
    extra = [f for f in required if f.field_id not in SET_BY_CONNECTOR]
    if not extra:
        return ["  # The create screen requires nothing the connector does not already send."]
    lines = ["  # The create screen also requires (placeholders in outbound.fields):"]
    lines += [
        f"  #   {f.field_id} ({f.name})" + (f": {_values_note(f)}" if f.allowed_values else "") for f in extra
    ]
    return lines


def _routing(draft: SupplierDraft) -> list[str]:
    return [
        "routing:",
        "  triggers: [assignment, major_incident]",
        "  match:",
        f"    # TODO: which incidents go to {draft.supplier}: usually their assignment group, or the CI's vendor",
        "    # (any: [...] of several conditions; see the README's 'Supplier mappings').",
        "    field: assignment_group.name",
        f"    equals: {_q(f'{PLACEHOLDER} the assignment group whose incidents go to {draft.supplier}')}",
    ]


def _outbound(draft: SupplierDraft) -> list[str]:
    priorities = next((f.allowed_values for f in draft.create_fields if f.field_id == "priority"), ())
    lines = [
        "outbound:",
        '  summary: "[{number}] {short_description}"',
        "  description: |",
        "    Incident {number} at priority {priority}.",
        "",
        "    {description}",
        "",
        "    Service desk record: {url}",
        "  labels: [servicenow, mim-connector]",
        "  # TODO: ServiceNow priority (1-5) -> a priority of this site; unmapped ones are not sent.",
        *([f"  # Its priorities: {', '.join(priorities)}."] if priorities else []),
        "  priority_map: {}",
    ]
    if len(priorities) >= 5:
        pairs = ", ".join(f'"{n}": {_q(p)}' for n, p in zip("12345", priorities, strict=False))
        lines.append(f"  # e.g. priority_map: {{{pairs}}}")
    lines += _outbound_fields(draft)
    lines += [
        f"  # TODO: ServiceNow state -> a status of {draft.supplier}, reached by transitions from "
        f"{_q(draft.workflow.initial)}.",
        "  status_map: {}",
    ]
    lines += [f"  #   {_key(state)}: {_q(status)}" for state, status in _outbound_suggestions(draft)]
    lines += [
        "  comments:",
        "    public: true",
        _commented("    work_notes: false", "internal work notes never leave ServiceNow"),
        '    header: "{author} (service desk) wrote:"',
        "  redaction:",
        "    # Nothing else leaves ServiceNow: templates and shared fields are checked against this list.",
        "    allow_fields: [number, short_description, description, priority, impact, urgency, state]",
        "    patterns:",
        *RECOMMENDED_PATTERNS.splitlines(),
    ]
    return lines


def _outbound_fields(draft: SupplierDraft) -> list[str]:
    required = [
        f
        for f in draft.create_fields
        if f.required and not f.has_default and f.field_id not in SET_BY_CONNECTOR
    ]
    fields = [f for f in required if f.field_id != "components"]
    lines = []
    if any(f.field_id == "components" for f in required):
        component = next(f for f in required if f.field_id == "components")
        hint = f" ({_values_note(component)})" if component.allowed_values else ""
        text = f"{PLACEHOLDER} a component{hint}"
        lines.append(_commented(f"  components: [{_q(text)}]", "required on create"))
    if not fields:
        return [*lines, "  fields: {}"]
    lines.append("  fields:")
    for info in fields:
        hint = f" ({_values_note(info)})" if info.allowed_values else ""
        text = _q(f"{PLACEHOLDER} {info.name}{hint}".replace("{", "(").replace("}", ")"))
        lines.append(_commented(f"    {info.field_id}: {text}", "required on create"))
    return lines


def _inbound(draft: SupplierDraft) -> list[str]:
    lines = [
        "inbound:",
        "  comments:",
        "    target: work_notes",
        '    header: "[{key}] {author} ({supplier}):"',
        "  status_work_note: true",
        f"  # TODO: the statuses of {draft.supplier} that change the incident's state (an allow-list: none until",
        "  # you add one). Resolving needs close_code and close_notes.",
        "  status_map: {}",
    ]
    suggestion = _inbound_suggestion(draft)
    if suggestion is not None:
        status, state = suggestion
        lines += [
            f"  #   {_key(status)}:",
            f"  #     state: {_q(state)}",
            "  #     close_code: Solution provided",
            f'  #     close_notes: "Resolved by {draft.supplier} in {{key}}: {{resolution}}"',
        ]
    return lines


# --- suggestions ------------------------------------------------------------------------------------


def _outbound_suggestions(draft: SupplierDraft) -> list[tuple[str, str]]:
    """Commented examples: each ServiceNow state to the first status of the matching category."""
    workflow = draft.workflow
    by_category: dict[str, list[str]] = {}
    for status in workflow.statuses:
        by_category.setdefault(status.category, []).append(status.name)
    open_done = [s for s in by_category.get("done", []) if s not in workflow.terminal]
    final = [s for s in by_category.get("done", []) if s in workflow.terminal] or by_category.get("done", [])[
        -1:
    ]
    wanted = {
        "In Progress": by_category.get("in_progress", [])[:1],
        "Resolved": (open_done or final)[:1],
        "Closed": final[:1],
    }
    labels = set(draft.incident_states.values())
    return [(state, found[0]) for state, found in wanted.items() if found and state in labels]


def _inbound_suggestion(draft: SupplierDraft) -> tuple[str, str] | None:
    done = [s.name for s in draft.workflow.statuses if s.category == "done"]
    resolved = next((label for label in draft.incident_states.values() if label == "Resolved"), None)
    return (done[0], resolved) if done and resolved else None


# --- YAML text ----------------------------------------------------------------------------------------


def _q(text: str) -> str:
    """``text`` as a YAML scalar that reads back as the same string, in block and flow context."""
    if _PLAIN.match(text) and text == text.strip() and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _key(text: str) -> str:
    """``text`` as a mapping key (quoted when YAML would read it as anything but this string)."""
    return (
        text if _PLAIN_KEY.match(text) and yaml.safe_load(f"{text}: x") == {text: "x"} else json.dumps(text)
    )


def _commented(line: str, note: str) -> str:
    if not note:
        return line
    return (
        f"{line.ljust(COMMENT_COLUMN - 1)} # {note}"
        if len(line) < COMMENT_COLUMN - 1
        else f"{line}   # {note}"
    )


def _values_note(info: JiraFieldInfo, limit: int = 8) -> str:
    """The values Jira lists for a field, the first ``limit`` of them."""
    shown = ", ".join(info.allowed_values[:limit])
    more = f" and {len(info.allowed_values) - limit} more" if len(info.allowed_values) > limit else ""
    return f"one of {shown}{more}"


def _names(statuses: Sequence[str]) -> str:
    quoted = [f"'{name}'" for name in statuses]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
