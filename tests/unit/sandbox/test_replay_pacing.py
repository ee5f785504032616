"""Replay pacing: the log's spacing divided by the speed, quiet spells capped; a log cut to its first incidents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from connector.rules.backtest.eventlog import IncidentEvent, read_events
from connector.sandbox.replay import first_incidents, schedule

START = datetime(2016, 3, 1, tzinfo=UTC)


def at(number: str, seconds: float) -> IncidentEvent:
    return IncidentEvent(
        number=number,
        updated_at=START + timedelta(seconds=seconds),
        mod_count=0,
        opened_at=None,
        fields=MappingProxyType({}),
        references=MappingProxyType({}),
        priority="",
    )


EVENTS = [at("A", 0), at("B", 60), at("A", 120), at("C", 86_400 * 30)]


@pytest.mark.parametrize(
    ("speed", "max_gap", "expected"),
    [
        (0, None, [0, 0, 0, 0]),
        (60, None, [0, 1, 2, 43_200]),
        (60, 5.0, [0, 1, 2, 7]),
        (60, 0.5, [0, 0.5, 1.0, 1.5]),
    ],
)
def test_schedule_divides_gaps_by_the_speed_and_caps_them(
    speed: float, max_gap: float | None, expected: list[float]
) -> None:
    assert schedule(EVENTS, speed, max_gap) == pytest.approx(expected)


def test_first_incidents_keeps_every_event_of_the_first_ones_in_order() -> None:
    assert [e.number for e in first_incidents(EVENTS, 2)] == ["A", "B", "A"]
    assert first_incidents(EVENTS, None) == EVENTS
    log = read_events("builtin")
    cut = first_incidents(log, 36)
    assert len({e.number for e in cut}) == 36
    assert cut == [e for e in log if e.number in {c.number for c in cut}]
