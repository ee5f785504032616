"""The condition evaluator, table-driven: every operator, combinator and time condition."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.rules.conditions import SimpleContext, condition_key, evaluate
from tests.factories import T0, condition, incident

INC = incident(priority="1", category="network", short_description="Payment API timeouts", assigned_to="")


@pytest.mark.parametrize(
    ("when", "matched"),
    [
        ({"field": "priority", "equals": 1}, True),
        ({"field": "priority", "not_equals": 1}, False),
        ({"field": "priority", "in": [1, 2]}, True),
        ({"field": "priority", "not_in": [3, 4, 5]}, True),
        ({"field": "priority", "lte": 2}, True),
        ({"field": "priority", "gt": 1}, False),
        ({"field": "category", "gte": 1}, False),
        ({"field": "short_description", "contains": "payment"}, True),
        ({"field": "short_description", "regex": "^Pay.*outs$"}, True),
        ({"field": "assigned_to", "empty": True}, True),
        ({"field": "category", "empty": True}, False),
        ({"field": "cmdb_ci.name", "empty": True}, True),
        ({"all": [{"field": "priority", "equals": 1}, {"field": "category", "equals": "network"}]}, True),
        ({"any": [{"field": "priority", "equals": 3}, {"field": "category", "equals": "network"}]}, True),
        ({"not": {"field": "category", "equals": "network"}}, False),
        ({"open_for": "30m"}, True),
        ({"open_for": "2h"}, False),
    ],
)
def test_operators_and_combinators(when: object, matched: bool) -> None:
    assert evaluate(condition(when), INC, SimpleContext(T0)).matched is matched


def test_every_leaf_reports_what_it_compared() -> None:
    outcome = evaluate(
        condition(
            {"all": [{"field": "priority", "in": [1, 2]}, {"field": "category", "equals": "database"}]}
        ),
        INC,
        SimpleContext(T0),
    )
    assert not outcome.matched
    assert [(c.path, c.description, c.actual, c.passed) for c in outcome.checks] == [
        ("when.all[0]", "priority in [1, 2]", "'1'", True),
        ("when.all[1]", "category equals database", "'network'", False),
    ]


def test_held_for_needs_the_condition_to_have_held_long_enough() -> None:
    when = condition({"field": "priority", "equals": 1, "for": "15m"})
    key = f"{INC.sys_id}:{condition_key(when)}"  # type: ignore[arg-type]
    assert not evaluate(when, INC, SimpleContext(T0)).matched
    assert not evaluate(when, INC, SimpleContext(T0, held={key: T0 - timedelta(minutes=5)})).matched
    assert evaluate(when, INC, SimpleContext(T0, held={key: T0 - timedelta(minutes=20)})).matched


def test_unassigned_for_and_cluster_use_the_context() -> None:
    unassigned = condition({"unassigned_for": "10m"})
    held = {f"{INC.sys_id}:unassigned": T0 - timedelta(minutes=12)}
    assert evaluate(unassigned, INC, SimpleContext(T0, held=held)).matched
    assigned = incident(assigned_to="6816f79c")
    assert not evaluate(unassigned, assigned, SimpleContext(T0, held=held)).matched
    cluster = condition({"cluster": {"by": "cmdb_ci", "at_least": 3, "within": "30m"}})
    on_ci = incident(cmdb_ci="ci1")
    assert evaluate(cluster, on_ci, SimpleContext(T0, clusters={"cmdb_ci=ci1": 3})).matched
    assert not evaluate(cluster, on_ci, SimpleContext(T0, clusters={"cmdb_ci=ci1": 2})).matched
    assert not evaluate(cluster, incident(), SimpleContext(T0)).matched, "no CI, no cluster"


def test_not_reports_its_inner_checks_inverted() -> None:
    outcome = evaluate(condition({"not": {"field": "priority", "equals": 1}}), INC, SimpleContext(T0))
    assert [(c.description, c.passed) for c in outcome.checks] == [("not (priority equals 1)", False)]
