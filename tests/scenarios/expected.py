"""The oracle's reading of the shipped mappings: what each side must show, given the other. Pure.

The checker uses these functions, never the connector's planner, to say what a supplier issue
must hold for a ServiceNow incident: the mapping files are the specification (templates,
redaction, priority/status maps, labels, routing conditions), and this module re-implements
their documented meaning independently (docs/mirroring.md):

* an optional segment ``[[ … ]]`` is left out, brackets and all, when a placeholder in it has no
  value, else only its brackets go;
* a template ``{name}`` takes the incident's value when ``name`` (or its first segment) is in
  ``redaction.allow_fields``, else nothing, every redaction pattern replacing its matches in that
  value literally; ``{url}``, ``{mim_state}``, ``{supplier}`` and the record's ``{number}`` and
  ``{sys_id}`` are the connector's own and go in as they are, like the template's own text;
* routing: the ``match`` condition (``field`` with ``equals``/``in``/``not_equals``/``not_in``/
  ``empty``/``contains``, and ``all``/``any``/``not``) and a trigger: ``assignment``, or
  ``major_incident`` once ``major_incident_state`` is ``accepted``; a child is never routed;
* statuses: ``outbound.status_map`` by incident state label, ``inbound.status_map`` by status.

Only the operators the shipped mappings use are implemented; anything else raises
:class:`Unsupported`, so a mapping change cannot silently weaken the oracle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from connector.config.conditions import AllCondition, AnyCondition, FieldCondition, NotCondition
from connector.config.supplier_file import SupplierMapping

STATE_LABELS = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
SUMMARY_LIMIT, TEXT_LIMIT = 255, 32_000
Record = Mapping[str, str]
"""An incident as the Table API returns it (stored values), plus dot-walked ``a.b`` values."""


class Unsupported(Exception):
    """The mapping uses a construct this oracle does not model."""


def condition_fields(mapping: SupplierMapping) -> set[str]:
    """Every field path the routing condition reads (to request them with the incident)."""
    found: set[str] = set()

    def walk(condition: Any) -> None:
        if isinstance(condition, FieldCondition):
            found.add(condition.field)
        elif isinstance(condition, AllCondition):
            for inner in condition.all:
                walk(inner)
        elif isinstance(condition, AnyCondition):
            for inner in condition.any:
                walk(inner)
        elif isinstance(condition, NotCondition):
            walk(condition.not_)

    walk(mapping.routing.match)
    return found


def matches(condition: Any, record: Record) -> bool:
    """Whether ``record`` satisfies a routing condition."""
    if isinstance(condition, AllCondition):
        return all(matches(inner, record) for inner in condition.all)
    if isinstance(condition, AnyCondition):
        return any(matches(inner, record) for inner in condition.any)
    if isinstance(condition, NotCondition):
        return not matches(condition.not_, record)
    if not isinstance(condition, FieldCondition):
        raise Unsupported(f"routing condition {type(condition).__name__}")
    if condition.held_for is not None:
        raise Unsupported("routing condition with for:")
    value = str(record.get(condition.field, "") or "")
    operand = condition.operand
    operator = condition.operator
    if operator == "equals":
        return value == str(operand)
    if operator == "not_equals":
        return value != str(operand)
    if operator == "in":
        return value in {str(v) for v in operand}
    if operator == "not_in":
        return value not in {str(v) for v in operand}
    if operator == "empty":
        return (value == "") == bool(operand)
    if operator == "contains":
        return str(operand) in value
    raise Unsupported(f"routing operator {operator}")


def routed(mapping: SupplierMapping, record: Record) -> bool:
    """Whether the incident must be mirrored to this supplier (its current values decide)."""
    if record.get("parent_incident"):
        return False
    if not matches(mapping.routing.match, record):
        return False
    return "assignment" in mapping.routing.triggers or record.get("major_incident_state") == "accepted"


def redact(mapping: SupplierMapping, text: str) -> str:
    """``text`` with every redaction pattern of the mapping applied (literal replacements)."""
    for pattern in mapping.outbound.redaction.patterns:
        text = re.sub(pattern.regex, lambda _m, r=pattern.replace: r, text)
    return text


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


def _fill(template: str, values: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        return values.get(match.group(1), "")

    def plain(part: str) -> str:
        # {{ and }} are literal braces in mapping templates.
        pieces = part.split("{{")
        return "{".join(_PLACEHOLDER.sub(one, piece).replace("}}", "}") for piece in pieces)

    # An optional segment [[ … ]] is left out, brackets and all, when a placeholder in it has no
    # value (missing, empty or blank); otherwise only its brackets go.
    out: list[str] = []
    for index, piece in enumerate(re.split(r"\[\[(.*?)\]\]", template, flags=re.DOTALL)):
        if index % 2 == 0 or all(
            values.get(name, "").strip() for name in _PLACEHOLDER.findall(piece.replace("{{", ""))
        ):
            out.append(plain(piece))
    return "".join(out)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 20] + " …(truncated)"


def norm(text: str | None) -> str:
    """Text as both sides are compared: line endings and surrounding blanks do not count."""
    return (text or "").replace("\r\n", "\n").strip()


def outbound_text(mapping: SupplierMapping, record: Record, instance_url: str) -> dict[str, str]:
    """The ServiceNow-owned Jira fields (as text) the issue must show for ``record``.

    Keys: ``summary``, ``description``, ``priority``, ``labels`` (sorted, space-separated), the
    mapping's ``outbound.fields`` and the MIM bridge field when configured.
    """
    out = mapping.outbound
    allowed = set(out.redaction.allow_fields)
    values = {
        name: str(value) if name in ("number", "sys_id") else redact(mapping, str(value))
        for name, value in record.items()
        if name in allowed or name.split(".")[0] in allowed or name == "number"
    }
    values |= {
        "url": f"{instance_url}/nav_to.do?uri=incident.do?sys_id={record['sys_id']}",
        "mim_state": record.get("major_incident_state", ""),
        "supplier": mapping.display_name,
    }

    def text(template: str, limit: int) -> str:
        return _clip(_fill(template, values).strip(), limit)

    expected = {
        "summary": text(out.summary, SUMMARY_LIMIT).replace("\n", " "),
        "description": text(out.description, TEXT_LIMIT),
        "priority": out.priority_map.get(record.get("priority", ""), ""),  # type: ignore[call-overload]
        "labels": " ".join(labels(mapping, record)),
    }
    for field_id, template in out.fields.items():
        expected[field_id] = text(template, TEXT_LIMIT)
    if out.mim.bridge_field:
        expected[out.mim.bridge_field] = redact(mapping, record.get(out.mim.bridge_source, "")).strip()
    return expected


def labels(mapping: SupplierMapping, record: Record) -> list[str]:
    """The labels the issue must carry: the mapping's own and ``<prefix><major_incident_state>``."""
    wanted = set(mapping.outbound.labels)
    state = record.get("major_incident_state", "")
    if mapping.outbound.mim.target == "label" and state:
        wanted.add(f"{mapping.outbound.mim.label_prefix}{state}")
    return sorted(wanted)


