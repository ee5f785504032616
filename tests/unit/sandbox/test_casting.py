"""Casting the shipped log onto the demo world: deterministic, sparing with critical parts, faithful otherwise."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from connector.rules.backtest.eventlog import IncidentEvent, read_events
from connector.sandbox.casting import PARTS, Casting, cast_demo, deal, stable_hash
from connector.sandbox.replay import first_incidents
from connector.sandbox.servicenow.rules import priority_of

LOG = read_events("builtin")


def event(
    number: str, minute: int, impact: str = "2", urgency: str = "2", state: str = "2", group: str = "Group 1"
) -> IncidentEvent:
    return IncidentEvent(
        number=number,
        updated_at=datetime(2016, 3, 1, tzinfo=UTC) + timedelta(minutes=minute),
        mod_count=minute,
        opened_at=None,
        fields=MappingProxyType(
            {"state": state, "impact": impact, "urgency": urgency, "category": "Category 1"}
        ),
        references=MappingProxyType({"assignment_group": group, "cmdb_ci": "", "caller_id": "Caller 1"}),
        priority="",
    )


def peak(events: list[IncidentEvent], number: str) -> int:
    return min(
        int(priority_of(e.fields["impact"], e.fields["urgency"]) or 5)
        for e in events
        if e.number == number and e.fields["state"] not in ("6", "7")
    )


def test_the_hash_is_the_same_on_every_run_and_platform() -> None:
    # The first 48 bits of SHA-256, not Python's per-process salted hash().
    assert stable_hash("INC0000045") == 0x654A90A357C8


def test_dealing_is_deterministic_and_ignores_the_order_events_come_in() -> None:
    assert deal(LOG) == deal(list(reversed(LOG)))
    assert cast_demo(LOG) == cast_demo(LOG)


def test_the_shipped_log_gets_every_part_and_few_critical_ones() -> None:
    roles = deal(LOG)
    counts = Counter(roles.values())
    assert (counts["critical"], counts["payments-major"], counts["cluster"]) == (2, 2, 5)
    assert 30 <= counts["acme"] <= 60 and 10 <= counts["payments"] <= 30
    # Every proposal or promotion the casting invites (and the cluster's one) stays under the rules' cap of 6.
    assert counts["critical"] + counts["payments-major"] + 1 <= 6


def test_each_part_goes_to_incidents_that_can_play_it() -> None:
    roles = deal(LOG)
    for number, role in roles.items():
        if role == "critical":
            assert peak(LOG, number) == 1
        elif role == "payments-major":
            assert peak(LOG, number) <= 2
        elif role in ("cluster", "payments"):
            assert peak(LOG, number) >= 3, f"{number} ({role}) would set off a priority rule"


def test_cluster_members_are_all_open_when_the_last_one_opens() -> None:
    roles = deal(LOG)
    members = [n for n, role in roles.items() if role == "cluster"]
    last_opening = max(min(e.updated_at for e in LOG if e.number == n) for n in members)
    for number in members:
        before = [e for e in LOG if e.number == number and e.updated_at <= last_opening]
        assert before[-1].fields["state"] not in ("6", "7")


def test_only_references_change_and_unassigned_stays_unassigned() -> None:
    cast = cast_demo(LOG)
    assert len(cast) == len(LOG)
    roles = deal(LOG)
    for before, after in zip(LOG, cast, strict=True):
        assert (after.number, after.updated_at, after.fields, after.priority) == (
            before.number,
            before.updated_at,
            before.fields,
            before.priority,
        )
        role = roles.get(before.number)
        if role is None:
            assert after == before
            continue
        part = PARTS[role]
        expected_group = part.assignment_group if before.references["assignment_group"] else ""
        assert after.references["assignment_group"] == (
            expected_group or before.references["assignment_group"]
        )
        if part.cmdb_ci:
            assert after.references["cmdb_ci"] == part.cmdb_ci
        if part.business_service:
            assert after.references["business_service"] == part.business_service


def test_a_shortened_log_still_has_the_major_parts() -> None:
    counts = Counter(deal(first_incidents(LOG, 36)).values())
    assert (counts["critical"], counts["payments-major"], counts["cluster"]) == (2, 2, 5)


@pytest.mark.parametrize(
    ("casting", "expected"),
    [
        (Casting(critical=0, payments_major=0, cluster=0, acme_percent=0, payments_percent=0), {}),
        (
            Casting(critical=5, payments_major=0, cluster=0, acme_percent=0, payments_percent=0),
            {"P1": "critical"},
        ),
    ],
)
def test_parts_go_only_where_the_log_allows(casting: Casting, expected: dict[str, str]) -> None:
    events = [event("P1", 0, impact="1", urgency="1"), event("P3", 1), event("P3", 2, state="6")]
    assert deal(events, casting) == expected


def test_no_cluster_unless_enough_incidents_are_open_together() -> None:
    # Each incident is resolved before the next one opens: a cluster would have nobody to gather.
    events = [e for n in range(5) for e in (event(f"I{n}", 10 * n), event(f"I{n}", 10 * n + 5, state="6"))]
    casting = Casting(critical=0, payments_major=0, cluster=5, acme_percent=0, payments_percent=0)
    assert deal(events, casting) == {}
    together = [event(f"I{n}", n) for n in range(5)]
    assert set(deal(together, casting).values()) == {"cluster"}
