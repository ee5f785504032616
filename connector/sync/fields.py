"""Which incident columns the configuration reads, so each poll asks for those and no others. Pure."""

from __future__ import annotations

from collections.abc import Iterable

from connector.config import LoadedConfig
from connector.config.conditions import (
    ClusterCondition,
    Condition,
    FieldCondition,
    OpenForCondition,
    UnassignedForCondition,
)
from connector.config.fieldcheck import walk_conditions
from connector.config.rules_file import Rule, RulesFile
from connector.core.templates import placeholders

CORE_FIELDS = (
    "sys_id",
    "number",
    "sys_mod_count",
    "sys_updated_on",
    "sys_updated_by",
    "state",
    "reopen_count",
    "active",
    "priority",
    "impact",
    "urgency",
    "short_description",
    "description",
    "opened_at",
    "resolved_at",
    "closed_at",
    "assigned_to",
    "assignment_group",
    "major_incident_state",
    "parent_incident",
    "problem_id",
    "correlation_id",
    "correlation_display",
    "cmdb_ci",
    "business_service",
    "close_code",
)
"""Columns the engine itself reads, whatever the rules and mappings say."""
ELIGIBILITY_FIELDS = ("state", "active", "parent_incident", "major_incident_state")
"""Columns :func:`connector.rules.book.eligibility` reads before any rule is tried."""
EXTRA_VARIABLES = frozenset(
    {"url", "mim_state", "supplier", "rule.name", "rule.description", "rule.action", "matched"}
)


def incident_fields(loaded: LoadedConfig) -> list[str]:
    """Every column and dot-walked path to read, core ones first, each once."""
    wanted: list[str] = list(CORE_FIELDS)
    wanted += loaded.connector.servicenow.watch_fields
    wanted += loaded.rules.settings.material_fields
    for rule in loaded.rules.rules:
        wanted += _condition_fields(rule.when)
        wanted += rule.then.set
        for template in (*rule.then.set.values(), rule.then.work_note):
            wanted += _template_fields(template)
    for mapping in loaded.suppliers.values():
        wanted += _condition_fields(mapping.routing.match)
        out = mapping.outbound
        for template in (out.summary, out.description, *out.fields.values()):
            wanted += _template_fields(template)
        wanted += mapping.inbound.fields
        if out.mim.bridge_field:
            wanted.append(out.mim.bridge_source)
        if out.mim.next_update_field:
            wanted.append(out.mim.next_update_source)
        wanted += [shared.servicenow for shared in mapping.shared]
        if (
            mapping.problem.link_problem
            or mapping.problem.root_cause_field
            or mapping.problem.root_cause_link
        ):
            wanted += ["problem_id.number", "problem_id.cause_notes"]
    return list(dict.fromkeys(wanted))


def rule_fields(rules: RulesFile) -> list[str]:
    """Every field a decision of the enabled rules depends on, in rule order, each once.

    What :func:`fields_of_rule` names for each enabled rule, then the eligibility columns.
    """
    wanted = [name for rule in rules.rules if rule.enabled for name in fields_of_rule(rule)]
    return list(dict.fromkeys((*wanted, *ELIGIBILITY_FIELDS)))


def fields_of_rule(rule: Rule) -> list[str]:
    """The fields a rule's condition reads, each once.

    The fields conditions compare (dot-walks included), a cluster's ``by``, ``assigned_to`` and
    ``opened_at`` for ``unassigned_for``, ``opened_at`` for ``open_for``. Templates and ``set`` are
    left out: they shape what is written, not whether.
    """
    wanted: list[str] = []
    for _loc, node in walk_conditions(rule.when, ()):
        if isinstance(node, UnassignedForCondition):
            wanted += ["assigned_to", "opened_at"]
        elif isinstance(node, OpenForCondition):
            wanted.append("opened_at")
    wanted += _condition_fields(rule.when)
    return list(dict.fromkeys(wanted))


def _condition_fields(condition: Condition) -> Iterable[str]:
    for _loc, node in walk_conditions(condition, ()):
        if isinstance(node, FieldCondition):
            yield node.field
        elif isinstance(node, ClusterCondition):
            yield node.cluster.by


def _template_fields(template: str) -> Iterable[str]:
    return (name for name in placeholders(template) if name not in EXTRA_VARIABLES)
