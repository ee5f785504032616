"""``mappings/rules.yaml``: ordered promotion rules, in ServiceNow's own MIM terms.

Rules are tried in order and the first match wins, unless it says ``continue: true``. A match
either *proposes* the incident as a major-incident candidate (``major_incident_state: proposed``)
or *promotes* it directly (``accepted``), in place or by creating a new parent incident.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from connector.config.conditions import Condition
from connector.config.types import ConfigModel, FieldPath, Slug, Template

PromotionMode = Literal["promote-in-place", "create-parent"]

DEFAULT_WORK_NOTE = (
    "mim-connector: rule '{rule.name}' matched ({rule.description}); action: {rule.action}.\n{matched}"
)


class RuleSettings(ConfigModel):
    """Defaults and guardrails for all rules."""

    dry_run: bool = False
    """Evaluate and log decisions, write nothing."""
    mode: PromotionMode = "promote-in-place"
    """As ServiceNow's ``major_incident_creation`` property: promote the incident or create a parent."""
    max_proposals_per_hour: int = Field(10, ge=1)
    """Global cap; when reached, the connector stops proposing and raises an alert."""
    material_fields: tuple[FieldPath, ...] = ("priority", "impact", "urgency", "cmdb_ci", "business_service")
    """A rejected or canceled incident is reconsidered only after one of these changed."""


class RuleAction(ConfigModel):
    """What a matching rule does."""

    action: Literal["propose", "promote"]
    mode: PromotionMode | None = None
    """Overrides ``settings.mode`` for this rule."""
    set: dict[FieldPath, Template] = Field(default_factory=dict)
    """Incident fields to set, e.g. the MIM team as ``assignment_group`` or a ``business_impact`` text."""
    work_note: Template = DEFAULT_WORK_NOTE
    """Work note written with the decision; ``{matched}`` lists the conditions and their values."""
    engage: tuple[Slug, ...] = ()
    """Suppliers to engage on top of those their routing selects."""


class Rule(ConfigModel):
    """One promotion rule."""

    name: Slug
    description: str = Field(min_length=1)
    enabled: bool = True
    when: Condition
    then: RuleAction
    continue_: bool = Field(False, alias="continue")
    """Keep evaluating later rules after this one matched."""
    dry_run: bool | None = None
    """Overrides ``settings.dry_run`` for this rule."""
    max_per_hour: int | None = Field(None, ge=1)
    """Per-rule cap on proposals and promotions."""
    reconsider_rejected: bool = False
    """Allow re-proposing a rejected or canceled incident once a material field changed."""


class RulesFile(ConfigModel):
    """The root of ``mappings/rules.yaml``."""

    version: Literal[1] = 1
    settings: RuleSettings = RuleSettings()
    rules: tuple[Rule, ...] = ()
