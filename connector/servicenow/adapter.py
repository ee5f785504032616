"""The ServiceNow side of the engine: :class:`ServiceNowAdapter` implements :class:`connector.core.ports.ServiceNowPort`.

Reads page by *keyset* on ``(time column, sys_id)``, never by offset: ServiceNow's
``sys_updated_on`` has second precision, so many rows share a second, and rows change while we
page. The first page has a closed lower bound (``sys_updated_on>=SINCE``); each next page starts
strictly after the last row seen::

    sys_updated_on>LAST^NQsys_updated_on=LAST^sys_id>LAST_ID^ORDERBYsys_updated_on^ORDERBYsys_id

A row updated while we page moves behind the cursor with its new ``sys_updated_on`` and is read
again later in the same pass, or (when it landed in the cursor's second below its sys_id) by the
next poll, whose closed lower bound re-reads that second. Duplicates are the caller's to drop by
``(sys_id, sys_mod_count)``.

Writes are one ``PATCH`` each and are never repeated once they may have been sent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from connector.config.connector_file import ServiceNowSite
from connector.core.errors import InvalidRequest, Unavailable
from connector.core.models import Incident, JournalElement, JournalEntry, Problem
from connector.core.times import format_servicenow_time, parse_servicenow_time, servicenow_time_or_none
from connector.http.ratelimit import Limiter
from connector.http.retry import DEFAULT_POLICY, RetryPolicy
from connector.http.transport import DEFAULT_COOLDOWN_SECONDS, Transport
from connector.servicenow.client import ServiceNowClient, message_of, record_path
from connector.servicenow.session import SYSTEM

INCIDENT_KEYS = ("sys_id", "number", "sys_mod_count", "sys_updated_on")
"""Columns every incident read includes, whatever the caller asks for."""
JOURNAL_FIELDS = ("sys_id", "element", "element_id", "value", "sys_created_on", "sys_created_by")
_ELEMENTS: Mapping[str, JournalElement] = MappingProxyType(
    {"work_notes": "work_notes", "comments": "comments"}
)
JOURNAL_ELEMENTS = tuple(_ELEMENTS)
JOURNAL_OF_INCIDENTS = f"name=incident^elementIN{','.join(JOURNAL_ELEMENTS)}"
PROBLEM_FIELDS = ("sys_id", "number", "cause_notes")
JOURNAL_PAGE_SIZE = 500
"""Page size when reading one incident's whole journal."""
_PLAIN_FIELD = re.compile(r"^[a-z_][a-z0-9_]*$")


def _text(value: Any) -> str:
    """A field value as the string ServiceNow stores (a reference object gives its sys_id)."""
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return _text(value.get("value"))
    return value if isinstance(value, str) else str(value)


def _incident(row: Mapping[str, Any], fields: Sequence[str]) -> Incident:
    return Incident(
        sys_id=_text(row.get("sys_id")),
        number=_text(row.get("number")),
        mod_count=int(_text(row.get("sys_mod_count")) or 0),
        sys_updated_on=servicenow_time_or_none(_text(row.get("sys_updated_on"))),
        fields=MappingProxyType({name: _text(row[name]) for name in fields if name in row}),
    )


def _problem(row: Mapping[str, Any]) -> Problem:
    return Problem(_text(row.get("sys_id")), _text(row.get("number")), _text(row.get("cause_notes")))


def _journal_entry(row: Mapping[str, Any]) -> JournalEntry | None:
    element = _ELEMENTS.get(_text(row.get("element")))
    if element is None:
        return None
    sys_id = _text(row.get("sys_id"))
    created_on = _text(row.get("sys_created_on"))
    try:
        created = parse_servicenow_time(created_on)
    except ValueError:
        # ServiceNow always writes this system column: an answer without it is not to be trusted.
        raise Unavailable(
            f"{SYSTEM}: journal entry {sys_id}: unexpected answer (sys_created_on {created_on!r})"
        ) from None
    return JournalEntry(
        sys_id=sys_id,
        incident_sys_id=_text(row.get("element_id")),
        element=element,
        value=_text(row.get("value")),
        sys_created_on=created,
        created_by=_text(row.get("sys_created_by")),
    )


