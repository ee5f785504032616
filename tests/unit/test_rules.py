"""The rule engine: order, continue, MIM eligibility, and the fast path agreeing with the explaining one."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest

from connector.config.rules_file import RulesFile
from connector.rules.book import RuleBook, eligibility
from connector.rules.conditions import SimpleContext
from tests.factories import T0, demo_config, incident


def book(*rules: dict[str, Any], **settings: Any) -> RuleBook:
    return RuleBook(RulesFile.model_validate({"settings": settings, "rules": list(rules)}))


def rule(name: str, when: Any, action: str = "propose", **extra: Any) -> dict[str, Any]:
    then = {"action": action, **extra.pop("then", {})}
    return {"name": name, "description": name, "when": when, "then": then, **extra}


P1 = {"field": "priority", "equals": 1}
NETWORK = {"field": "category", "equals": "network"}


def test_first_match_wins() -> None:
    rules = book(rule("a", P1), rule("b", P1, "promote"))
    decision = rules.decide(incident(priority="1"), SimpleContext(T0), eligibility(incident()))
    assert [m.rule.name for m in decision.matched] == ["a"]
    assert decision.action == "propose"


def test_continue_collects_later_matches_and_the_strongest_action() -> None:
    rules = book(
        rule("a", P1, **{"continue": True, "then": {"set": {"business_impact": "from a"}}}),
        rule(
            "b",
            NETWORK,
            "promote",
            then={"set": {"business_impact": "from b", "category": "network"}, "engage": ["acme"]},
        ),
        rule("c", P1),
    )
    subject = incident(priority="1", category="network")
    decision = rules.decide(subject, SimpleContext(T0), eligibility(subject))
    assert [m.rule.name for m in decision.matched] == ["a", "b"]
    assert decision.action == "promote"
    assert decision.fields == {"business_impact": "from a", "category": "network"}, (
        "earlier rules win a field"
    )
    assert decision.engage == ("acme",)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"parent_incident": "p1"}, "has a parent incident"),
        ({"active": "false"}, "is inactive"),
        ({"state": "6"}, "is resolved, closed or canceled"),
        ({"major_incident_state": "proposed"}, "is already proposed as a major incident"),
        ({"major_incident_state": "accepted"}, "is already accepted as a major incident"),
        ({"major_incident_state": "rejected"}, "was rejected and nothing material changed since"),
    ],
)
def test_mim_semantics_keep_ineligible_incidents_out(fields: dict[str, str], reason: str) -> None:
    subject = incident(priority="1", **fields)
    result = eligibility(subject)
    assert (result.eligible, result.reason) == (False, reason)
    assert book(rule("a", P1)).decide(subject, SimpleContext(T0), result).rule is None


def test_a_rejected_incident_is_reconsidered_only_by_rules_that_say_so() -> None:
    subject = incident(priority="1", major_incident_state="canceled")
    reconsider = eligibility(subject, material_changed=True)
    assert reconsider.eligible and reconsider.reconsider_only
    rules = book(rule("plain", P1), rule("again", P1, reconsider_rejected=True))
    assert rules.decide(subject, SimpleContext(T0), reconsider).rule.name == "again"  # type: ignore[union-attr]


def test_disabled_rules_are_skipped_and_explained_as_such() -> None:
    rules = book(rule("off", P1, enabled=False), rule("on", P1))
    subject = incident(priority="1")
    assert rules.decide(subject, SimpleContext(T0), eligibility(subject)).rule.name == "on"  # type: ignore[union-attr]
    first, second = rules.explain(subject, SimpleContext(T0), eligibility(subject))
    assert (first.outcome, first.note) == (None, "disabled")
    assert second.outcome is not None and second.outcome.matched


def test_dry_run_and_mode_fall_back_to_the_settings() -> None:
    rules = book(
        rule("a", P1, dry_run=True, then={"mode": "create-parent"}), rule("b", NETWORK), dry_run=False
    )
    subject = incident(priority="1")
    decision = rules.decide(subject, SimpleContext(T0), eligibility(subject))
    assert decision.dry_run(rules.settings.dry_run) is True
    assert decision.mode(rules.settings.mode) == "create-parent"
    other = incident(priority="3", category="network")
    assert rules.decide(other, SimpleContext(T0), eligibility(other)).dry_run(False) is False


def test_work_note_names_the_rule_and_the_values_that_matched() -> None:
    rules = RuleBook(demo_config().rules)
    subject = incident(priority="1", **{"cmdb_ci.business_criticality": "1 - most critical"})
    decision = rules.decide(subject, SimpleContext(T0), eligibility(subject))
    note = rules.work_note(decision, SimpleContext(T0), "[mim-connector ref:r1]")
    assert note.startswith(
        "mim-connector: rule 'critical-ci-p1' matched (Priority 1 on a most-critical configuration item); action: propose."
    )
    assert "- priority equals 1: '1'" in note and note.endswith("[mim-connector ref:r1]")


def test_durations_and_cluster_use_are_known_to_the_book() -> None:
    rules = RuleBook(demo_config().rules)
    assert rules.durations == {timedelta(minutes=5), timedelta(minutes=15), timedelta(minutes=30)}
    assert rules.uses_clusters
    assert [key for key, _test in rules.held] == [rules.held[0][0]]


def test_the_fast_path_always_agrees_with_the_explaining_one() -> None:
    rng = random.Random(7)
    rules = book(
        rule("p1-net", {"all": [P1, NETWORK]}),
        rule("not-closed", {"not": {"field": "state", "in": [6, 7]}}, **{"continue": True}),
        rule(
            "text",
            {
                "any": [
                    {"field": "short_description", "contains": "down"},
                    {"field": "short_description", "regex": "^Pay"},
                ]
            },
        ),
        rule(
            "numbers",
            {
                "all": [
                    {"field": "impact", "lte": 2},
                    {"field": "urgency", "gt": 1},
                    {"field": "category", "empty": False},
                ]
            },
        ),
        rule("old", {"open_for": "1h"}),
        rule("held", {"field": "priority", "in": [1, 2], "for": "10m"}),
    )
    held = {}
    for trial in range(600):
        subject = incident(
            number=f"INC{trial:07d}",
            priority=rng.choice("12345"),
            impact=rng.choice("123"),
            urgency=rng.choice("123"),
            state=rng.choice("1236 7"),
            category=rng.choice(["network", "database", ""]),
            short_description=rng.choice(["Payments down", "Mail slow", "down again", "all fine"]),
            opened_at=(T0 - timedelta(minutes=rng.randint(0, 120))).strftime("%Y-%m-%d %H:%M:%S"),
        )
        context = SimpleContext(T0, held=held)
        for key, _test in rules.held:
            held[f"{subject.sys_id}:{key}"] = T0 - timedelta(minutes=rng.randint(0, 20))
        fast = rules.decide(subject, context, eligibility(subject))
        explained = [
            e
            for e in rules.explain(subject, context, eligibility(subject))
            if e.outcome and e.outcome.matched
        ]
        if not eligibility(subject).eligible:
            # explain still shows what would match on a closed incident; decide acts on nothing.
            assert fast.matched == (), subject
            continue
        assert [m.rule.name for m in fast.matched] == [e.rule.name for e in explained], subject
