"""Promotion-rule speed: the fast path must keep a back-test of a year of history interactive.

Measures, on this machine:
  1. incident evaluations per second of ``RuleBook.decide`` with 20 rules (the shipped 4 plus 16
     realistic synthetic ones), over every version of every incident of the shipped event log
     (most incidents fail every rule at its first condition, as in real life);
  2. the back-test time (read the CSV + replay) of the shipped slice and, when present, of the
     1,000-incident shared sample (../shared/data/servicenow_incident_events_sample.csv).

Prints a markdown table and writes JSON to benchmarks/results/rules.json.
Run: .venv/bin/python benchmarks/rules_bench.py   (or: make bench)
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from connector.config import load_config
from connector.config.rules_file import RulesFile
from connector.core.models import Incident
from connector.rules.backtest.eventlog import read_events
from connector.rules.backtest.replay import incident_from_event, observations_from_events, run_backtest
from connector.rules.book import RuleBook, eligibility
from connector.rules.conditions import SimpleContext

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED_SAMPLE = ROOT.parent / "shared" / "data" / "servicenow_incident_events_sample.csv"
TARGET_EVALUATIONS = 50_000
DURATION = 3.0


def synthetic_rules() -> list[dict[str, Any]]:
    """Sixteen rules of the kinds admins write: priority gates, services, keywords, clusters, timers."""

    def rule(name: str, when: Any, action: str = "propose", **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "description": name.replace("-", " "),
            "when": when,
            "then": {"action": action},
        } | extra

    p1 = {"field": "priority", "equals": 1}
    p12 = {"field": "priority", "in": [1, 2]}
    return [
        rule(
            "email-outage", {"all": [{"field": "business_service.name", "equals": "Email"}, p12]}, "promote"
        ),
        rule(
            "payroll-down", {"all": [{"field": "business_service.name", "in": ["Payroll", "HR Portal"]}, p1]}
        ),
        rule(
            "security-breach",
            {"all": [{"field": "category", "equals": "security"}, {"field": "impact", "equals": 1}]},
        ),
        rule(
            "ransomware",
            {
                "any": [
                    {"field": "short_description", "regex": "(?i)ransom|breach"},
                    {"field": "description", "contains": "data leak"},
                ]
            },
            "promote",
        ),
        rule("network-core", {"all": [{"field": "assignment_group.name", "equals": "Network L3"}, p1]}),
        rule(
            "dc-power",
            {
                "all": [
                    {"field": "location.name", "in": ["DC1", "DC2"]},
                    {"field": "category", "equals": "facilities"},
                    p12,
                ]
            },
        ),
        rule(
            "vip-p2",
            {"all": [{"field": "priority", "equals": 2}, {"field": "caller_id.vip", "equals": True}]},
        ),
        rule("p1-open-4h", {"all": [p1, {"open_for": "4h"}, {"field": "state", "in": [1, 2]}]}),
        rule("p2-unassigned", {"all": [{"field": "priority", "equals": 2}, {"unassigned_for": "30m"}]}),
        rule(
            "p1-held",
            {
                "all": [
                    {"field": "priority", "equals": 1, "for": "10m"},
                    {"not": {"field": "state", "equals": 3}},
                ]
            },
        ),
        rule(
            "all-users",
            {
                "all": [
                    {"field": "impact", "equals": 1},
                    {"field": "short_description", "contains": "all users"},
                ]
            },
        ),
        rule(
            "critical-ci-p2",
            {
                "all": [
                    {"field": "priority", "equals": 2},
                    {"field": "cmdb_ci.business_criticality", "equals": "1 - most critical"},
                ]
            },
        ),
        rule(
            "urgent-high-impact",
            {
                "all": [
                    {"field": "impact", "equals": 1},
                    {"field": "urgency", "equals": 1},
                    {"field": "category", "not_in": ["request", "inquiry"]},
                ]
            },
        ),
        rule(
            "service-cluster",
            {"all": [p12, {"cluster": {"by": "business_service", "at_least": 10, "within": "15m"}}]},
        ),
        rule("many-reassignments", {"all": [{"field": "reassignment_count", "gte": 6}, p12]}),
        rule(
            "problem-linked-p1",
            {
                "all": [
                    p1,
                    {"field": "problem_id", "empty": False},
                    {"field": "category", "equals": "software"},
                ]
            },
            max_per_hour=2,
        ),
    ]


def twenty_rules() -> RuleBook:
    shipped = load_config(ROOT / "config" / "connector.yaml").rules
    data = shipped.model_dump(by_alias=True, exclude_none=True)
    enabled = [r for r in data["rules"] if r.get("enabled", True)]
    data["rules"] = [*enabled, *synthetic_rules()]
    book = RuleBook(RulesFile.model_validate(data))
    assert len(book.compiled) == 20, len(book.compiled)
    return book


def incidents() -> list[Incident]:
    """Every version of every incident of the shipped log, with a summary line to match text against."""
    out = []
    for event in read_events("builtin"):
        incident = incident_from_event(event)
        summary = f"{event.fields.get('category') or 'General'}: {event.fields.get('u_symptom') or 'unknown'}"
        fields = {**incident.fields, "short_description": summary, "description": summary}
        out.append(
            Incident(
                incident.sys_id,
                incident.number,
                incident.mod_count,
                incident.sys_updated_on,
                MappingProxyType(fields),
            )
        )
    return out


def evaluations_per_second(book: RuleBook, sample: list[Incident]) -> tuple[float, float]:
    """Evaluations per second, and the share of evaluations that matched a rule."""
    context = SimpleContext(datetime(2016, 3, 1, tzinfo=UTC))
    prepared = [(incident, eligibility(incident)) for incident in sample]
    decide = book.decide
    count, matched = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < DURATION:
        for incident, eligible in prepared:
            if decide(incident, context, eligible).matched:
                matched += 1
        count += len(prepared)
    return count / (time.perf_counter() - started), matched / count


def backtest_seconds(path: str | Path, book: RuleBook) -> dict[str, Any]:
    started = time.perf_counter()
    events = read_events(path)
    read = time.perf_counter() - started
    result = run_backtest(observations_from_events(events), book, source=str(path))
    total = time.perf_counter() - started
    return {
        "events": result.run.events,
        "incidents": result.run.incidents,
        "evaluations": result.run.evaluations,
        "read_seconds": round(read, 3),
        "total_seconds": round(total, 3),
        "decisions": {rule.name: rule.decisions for rule in result.rules if rule.decisions},
        "p1_reached": result.p1.reached,
        "p1_caught": result.p1.caught,
    }


def main() -> None:
    book = twenty_rules()
    shipped_book = RuleBook(load_config(ROOT / "config" / "connector.yaml").rules)
    sample = incidents()
    rate, matched_share = evaluations_per_second(book, sample)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "rules": len(book.compiled),
        "incident_versions": len(sample),
        "matched_share": round(matched_share, 4),
        "evaluations_per_second": round(rate),
        "backtest": {"builtin (shipped rules)": backtest_seconds("builtin", shipped_book)},
    }
    results["backtest"]["builtin (20 rules)"] = backtest_seconds("builtin", book)
    if SHARED_SAMPLE.exists():
        results["backtest"]["shared sample (shipped rules)"] = backtest_seconds(SHARED_SAMPLE, shipped_book)
        results["backtest"]["shared sample (20 rules)"] = backtest_seconds(SHARED_SAMPLE, book)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rules.json").write_text(json.dumps(results, indent=2) + "\n")

    print("| Rules figure | Measured | Target |")
    print("|---|---|---|")
    print(
        f"| `RuleBook.decide`, 20 rules, {len(sample):,} incident versions | "
        f"{results['evaluations_per_second']:,} evaluations/s | ≥ {TARGET_EVALUATIONS:,} evaluations/s |"
    )
    for name, figures in results["backtest"].items():
        print(
            f"| Back-test of {name}: {figures['events']:,} events, {figures['incidents']:,} incidents | "
            f"{figures['total_seconds']:.2f} s (CSV read {figures['read_seconds']:.2f} s) | seconds |"
        )
    if rate < TARGET_EVALUATIONS:
        raise SystemExit(f"below target: {rate:,.0f} evaluations/s")


if __name__ == "__main__":
    main()
