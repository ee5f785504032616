"""Jira timestamps and JQL date literals: formats, user time zones, minute precision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.sandbox.jira.dates import format_jira_time, jql_date, parse_jira_time, to_millis
from connector.sandbox.jira.errors import JiraApiError

NOW = datetime(2026, 11, 22, 10, 0, 30, 123456, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def test_format_has_milliseconds_and_a_colonless_offset() -> None:
    assert format_jira_time(NOW) == "2026-11-22T10:00:30.123+0000"
    assert format_jira_time(NOW, BERLIN) == "2026-11-22T11:00:30.123+0100"
    assert format_jira_time(NOW, ZoneInfo("Asia/Kolkata")) == "2026-11-22T15:30:30.123+0530"
    assert parse_jira_time("2026-11-22T11:00:30.123+0100") == to_millis(NOW)
    assert parse_jira_time("2026-11-22T10:00:30+00:00") == NOW.replace(microsecond=0)
    with pytest.raises(ValueError):
        parse_jira_time("2026-11-22 10:00")


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("2026-11-22 10:00", datetime(2026, 11, 22, 9, 0, tzinfo=UTC)),
        ("2026/11/22 10:00", datetime(2026, 11, 22, 9, 0, tzinfo=UTC)),
        ("2026-11-22", datetime(2026, 11, 21, 23, 0, tzinfo=UTC)),
        ("2026/7/1", datetime(2026, 6, 30, 22, 0, tzinfo=UTC)),
        ("2026-07-01 9:05", datetime(2026, 7, 1, 7, 5, tzinfo=UTC)),
    ],
)
def test_absolute_literals_are_local_to_the_users_zone(literal: str, expected: datetime) -> None:
    assert jql_date(literal, field="updated", zone=BERLIN, now=NOW, quoted=True) == expected


@pytest.mark.parametrize(
    ("literal", "delta"),
    [
        ("-5m", timedelta(minutes=-5)),
        ("-2h", timedelta(hours=-2)),
        ("-1d", timedelta(days=-1)),
        ("-1w 2d", timedelta(days=-9)),
        ("-15", timedelta(minutes=-15)),
        ("4w 2d", timedelta(days=30)),
    ],
)
def test_periods_are_relative_to_now(literal: str, delta: timedelta) -> None:
    assert jql_date(literal, field="updated", zone=BERLIN, now=NOW, quoted=False) == NOW + delta


def test_an_unquoted_number_is_epoch_milliseconds() -> None:
    assert jql_date("1795341600000", field="updated", zone=BERLIN, now=NOW, quoted=False) == datetime(
        2026, 11, 22, 10, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "literal", ["2026-11-22 10:00:30", "2026-11-22T10:00", "22/11/2026", "2026-13-01", "yesterday"]
)
def test_anything_else_is_jiras_invalid_date_error(literal: str) -> None:
    with pytest.raises(JiraApiError) as caught:
        jql_date(literal, field="created", zone=UTC, now=NOW, quoted=True)
    assert caught.value.status == 400
    assert caught.value.messages == [
        f"Date value '{literal}' for field 'created' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
        "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
    ]
