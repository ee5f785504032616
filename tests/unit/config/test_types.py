from __future__ import annotations

from datetime import timedelta

import pytest

from connector.config.types import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        ("250ms", 0.25),
        (90, 90),
        ("1.5h", 5400),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["5 minutes", "m5", "", "-5s", True, [1]])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["30s", "5m", "1h30m", "2d", "1w2d", "250ms", "0s"])
def test_format_round_trips(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