def _checked_since(since: datetime) -> str:
    """``since`` as the query's lower bound; a naive time (whose zone nobody knows) is refused."""
    try:
        return format_servicenow_time(since)
    except ValueError:
        raise InvalidRequest(f"{SYSTEM}: watermark {since!r} is not timezone-aware") from None


def _checked_page_size(page_size: int) -> int:
    if page_size < 1:
        raise InvalidRequest(f"{SYSTEM}: page size must be at least 1, not {page_size}")
    return page_size


class ServiceNowAdapter:
    """A ServiceNow instance over pysnow, as :class:`~connector.core.ports.ServiceNowPort` describes it.

    ``sleep`` and ``clock`` (monotonic) drive pacing, retries and OAuth token renewal, so tests
    can run them on fake time. The instance is one throttle scope: a 429 holds back every request.
    """

    def __init__(
        self,
        site: ServiceNowSite,
        *,
        base_dir: Path | None = None,
        policy: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        cooldown: float = DEFAULT_COOLDOWN_SECONDS,
    ) -> None:
        budget = site.rate_budget
        limiter = Limiter(
            budget.requests_per_second,
            budget.burst,
            clock=clock,
            sleep=sleep,
            per_hour=budget.requests_per_hour,
        )
        self._transport = Transport(
            SYSTEM, limiter, policy=policy, sleep=sleep, message_of=message_of, clock=clock, cooldown=cooldown
        )
        self._client = ServiceNowClient(site, self._transport, base_dir=base_dir, clock=clock)
        self.integration_user: str = site.auth.username

    @property
    def transport(self) -> Transport:
        """The instance's transport (pacing, retries, throttle gate)."""
        return self._transport

    def server_time(self) -> datetime | None:
        """The instance's clock as of its last answer (``Date`` header); ``None`` before any call."""
        return self._transport.server_time

    def incidents_changed(self, since: datetime, fields: Sequence[str], page_size: int) -> Iterator[Incident]:
        """Incidents with ``sys_updated_on >= since`` (floored to the second) in (sys_updated_on, sys_id) order, keyset-paged."""
        columns = list(dict.fromkeys((*INCIDENT_KEYS, *fields)))
        rows = self._keyset("incident", "sys_updated_on", "", _checked_since(since), columns, page_size)
        for row in rows:
            yield _incident(row, fields)

    def incident(self, sys_id: str, fields: Sequence[str]) -> Incident | None:
        """One incident by sys_id; ``None`` when it does not exist or is not readable."""
        columns = list(dict.fromkeys((*INCIDENT_KEYS, *fields)))
        row = self._client.get_record("incident", sys_id, columns)
        return _incident(row, fields) if row is not None else None

    def incident_where(self, field: str, value: str, fields: Sequence[str]) -> Incident | None:
        """The first incident whose ``field`` equals ``value`` (e.g. ``number``, ``correlation_id``)."""
        if not _PLAIN_FIELD.match(field) or "^" in value:
            raise InvalidRequest(f"{SYSTEM}: cannot look up incidents by {field}={value!r}")
        columns = list(dict.fromkeys((*INCIDENT_KEYS, *fields)))
        rows = self._client.get_records("incident", f"{field}={value}^ORDERBYsys_created_on", columns, 1)
        return _incident(rows[0], fields) if rows else None

    def create_incident(self, fields: Mapping[str, str], read: Sequence[str]) -> Incident:
        """Create an incident (one POST); returns it with the ``read`` fields."""
        columns = list(dict.fromkeys((*INCIDENT_KEYS, *read)))
        return _incident(self._client.create_record("incident", fields, columns), read)

    def journal_since(self, since: datetime, page_size: int) -> Iterator[JournalEntry]:
        """Incident work notes and comments with ``sys_created_on >= since`` (floored to the second), in (created, sys_id) order."""
        rows = self._keyset(
            "sys_journal_field",
            "sys_created_on",
            JOURNAL_OF_INCIDENTS,
            _checked_since(since),
            JOURNAL_FIELDS,
            page_size,
        )
        for row in rows:
            entry = _journal_entry(row)
            if entry is not None:
                yield entry

    def journal_of(self, incident_sys_id: str) -> list[JournalEntry]:
        """Every work note and comment of one incident, oldest first."""
        conditions = f"element_id={record_path(incident_sys_id)}^{JOURNAL_OF_INCIDENTS}"
        rows = self._keyset(
            "sys_journal_field", "sys_created_on", conditions, None, JOURNAL_FIELDS, JOURNAL_PAGE_SIZE
        )
        return [entry for entry in map(_journal_entry, rows) if entry is not None]

    def update_incident(self, sys_id: str, fields: Mapping[str, str]) -> int | None:
        """Change fields of an incident in one PATCH; nothing is sent when ``fields`` is empty.

        ``work_notes`` / ``comments`` append journal entries. A 403 from a data policy (e.g. close
        fields missing on resolve) raises :class:`~connector.core.errors.InvalidRequest`. Returns the
        incident's ``sys_mod_count`` after the write.
        """
        if fields:
            return self._client.patch_record("incident", sys_id, fields)
        return None

    def add_journal(self, sys_id: str, element: JournalElement, text: str) -> None:
        """Append a work note or an additional comment (one PATCH); empty text appends nothing, so sends nothing."""
        if element not in JOURNAL_ELEMENTS:
            raise InvalidRequest(
                f"{SYSTEM}: {element!r} is not a journal field ({', '.join(JOURNAL_ELEMENTS)})"
            )
        if text:
            self._client.patch_record("incident", sys_id, {element: text})

    def problem_where(self, field: str, value: str) -> Problem | None:
        """The first problem whose ``field`` equals ``value`` (e.g. ``correlation_id``)."""
        if not _PLAIN_FIELD.match(field) or "^" in value:
            raise InvalidRequest(f"{SYSTEM}: cannot look up problems by {field}={value!r}")
        rows = self._client.get_records(
            "problem", f"{field}={value}^ORDERBYsys_created_on", PROBLEM_FIELDS, 1
        )
        return _problem(rows[0]) if rows else None

    def create_problem(self, fields: Mapping[str, str]) -> Problem:
        """Create a problem (one POST) and return it."""
        return _problem(self._client.create_record("problem", fields, PROBLEM_FIELDS))

    def update_problem(self, sys_id: str, fields: Mapping[str, str]) -> None:
        """Change fields of a problem in one PATCH (``work_notes`` appends); nothing sent when empty."""
        if fields:
            self._client.patch_record("problem", sys_id, fields)

    def problem_journal(self, sys_id: str) -> list[JournalEntry]:
        """Every work note and comment of one problem, oldest first (``incident_sys_id`` holds the problem's)."""
        conditions = f"element_id={record_path(sys_id)}^name=problem^elementIN{','.join(JOURNAL_ELEMENTS)}"
        rows = self._keyset(
            "sys_journal_field", "sys_created_on", conditions, None, JOURNAL_FIELDS, JOURNAL_PAGE_SIZE
        )
        return [entry for entry in map(_journal_entry, rows) if entry is not None]

    def close(self) -> None:
        """Release connections; the adapter is not used afterwards."""
        self._client.close()

    def _keyset(
        self,
        table: str,
        time_column: str,
        conditions: str,
        since: str | None,
        fields: Sequence[str],
        page_size: int,
    ) -> Iterator[dict[str, Any]]:
        """Rows of ``table`` matching ``conditions`` (and ``time_column >= since``), in (time, sys_id) order.

        Raises :class:`~connector.core.errors.InvalidRequest` if rows come back out of that order, which
        happens when ServiceNow silently drops a condition it does not understand; paging on would
        then loop or skip.
        """
        page_size = _checked_page_size(page_size)
        order = f"ORDERBY{time_column}^ORDERBYsys_id"
        prefix = f"{conditions}^" if conditions else ""
        query = f"{prefix}{time_column}>={since}^{order}" if since else f"{prefix}{order}"
        last: tuple[str, str] | None = None
        while True:
            rows = self._client.get_records(table, query, fields, page_size)
            for row in rows:
                key = (_text(row.get(time_column)), _text(row.get("sys_id")))
                if last is not None and key <= last:
                    raise InvalidRequest(f"{SYSTEM}: {table} rows out of keyset order: {key} after {last}")
                last = key
                yield row
            if len(rows) < page_size or last is None:
                return
            on, sys_id = last
            query = f"{prefix}{time_column}>{on}^NQ{prefix}{time_column}={on}^sys_id>{sys_id}^{order}"
