"""ServiceNow date-time values: stored as UTC ``YYYY-MM-DD HH:MM:SS``, shown in the user's time zone.

Query values come in three forms with different time semantics, reproduced here because pysnow
mixes them: a plain literal is UTC; ``javascript:gs.dateGenerate(...)`` and the relative macros
(``gs.beginningOfToday()``, ``gs.hoursAgoStart(2)``) are read in the session user's time zone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

FORMAT = "%Y-%m-%d %H:%M:%S"
_LITERAL = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}:\d{2}))?$")
_DATE_GENERATE_2 = re.compile(r"""^gs\.dateGenerate\(\s*['"]([^'"]+)['"]\s*,\s*['"]([^'"]+)['"]\s*\)$""")
_DATE_GENERATE_1 = re.compile(r"""^gs\.dateGenerate\(\s*['"]([^'"]+)['"]\s*\)$""")
_CALL = re.compile(r"^gs\.(\w+)\(\s*(-?\d*)\s*\)$")


@dataclass(frozen=True)
class QueryContext:
    """Who asks and when: what ``javascript:`` macros and display values depend on."""

    now: datetime
    """The server clock, timezone-aware."""
    zone: tzinfo
    """The session user's time zone."""
    user_sys_id: str = ""
    user_name: str = ""


def format_utc(moment: datetime) -> str:
    """``moment`` (timezone-aware) as a stored value: UTC, second precision."""
    return moment.astimezone(UTC).strftime(FORMAT)


def parse_stored(value: str) -> datetime | None:
    """A stored (UTC) value as an aware datetime; ``None`` when it is not a date-time."""
    match = _LITERAL.match(value.strip())
    if match is None:
        return None
    try:
        return datetime.strptime(f"{match[1]} {match[2] or '00:00:00'} +0000", f"{FORMAT} %z")
    except ValueError:
        return None


def to_display(value: str, zone: tzinfo) -> str:
    """A stored UTC value as the user sees it (their time zone); other text unchanged."""
    parsed = parse_stored(value)
    return parsed.astimezone(zone).strftime(FORMAT) if parsed else value


def from_display(value: str, zone: tzinfo) -> str | None:
    """A date-time typed in the user's time zone as a stored UTC value; ``None`` when unparseable."""
    parsed = parse_stored(value)
    if parsed is None:
        return None
    return format_utc(parsed.replace(tzinfo=zone))


def normalise_literal(value: str) -> str | None:
    """A plain query literal (taken as UTC) in stored form; ``None`` when it is not a date-time."""
    parsed = parse_stored(value)
    return format_utc(parsed) if parsed else None


def _start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _date_generate(day: str, time: str, zone: tzinfo) -> str | None:
    if time == "start":
        time = "00:00:00"
    elif time == "end":
        time = "23:59:59"
    return from_display(f"{day} {time}", zone)


_UNIT = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1), "days": timedelta(days=1)}


def _relative(name: str, amount: int, local_now: datetime) -> datetime | None:
    """``gs.<unit>Ago[Start|End](n)``: ``n`` units back, optionally snapped to the unit's start or end."""
    match = re.fullmatch(r"(minutes|hours|days)Ago(Start|End)?", name)
    if match is None:
        return None
    unit, snap = match[1], match[2]
    moment = local_now - amount * _UNIT[unit]
    if snap is None:
        return moment
    if unit == "minutes":
        start = moment.replace(second=0, microsecond=0)
    elif unit == "hours":
        start = moment.replace(minute=0, second=0, microsecond=0)
    else:
        start = _start_of_day(moment)
    return start if snap == "Start" else start + _UNIT[unit] - timedelta(seconds=1)


def _named(name: str, local_now: datetime) -> datetime | None:
    today = _start_of_day(local_now)
    day = timedelta(days=1)
    second = timedelta(seconds=1)
    table: dict[str, Callable[[], datetime]] = {
        "nowDateTime": lambda: local_now,
        "nowNoTZ": lambda: local_now,
        "beginningOfToday": lambda: today,
        "endOfToday": lambda: today + day - second,
        "beginningOfYesterday": lambda: today - day,
        "endOfYesterday": lambda: today - second,
        "beginningOfTomorrow": lambda: today + day,
        "endOfTomorrow": lambda: today + 2 * day - second,
        "beginningOfLast15Minutes": lambda: (local_now - timedelta(minutes=15)).replace(
            second=0, microsecond=0
        ),
        "beginningOfLastMinute": lambda: (local_now - timedelta(minutes=1)).replace(second=0, microsecond=0),
        "beginningOfLastHour": lambda: (local_now - timedelta(hours=1)).replace(
            minute=0, second=0, microsecond=0
        ),
        "beginningOfCurrentHour": lambda: local_now.replace(minute=0, second=0, microsecond=0),
        "beginningOfCurrentMinute": lambda: local_now.replace(second=0, microsecond=0),
    }
    make = table.get(name)
    return make() if make else None


def evaluate_macro(expression: str, context: QueryContext) -> str | None:
    """The value of a whitelisted ``javascript:`` expression (without the prefix), else ``None``.

    Date macros yield a stored UTC value computed in the user's time zone; ``gs.getUserID()`` and
    ``gs.getUserName()`` yield the session user's sys_id and user_name. ServiceNow ignores a
    condition whose script it cannot evaluate; callers do the same on ``None``.
    """
    expression = expression.strip().removesuffix(";").strip()
    if match := _DATE_GENERATE_2.match(expression):
        return _date_generate(match[1], match[2], context.zone)
    if match := _DATE_GENERATE_1.match(expression):
        return from_display(match[1], context.zone)
    match = _CALL.match(expression)
    if match is None:
        return None
    name, argument = match[1], match[2]
    if name == "getUserID" and not argument:
        return context.user_sys_id
    if name == "getUserName" and not argument:
        return context.user_name
    local_now = context.now.astimezone(context.zone).replace(microsecond=0)
    moment = _relative(name, int(argument or "0"), local_now) if "Ago" in name else None
    if moment is None and not argument:
        moment = _named(name, local_now)
    return format_utc(moment) if moment else None


_RELATIVE_UNITS = {
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}


def relative_bound(spec: str, now: datetime) -> str | None:
    """The instant of a ``RELATIVE..`` operand such as ``@hour@ago@3``; ``None`` when malformed."""
    parts = spec.strip("@").split("@")
    if len(parts) != 3 or parts[0] not in _RELATIVE_UNITS or parts[1] not in ("ago", "ahead"):
        return None
    try:
        amount = int(parts[2])
    except ValueError:
        return None
    delta = amount * _RELATIVE_UNITS[parts[0]]
    return format_utc(now - delta if parts[1] == "ago" else now + delta)
