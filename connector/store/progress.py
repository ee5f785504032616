"""How far each source has been read, and the last processed version of each incident."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, bindparam, func, select

from connector.core.times import (
    format_servicenow_time,
    format_stored_time,
    parse_stored_time,
    servicenow_time_or_none,
)
from connector.store.db import chunked, utcnow, writing
from connector.store.tables import incidents, watermarks


@dataclass(frozen=True)
class Watermark:
    """A read position.

    Everything strictly before ``position`` (aware) was processed, and of the records at exactly
    ``position`` the keys in ``boundary`` were (closed lower bound, de-duplicated).
    """

    position: datetime
    boundary: tuple[str, ...] = ()


class Watermarks:
    """One watermark per source, e.g. ``servicenow:incident`` or ``jira:acme``.

    Positions are stored as ISO 8601 in UTC (:func:`~connector.core.times.format_stored_time`);
    stores written by older versions hold ServiceNow's ``YYYY-MM-DD HH:MM:SS`` (UTC) for the
    ServiceNow sources, and both forms read back as the same aware datetime.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, source: str) -> Watermark | None:
        """The stored position of ``source``, or ``None`` before its first read."""
        with self._engine.connect() as conn:
            row = conn.execute(select(watermarks).where(watermarks.c.source == source)).one_or_none()
        return _watermark(row) if row else None

    def set(self, source: str, mark: Watermark, *, conn: Connection | None = None) -> None:
        """Store ``mark`` for ``source`` (in ``conn``'s transaction when given); a naive position raises ``ValueError``."""
        values = {
            "position": format_stored_time(mark.position),
            "boundary": list(mark.boundary),
            "updated_at": utcnow(),
        }
        with writing(self._engine, conn) as tx:
            updated = tx.execute(watermarks.update().where(watermarks.c.source == source).values(**values))
            if updated.rowcount == 0:
                tx.execute(watermarks.insert().values(source=source, **values))

    def all(self) -> dict[str, Watermark]:
        """Every source's watermark."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(watermarks)).all()
        return {row.source: _watermark(row) for row in rows}


@dataclass(frozen=True)
class IncidentRecord:
    """The last processed version of an incident and the fields the connector read."""

    sys_id: str
    number: str
    mod_count: int
    sys_updated_on: datetime | None
    """The version's ``sys_updated_on``; ``None`` when the incident had none we could read."""
    snapshot: Mapping[str, Any]