def status_out(mapping: SupplierMapping, state: str) -> str | None:
    """The supplier status an incident state moves the issue to, or ``None`` (left alone)."""
    label = STATE_LABELS.get(state, state)
    return mapping.outbound.status_map.get(label) or mapping.outbound.status_map.get(state)


def state_in(mapping: SupplierMapping, status: str) -> str | None:
    """The incident state a supplier status sets (allow-listed statuses only), or ``None``."""
    change = mapping.inbound.status_map.get(status)
    if change is None:
        return None
    by_label = {label: value for value, label in STATE_LABELS.items()}
    return by_label.get(change.state, change.state)


def initial_status(mapping: SupplierMapping) -> str:
    """The status a new issue starts in."""
    return mapping.jira.workflow.initial


def terminal(mapping: SupplierMapping, status: str) -> bool:
    """Whether nothing may leave ``status`` (e.g. Closed)."""
    spec = mapping.jira.workflow.statuses.get(status)
    return bool(spec and spec.terminal)


def supplier_transitions(mapping: SupplierMapping, status: str) -> list[tuple[str, str, bool]]:
    """``(name, to, needs_resolution)`` of the transitions a supplier engineer may take from ``status``.

    Moves into a terminal status are left out unless the inbound map allow-lists that status
    (Initech's ``Done`` is how they resolve; ACME's ``Closed`` is the service desk's call).
    """
    out = []
    for transition in mapping.jira.workflow.transitions:
        if transition.from_ and status not in transition.from_:
            continue
        if transition.to == status:
            continue
        if terminal(mapping, transition.to) and transition.to not in mapping.inbound.status_map:
            continue
        out.append((transition.name, transition.to, "resolution" in transition.requires))
    return out


def stamp_globals(incident_sys_id: str) -> str:
    """The remote link ``globalId`` the connector puts on every issue of an incident."""
    return f"servicenow:incident:{incident_sys_id}"


def required_fields(mappings: Iterable[SupplierMapping]) -> list[str]:
    """Incident columns (and dot-walks) the oracle needs for every check."""
    fields = {
        "sys_id",
        "number",
        "short_description",
        "description",
        "priority",
        "impact",
        "urgency",
        "state",
        "major_incident_state",
        "parent_incident",
        "problem_id",
        "problem_id.number",
        "correlation_display",
        "u_workaround",
        "u_bridge_url",
        "u_supplier_eta",
        "u_supplier_reference",
        "close_notes",
        "sys_updated_on",
    }
    for mapping in mappings:
        fields |= condition_fields(mapping)
        fields |= {shared.servicenow for shared in mapping.shared}
        fields |= set(mapping.inbound.fields)
        if mapping.outbound.mim.bridge_field:
            fields.add(mapping.outbound.mim.bridge_source)
    return sorted(fields)
