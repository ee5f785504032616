"""Which lane observed work goes to: a person's change is fresh, our own writes' echoes and bursts are bulk."""

from __future__ import annotations

from datetime import UTC, datetime

from connector.store.queue import BULK, NEW
from connector.sync.cycle import Cycle, Work
from connector.sync.engine import BULK_AFTER, queued
from connector.sync.worker import SCHEDULE, fresh_only, lanes, reserved
from tests.unit.sync.conftest import World

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def observed(fresh: int, ours: int) -> Cycle:
    cycle = Cycle(NOW)
    for index in range(fresh):
        cycle.work[f"f{index}:acme"] = Work(f"f{index}", "acme", reason="servicenow")
    for index in range(ours):
        cycle.work[f"o{index}:acme"] = Work(f"o{index}", "acme", reason="servicenow", ours=True)
    return cycle


def lane_of(cycle: Cycle) -> dict[str, int]:
    return {item.entity: item.lane for item in queued(cycle)}


def test_a_change_seen_beside_the_echoes_of_a_backfill_is_fresh() -> None:
    found = lane_of(observed(fresh=1, ours=3 * BULK_AFTER))
    assert found.pop("f0:acme") == NEW
    assert set(found.values()) == {BULK}


def test_more_fresh_changes_than_bulk_after_at_once_are_a_burst() -> None:
    assert set(lane_of(observed(fresh=BULK_AFTER, ours=0)).values()) == {NEW}
    assert set(lane_of(observed(fresh=BULK_AFTER + 1, ours=0)).values()) == {BULK}


def test_every_worker_tries_each_lane_and_the_new_lane_most() -> None:
    turns = [order for order, _ in zip(lanes(), range(len(SCHEDULE)), strict=False)]
    assert all(sorted(order) == [0, 1, 2] for order in turns)
    firsts = [order[0] for order in turns]
    assert (firsts.count(NEW), firsts.count(BULK)) == (5, 2)


def test_a_backfill_sends_in_the_background_and_a_fresh_incident_in_the_foreground(world: World) -> None:
    for _ in range(BULK_AFTER + 1):
        world.incident_for_acme()
    engine = world.start()
    engine.cycle(sweep=False)
    creates = world.acme.calls.count("create_issue")
    assert creates == BULK_AFTER + 1
    assert world.acme.background.count("create_issue") == creates, "a burst yields the budgets"
    world.clock.advance(seconds=30)
    world.incident_for_acme(short_description="A fresh outage")
    engine.cycle(sweep=False)
    assert world.acme.calls.count("create_issue") == creates + 1
    assert world.acme.background.count("create_issue") == creates, "a fresh change does not wait"


def test_one_worker_in_eight_waits_for_fresh_changes_only() -> None:
    assert [reserved(n) for n in (1, 2, 8, 9, 32)] == [0, 1, 1, 2, 4]
    assert [order for order, _ in zip(fresh_only(), range(3), strict=False)] == [(NEW,)] * 3