class Incidents:
    """Processed incident versions: a version is processed at most once (sys_id, sys_mod_count)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, sys_id: str) -> IncidentRecord | None:
        """The last processed version of ``sys_id``."""
        with self._engine.connect() as conn:
            row = conn.execute(_INCIDENT, {"sys_id": sys_id}).one_or_none()
        return _incident(row) if row else None

    def get_many(self, sys_ids: Iterable[str]) -> dict[str, IncidentRecord]:
        """:meth:`get` of many incidents in a few reads (those never processed are absent)."""
        found: dict[str, IncidentRecord] = {}
        with self._engine.connect() as conn:
            for chunk in chunked(list(sys_ids)):
                for row in conn.execute(select(incidents).where(incidents.c.sys_id.in_(chunk))):
                    found[row.sys_id] = _incident(row)
        return found

    def by_number(self, number: str) -> IncidentRecord | None:
        """The last processed version of the incident numbered ``number``."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(incidents).where(incidents.c.number == number).order_by(incidents.c.seen_at.desc())
            ).first()
        return _incident(row) if row else None

    def remember(
        self,
        sys_id: str,
        number: str,
        mod_count: int,
        sys_updated_on: datetime | None,
        snapshot: Mapping[str, Any],
        *,
        opened_at: str | None = None,
        candidate: bool = False,
        conn: Connection | None = None,
    ) -> bool:
        """Record a processed version; returns ``False`` (and changes nothing) if it is not newer.

        ``sys_updated_on`` is kept as ServiceNow writes it (``""`` for ``None``); ``opened_at`` is
        the incident's field value as read. ``candidate`` marks an incident the promotion rules may still act on (active, no parent,
        not already a major incident), so time conditions can be re-checked without a new version.
        """
        values = {
            "number": number,
            "mod_count": mod_count,
            "updated_on": format_servicenow_time(sys_updated_on) if sys_updated_on is not None else "",
            "snapshot": dict(snapshot),
            "seen_at": utcnow(),
            "opened_at": opened_at or None,
            "candidate": candidate,
        }
        with writing(self._engine, conn) as tx:
            current = tx.execute(_MOD_COUNT, {"sys_id": sys_id}).scalar()
            if current is None:
                tx.execute(_INSERT_INCIDENT, {"sys_id": sys_id, **values})
                return True
            if mod_count <= current:
                return False
            tx.execute(_UPDATE_INCIDENT, {"of_sys_id": sys_id, **values})
            return True

    def candidates(
        self, opened_after: datetime | None = None, *, after: str = "", limit: int | None = None
    ) -> list[IncidentRecord]:
        """Incidents the rules may still act on, optionally only those opened at or after a time.

        In sys_id order; ``after`` and ``limit`` read them a page at a time (the sys_ids greater
        than ``after``, at most ``limit`` of them), so that a caller's memory is one page, not
        every open incident.
        """
        condition: ColumnElement[bool] = incidents.c.candidate.is_(True)
        if opened_after is not None:
            condition = and_(condition, incidents.c.opened_at >= format_servicenow_time(opened_after))
        if after:
            condition = and_(condition, incidents.c.sys_id > after)
        query = select(incidents).where(condition).order_by(incidents.c.sys_id).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_incident(row) for row in rows]

    def opened_since(
        self, opened_after: datetime, *, after: str = "", limit: int | None = None
    ) -> list[IncidentRecord]:
        """Every incident opened at or after a time (cluster windows), to the second.

        In sys_id order; ``after`` and ``limit`` read them a page at a time, as for :meth:`candidates`.
        """
        # opened_at holds ServiceNow's text, whose order is the order of time. ``candidate`` is
        # never NULL: naming both its values lets ix_incidents_candidate (candidate, opened_at)
        # serve the range, instead of every incident (a year of them) being read at each poll.
        condition = and_(
            incidents.c.candidate.in_([False, True]),
            incidents.c.opened_at >= format_servicenow_time(opened_after),
        )
        if after:
            condition = and_(condition, incidents.c.sys_id > after)
        query = select(incidents).where(condition).order_by(incidents.c.sys_id).limit(limit)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_incident(row) for row in rows]

    def pages(
        self, read: Callable[..., list[IncidentRecord]], size: int, *args: Any
    ) -> Iterator[IncidentRecord]:
        """Every record ``read(*args, after=..., limit=size)`` returns, one page held at a time.

        ``read`` is :meth:`candidates` or :meth:`opened_since`.
        """
        after = ""
        while True:
            page = read(*args, after=after, limit=size)
            yield from page
            if len(page) < size:
                return
            after = page[-1].sys_id

    def count(self) -> int:
        """How many incidents the store knows."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(incidents)).scalar_one())


# Built once: every polled incident is looked up and remembered.
_INCIDENT = select(incidents).where(incidents.c.sys_id == bindparam("sys_id"))
_MOD_COUNT = select(incidents.c.mod_count).where(incidents.c.sys_id == bindparam("sys_id"))
_INSERT_INCIDENT = incidents.insert()
_UPDATE_INCIDENT = incidents.update().where(incidents.c.sys_id == bindparam("of_sys_id"))


def _incident(row: Any) -> IncidentRecord:
    updated = servicenow_time_or_none(row.updated_on)
    return IncidentRecord(row.sys_id, row.number, row.mod_count, updated, dict(row.snapshot))


def _watermark(row: Any) -> Watermark:
    return Watermark(parse_stored_time(row.position), tuple(row.boundary or ()))
