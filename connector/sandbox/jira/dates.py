"""Jira's time formats: REST timestamps and the date literals JQL accepts.

REST timestamps carry milliseconds and a ``±HHMM`` offset (``2026-11-22T10:00:00.000+0000``) and
are rendered in the requesting user's time zone. JQL date literals have minute precision and are
read in the searching user's profile time zone; seconds are rejected with Jira's own message.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, tzinfo

from connector.sandbox.jira.errors import bad_request

_INVALID_DATE = (
    "Date value '{value}' for field '{field}' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', "
    "'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
)
_ABSOLUTE = re.compile(r"^(\d{4})([-/])(\d{1,2})\2(\d{1,2})(?:\s+(\d{1,2}):(\d{2}))?$")
_PERIOD = re.compile(r"^([+-])?\s*(\d+[wdhm]?(?:\s+\d+[wdhm]?)*)$")
_PERIOD_PART = re.compile(r"(\d+)([wdhm]?)")
_UNIT_MINUTES = {"w": 7 * 24 * 60, "d": 24 * 60, "h": 60, "m": 1, "": 1}
_INPUT_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z")


def to_millis(moment: datetime) -> datetime:
    """``moment`` truncated to whole milliseconds (what Jira stores and shows)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_jira_time(moment: datetime, zone: tzinfo = UTC) -> str:
    """``moment`` as Jira renders it: ``2026-11-22T11:00:00.000+0100`` in ``zone``."""
    local = moment.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + local.strftime("%z")


def parse_jira_time(text: str) -> datetime:
    """Parse a REST timestamp (with or without milliseconds); raises ``ValueError`` when malformed."""
    for fmt in _INPUT_FORMATS:
        try:
            return datetime.strptime(text, fmt)  # noqa: DTZ007 - every format ends in %z
        except ValueError:
            continue
    raise ValueError(f"not a Jira timestamp: {text!r}")


def parse_jira_date(text: str) -> date:
    """Parse a ``yyyy-MM-dd`` date field value; raises ``ValueError`` when malformed."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(f"not a date: {text!r}")
    return date.fromisoformat(text)


def jql_date(value: str, *, field: str, zone: tzinfo, now: datetime, quoted: bool) -> datetime:
    """The instant a JQL date operand stands for.

    Absolute literals (``yyyy-MM-dd[ HH:mm]``, ``yyyy/MM/dd[ HH:mm]``) are local times in ``zone``;
    periods (``-5m``, ``-2h``, ``-1d``, ``4w 2d``; no unit means minutes) are relative to ``now``;
    an unquoted bare number is epoch milliseconds. Anything else - a literal with seconds, an ISO
    ``T`` form - raises a 400 with Jira's "Date value ... is invalid" message.
    """
    text = value.strip()
    if not quoted and text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    absolute = _ABSOLUTE.match(text)
    if absolute:
        year, _sep, month, day, hour, minute = absolute.groups()
        try:
            return datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), tzinfo=zone)
        except ValueError:
            raise bad_request(_INVALID_DATE.format(value=value, field=field)) from None
    period = _PERIOD.match(text)
    if period:
        sign = -1 if period.group(1) == "-" else 1
        minutes = sum(int(n) * _UNIT_MINUTES[unit] for n, unit in _PERIOD_PART.findall(period.group(2)))
        return now + timedelta(minutes=sign * minutes)
    raise bad_request(_INVALID_DATE.format(value=value, field=field))
