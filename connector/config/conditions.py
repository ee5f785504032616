"""The condition language shared by promotion rules and supplier routing.

A condition is one mapping, recognised by its key::

    {field: priority, equals: 1}                      one field, one operator (optionally held ``for: 15m``)
    {all: [...]}  {any: [...]}  {not: {...}}          combinators
    {open_for: 15m}  {unassigned_for: 10m}            time since opened / without an assignee
    {cluster: {by: cmdb_ci, at_least: 3, within: 30m}}  several incidents sharing a value

Field operators: equals, not_equals, in, not_in, gt, gte, lt, lte, contains, regex, empty.
This module only defines and validates the shape; evaluation lives in ``connector.rules.book``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Discriminator, Field, Tag, model_validator
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from connector.config.types import ConfigModel, Duration, FieldPath, Regex, SnowValue
from connector.core.problems import did_you_mean

FIELD_OPERATORS = (
    "equals",
    "not_equals",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "regex",
    "empty",
)
NUMERIC_OPERATORS = ("gt", "gte", "lt", "lte")
CONDITION_KEYS = ("field", "all", "any", "not", "open_for", "unassigned_for", "cluster")


class FieldCondition(ConfigModel):
    """One incident field (or dot-walked reference) compared by exactly one operator."""

    kind: ClassVar[str] = "field"
    field: FieldPath
    """Incident column or dot-walked path, e.g. ``priority`` or ``cmdb_ci.business_criticality``."""
    equals: SnowValue | None = None
    not_equals: SnowValue | None = None
    in_: tuple[SnowValue, ...] | None = Field(None, alias="in")
    not_in: tuple[SnowValue, ...] | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    contains: str | None = None
    regex: Regex | None = None
    empty: bool | None = None
    held_for: Duration | None = Field(None, alias="for")
    """The condition must have held without a break for at least this long."""

    @model_validator(mode="after")
    def _one_operator(self) -> FieldCondition:
        given = self.operators()
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise PydanticCustomError(
                "operator_count",
                "a field condition needs exactly one operator of: {known} (found: {found})",
                {"known": ", ".join(FIELD_OPERATORS), "found": found},
            )
        return self

    def operators(self) -> list[str]:
        """The operators given, by their YAML names."""
        return [op for op in FIELD_OPERATORS if getattr(self, "in_" if op == "in" else op) is not None]

    @property
    def operator(self) -> str:
        """The one operator of this condition."""
        return self.operators()[0]

    @property
    def operand(self) -> Any:
        """The value the field is compared with."""
        return getattr(self, "in_" if self.operator == "in" else self.operator)


class AllCondition(ConfigModel):
    """True when every listed condition is true."""

    kind: ClassVar[str] = "all"
    all: tuple[Condition, ...] = Field(min_length=1)


class AnyCondition(ConfigModel):
    """True when at least one listed condition is true."""

    kind: ClassVar[str] = "any"
    any: tuple[Condition, ...] = Field(min_length=1)


class NotCondition(ConfigModel):
    """True when the inner condition is false."""

    kind: ClassVar[str] = "not"
    not_: Condition = Field(alias="not")


class OpenForCondition(ConfigModel):
    """True when the incident was opened at least this long ago."""

    kind: ClassVar[str] = "open_for"
    open_for: Duration


class UnassignedForCondition(ConfigModel):
    """True when the incident has had no assignee for at least this long."""

    kind: ClassVar[str] = "unassigned_for"
    unassigned_for: Duration


class ClusterSpec(ConfigModel):
    """Several incidents sharing one field value within a time window."""

    by: FieldPath
    """The shared field, e.g. ``cmdb_ci`` or ``business_service``."""
    at_least: int = Field(ge=2)
    """How many incidents (this one included) must share the value."""
    within: Duration
    """How recently they must have been opened."""
    where: Condition | None = None
    """Only incidents matching this condition count towards the cluster."""


class ClusterCondition(ConfigModel):
    """True when this incident belongs to a cluster; the others become its children."""

    kind: ClassVar[str] = "cluster"
    cluster: ClusterSpec


class _NotACondition(ConfigModel):
    """Stand-in chosen by the discriminator for input that is no condition; it always fails."""

    @model_validator(mode="before")
    @classmethod
    def _explain(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise PydanticCustomError(
                "condition_type", "expected a condition (a mapping), got {got}", {"got": type(data).__name__}
            )
        keys = [str(key) for key in data]
        hint = did_you_mean(keys[0], CONDITION_KEYS) if keys else ""
        raise PydanticCustomError(
            "condition_kind",
            "not a condition: expected one of the keys {known}{hint}",
            {"known": ", ".join(CONDITION_KEYS), "hint": hint},
        )


def _condition_kind(value: Any) -> str:
    if isinstance(value, ConfigModel):
        return getattr(value, "kind", "invalid")
    if isinstance(value, dict):
        for key in CONDITION_KEYS:
            if key in value:
                return key
    return "invalid"


Condition = Annotated[
    Annotated[FieldCondition, Tag("field")]
    | Annotated[AllCondition, Tag("all")]
    | Annotated[AnyCondition, Tag("any")]
    | Annotated[NotCondition, Tag("not")]
    | Annotated[OpenForCondition, Tag("open_for")]
    | Annotated[UnassignedForCondition, Tag("unassigned_for")]
    | Annotated[ClusterCondition, Tag("cluster")]
    | SkipJsonSchema[Annotated[_NotACondition, Tag("invalid")]],
    Discriminator(_condition_kind),
]

for _model in (AllCondition, AnyCondition, NotCondition, ClusterSpec):
    _model.model_rebuild()

ConditionKind = Literal["field", "all", "any", "not", "open_for", "unassigned_for", "cluster"]
