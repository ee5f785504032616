"""The two platforms' time formats and the store's, to aware datetimes and back (connector.core.times)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from connector.core.times import (
    format_jira_time,
    format_servicenow_time,
    format_stored_time,
    parse_instant,
    parse_jira_time,
    parse_servicenow_time,
    parse_stored_time,
    servicenow_precision,
    servicenow_time_or_none,
)

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
NAIVE = datetime(2026, 11, 22, 10, 0, 0)  # noqa: DTZ001 - naive on purpose
BERLIN = ZoneInfo("Europe/Berlin")


def test_servicenow_text_parses_to_aware_utc_and_formats_back() -> None:
    parsed = parse_servicenow_time("2026-11-22 10:00:00")
    assert parsed == T0 and parsed.tzinfo is UTC
    assert format_servicenow_time(parsed) == "2026-11-22 10:00:00"


def test_servicenow_format_writes_utc_whatever_the_zone_and_floors_to_the_second() -> None:
    moment = datetime(2026, 11, 22, 11, 0, 0, 999999, tzinfo=BERLIN)
    assert format_servicenow_time(moment) == "2026-11-22 10:00:00"
    assert servicenow_precision(moment) == T0
    assert format_servicenow_time(servicenow_precision(moment)) == format_servicenow_time(moment)


@pytest.mark.parametrize(
    "text", ["", " 2026-11-22 10:00:00", "2026-11-22T10:00:00", "2026-11-22 10:00", "22/11/2026 10:00:00"]
)
def test_bad_servicenow_text_raises_or_gives_none(text: str) -> None:
    with pytest.raises(ValueError, match="does not match format"):
        parse_servicenow_time(text)
    assert servicenow_time_or_none(text) is None


@pytest.mark.parametrize("format_", [format_servicenow_time, format_jira_time, format_stored_time])
def test_a_naive_datetime_is_never_formatted(format_: Callable[[datetime], str]) -> None:
    with pytest.raises(ValueError, match="naive"):
        format_(NAIVE)
    with pytest.raises(ValueError, match="naive"):
        servicenow_precision(NAIVE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00.000+0000", T0),
        ("2026-11-22T11:00:00.250+0100", T0 + timedelta(milliseconds=250)),
        ("2026-11-22T15:30:00+0530", T0),
    ],
)
def test_jira_timestamps_parse_to_aware_datetimes_keeping_their_offset(text: str, expected: datetime) -> None:
    parsed = parse_jira_time(text)
    assert parsed == expected and parsed.tzinfo is not None


def test_a_jira_timestamp_keeps_the_offset_jira_wrote() -> None:
    parsed = parse_jira_time("2026-11-22T11:00:00.250+0100")
    assert parsed.utcoffset() == timedelta(hours=1)
    assert parsed.isoformat() == "2026-11-22T11:00:00.250000+01:00"


@pytest.mark.parametrize("text", ["2026-11-22 10:00", "2026-11-22T10:00:00.000", "", "yesterday"])
def test_a_malformed_or_naive_jira_timestamp_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a Jira timestamp"):
        parse_jira_time(text)


def test_jira_format_writes_utc_with_milliseconds_and_parses_back() -> None:
    moment = datetime(2026, 11, 22, 11, 0, 0, tzinfo=BERLIN)
    assert format_jira_time(moment) == "2026-11-22T10:00:00.000+0000"
    assert parse_jira_time(format_jira_time(moment)) == moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22 10:00:00", T0),
        ("2026-11-22T11:00:00.000+0100", T0),
        ("2026-11-22T10:00:00+0000", T0),
        ("", None),
        ("2026-11-22", None),
        ("High", None),
    ],
)
def test_an_instant_is_read_from_either_platforms_form(text: str, expected: datetime | None) -> None:
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    "moment",
    [
        T0,
        T0 + timedelta(microseconds=123456),
        datetime(2026, 11, 22, 11, 0, tzinfo=timezone(timedelta(hours=1))),
    ],
)
def test_stored_times_round_trip_as_utc_iso(moment: datetime) -> None:
    text = format_stored_time(moment)
    assert text.startswith("2026-11-22T10:00:00") and text.endswith("+00:00")
    assert parse_stored_time(text) == moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22 10:00:00", T0),
        ("2026-11-22T11:00:00.123000+01:00", T0 + timedelta(milliseconds=123)),
        ("2026-11-22T10:00:00+00:00", T0),
    ],
)
def test_stored_times_of_older_versions_still_read(text: str, expected: datetime) -> None:
    parsed = parse_stored_time(text)
    assert parsed == expected and parsed.tzinfo is not None


@pytest.mark.parametrize("text", ["2026-11-22T10:00:00", "", "2026-11-22 10:00", "soon"])
def test_a_stored_time_without_offset_or_form_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_stored_time(text)
