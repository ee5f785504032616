"""Times as the two platforms write them, and as the connector holds them: aware ``datetime``.

Adapters parse a platform's text once, at the boundary; everything inside compares aware
datetimes; a time goes back out as text only where it leaves (a query, a JQL literal, a value
shown to people, the store), formatted by the one function here. Pure, standard library only.

ServiceNow stores date-times as ``YYYY-MM-DD HH:MM:SS`` in UTC, second precision (the Table API
returns that form unless asked for display values). Jira writes ISO 8601 with milliseconds and a
``+hhmm`` offset in the server's zone: ``2026-11-22T10:00:00.000+0000``.
"""

from __future__ import annotations

from datetime import UTC, datetime

SERVICENOW_FORMAT = "%Y-%m-%d %H:%M:%S"
"""ServiceNow's stored date-time form (UTC): ``2026-11-22 10:00:00``."""
JIRA_FORMATS = ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z")
"""Jira's timestamp forms, with and without milliseconds."""


def parse_servicenow_time(text: str) -> datetime:
    """``YYYY-MM-DD HH:MM:SS`` (ServiceNow's stored form, UTC) as an aware UTC datetime.

    Raises ``ValueError`` for anything else, the empty string and surrounding blanks included.
    """
    return datetime.strptime(text, SERVICENOW_FORMAT).replace(tzinfo=UTC)


def servicenow_time_or_none(text: str) -> datetime | None:
    """:func:`parse_servicenow_time`, or ``None`` when ``text`` is empty or not in that form.

    For values that may be absent or typed by people (a field of a file, an ``opened_at`` that
    was never set): a time that cannot be read is no time, never an error.
    """
    try:
        return parse_servicenow_time(text)
    except ValueError:
        return None


def format_servicenow_time(moment: datetime) -> str:
    """``moment`` as ServiceNow writes and queries it: ``YYYY-MM-DD HH:MM:SS`` in UTC.

    Sub-second digits are dropped (floored). Raises ``ValueError`` for a naive ``moment``: a time
    without a zone has no place in a query.
    """
    return _utc(moment).strftime(SERVICENOW_FORMAT)


def servicenow_precision(moment: datetime) -> datetime:
    """``moment`` in UTC floored to the second: the instant ServiceNow would write for it.

    ``format_servicenow_time(moment)`` and ``servicenow_precision(moment)`` name the same instant.
    Raises ``ValueError`` for a naive ``moment``.
    """
    return _utc(moment).replace(microsecond=0)


def parse_jira_time(text: str) -> datetime:
    """Jira's ``2026-11-22T10:00:00.000+0000`` (milliseconds optional) as an aware datetime.

    The offset Jira wrote is kept (the same instant as its UTC form; ``astimezone(UTC)`` for that).
    Spelled out with ``strptime`` because ``datetime.fromisoformat`` before Python 3.11 rejects a
    ``+0000`` offset. Raises ``ValueError`` for anything else, a timestamp without offset included.
    """
    for fmt in JIRA_FORMATS:
        try:
            return datetime.strptime(text, fmt)  # noqa: DTZ007 - every format ends in %z
        except ValueError:
            continue
    raise ValueError(f"not a Jira timestamp: {text!r}")


def format_jira_time(moment: datetime) -> str:
    """``moment`` as a Jira date-time field value, in UTC: ``2026-11-22T10:00:00.000+0000``.

    Milliseconds are written as ``000`` (ServiceNow's times, the ones we send, have none). Raises
    ``ValueError`` for a naive ``moment``.
    """
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def parse_instant(text: str) -> datetime | None:
    """A time written in either platform's form, or ``None`` when ``text`` is in neither."""
    moment = servicenow_time_or_none(text)
    if moment is not None:
        return moment
    try:
        return parse_jira_time(text)
    except ValueError:
        return None


def parse_stored_time(text: str) -> datetime:
    """A time as the store keeps it (ISO 8601 with offset), or as older versions did.

    Older stores hold ServiceNow's ``YYYY-MM-DD HH:MM:SS`` (taken as UTC) and ISO 8601 with any
    offset; every form gives an aware datetime. Raises ``ValueError`` for anything else, a naive
    ISO 8601 time included.
    """
    if "T" not in text:
        return parse_servicenow_time(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"a stored time without offset: {text!r}")
    return moment


def format_stored_time(moment: datetime) -> str:
    """``moment`` as the store keeps it: ISO 8601 in UTC with its offset, microseconds when it has any.

    Raises ``ValueError`` for a naive ``moment``.
    """
    return _utc(moment).isoformat()


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"a naive datetime has no place outside: {moment!r}")
    return moment.astimezone(UTC)
