"""Links between incidents and supplier issues, the shadows of synced fields, and the comment ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Engine, and_, select
from sqlalchemy.exc import IntegrityError

from connector.store.db import as_utc, utcnow
from connector.store.schema import comments, links, shadows

LinkState = Literal["creating", "linked", "unlinked"]
Direction = Literal["out", "in"]
CommentState = Literal["pending", "done", "uncertain", "abandoned"]


@dataclass(frozen=True)
class Link:
    """An incident's mirrored issue at one supplier. ``creating``: claimed, issue not confirmed yet."""

    link_id: int
    incident_sys_id: str
    supplier: str
    state: str
    jira_issue_id: str | None
    jira_key: str | None
    jira_url: str | None
    stamp: str
    created_at: datetime
    updated_at: datetime

    @property
    def entity(self) -> str:
        """The unit of failure isolation and ordering: incident x supplier."""
        return entity_key(self.incident_sys_id, self.supplier)


def entity_key(incident_sys_id: str, supplier: str) -> str:
    """``<incident sys_id>:<supplier>``."""
    return f"{incident_sys_id}:{supplier}"


class Links:
    """At most one link per (incident, supplier), claimed before the issue is created."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, incident_sys_id: str, supplier: str) -> Link | None:
        """The link of this incident at this supplier."""
        condition = and_(links.c.incident_sys_id == incident_sys_id, links.c.supplier == supplier)
        return self._one(condition)

    def by_issue(self, supplier: str, jira_issue_id: str) -> Link | None:
        """The link whose supplier issue has this (immutable) id."""
        return self._one(and_(links.c.supplier == supplier, links.c.jira_issue_id == jira_issue_id))

    def by_id(self, link_id: int) -> Link | None:
        """The link with this id."""
        return self._one(links.c.link_id == link_id)

    def for_incident(self, incident_sys_id: str) -> list[Link]:
        """Every supplier link of an incident."""
        return self._many(links.c.incident_sys_id == incident_sys_id)

    def active(self, supplier: str | None = None) -> list[Link]:
        """Links being created or linked, optionally of one supplier."""
        condition: ColumnElement[bool] = links.c.state.in_(("creating", "linked"))
        if supplier is not None:
            condition = and_(condition, links.c.supplier == supplier)
        return self._many(condition)

    def claim(self, incident_sys_id: str, supplier: str, stamp: str) -> tuple[Link, bool]:
        """Create the link in state ``creating``; returns ``(link, True)``, or the existing one and ``False``."""
        now = utcnow()
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    links.insert().values(
                        incident_sys_id=incident_sys_id,
                        supplier=supplier,
                        state="creating",
                        stamp=stamp,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            existing = self.get(incident_sys_id, supplier)
            assert existing is not None
            return existing, False
        created = self.get(incident_sys_id, supplier)
        assert created is not None
        return created, True

    def confirm(self, link_id: int, jira_issue_id: str, jira_key: str, jira_url: str) -> Link:
        """Record the supplier issue the link points at; state becomes ``linked``."""
        self._update(
            link_id, state="linked", jira_issue_id=jira_issue_id, jira_key=jira_key, jira_url=jira_url
        )
        link = self.by_id(link_id)
        assert link is not None
        return link

    def set_state(self, link_id: int, state: LinkState) -> None:
        """Change a link's state (``unlinked`` when its issue is gone)."""
        self._update(link_id, state=state)

    def _update(self, link_id: int, **values: Any) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                links.update().where(links.c.link_id == link_id).values(updated_at=utcnow(), **values)
            )

    def _one(self, condition: Any) -> Link | None:
        rows = self._many(condition)
        return rows[0] if rows else None

    def _many(self, condition: Any) -> list[Link]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(links).where(condition).order_by(links.c.link_id)).all()
        return [_link(row) for row in rows]


def _link(row: Any) -> Link:
    return Link(
        row.link_id,
        row.incident_sys_id,
        row.supplier,
        row.state,
        row.jira_issue_id,
        row.jira_key,
        row.jira_url,
        row.stamp,
        as_utc(row.created_at) or utcnow(),
        as_utc(row.updated_at) or utcnow(),
    )


class Shadows:
    """The last synced value of each mapped field, per link and side (``jira`` or ``servicenow``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, link_id: int, side: str) -> dict[str, str]:
        """Field -> value as last synced to ``side``."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(shadows.c.field, shadows.c.value).where(
                    and_(shadows.c.link_id == link_id, shadows.c.side == side)
                )
            ).all()
        return {row.field: row.value for row in rows}

    def put(self, link_id: int, side: str, values: Mapping[str, str]) -> None:
        """Remember ``values`` as synced (other fields keep their shadows)."""
        if not values:
            return
        now = utcnow()
        with self._engine.begin() as conn:
            for field, value in values.items():
                key = and_(shadows.c.link_id == link_id, shadows.c.side == side, shadows.c.field == field)
                updated = conn.execute(shadows.update().where(key).values(value=value, updated_at=now))
                if updated.rowcount == 0:
                    conn.execute(
                        shadows.insert().values(
                            link_id=link_id, side=side, field=field, value=value, updated_at=now
                        )
                    )


@dataclass(frozen=True)
class CommentEntry:
    """One comment mirrored in one direction: its source, what we created for it, and how far we got."""

    comment_id: int
    link_id: int
    direction: str
    source_id: str
    target_id: str | None
    marker: str
    state: str


class CommentLedger:
    """Each source comment is mirrored at most once per link and direction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, link_id: int, direction: Direction, source_id: str) -> CommentEntry | None:
        """The ledger entry of a source comment, if any."""
        condition = and_(
            comments.c.link_id == link_id,
            comments.c.direction == direction,
            comments.c.source_id == source_id,
        )
        with self._engine.connect() as conn:
            row = conn.execute(select(comments).where(condition)).one_or_none()
        return _comment(row) if row else None

    def begin(
        self, link_id: int, direction: Direction, source_id: str, marker: str
    ) -> tuple[CommentEntry, bool]:
        """Record the intent to mirror; returns the entry and whether it is new."""
        now = utcnow()
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    comments.insert().values(
                        link_id=link_id,
                        direction=direction,
                        source_id=source_id,
                        marker=marker,
                        state="pending",
                        created_at=now,
                        updated_at=now,
                    )
                )
            created = True
        except IntegrityError:
            created = False
        entry = self.get(link_id, direction, source_id)
        assert entry is not None
        if not created and entry.state == "abandoned":
            # An earlier attempt was proven not to have landed: this one is a fresh start.
            self.finish(entry.comment_id, "pending")
            return self.get(link_id, direction, source_id) or entry, True
        return entry, created

    def finish(self, comment_id: int, state: CommentState, target_id: str | None = None) -> None:
        """Record the outcome of mirroring."""
        values: dict[str, Any] = {"state": state, "updated_at": utcnow()}
        if target_id is not None:
            values["target_id"] = target_id
        with self._engine.begin() as conn:
            conn.execute(comments.update().where(comments.c.comment_id == comment_id).values(**values))

    def unfinished(self, link_id: int | None = None) -> list[CommentEntry]:
        """Entries still ``pending`` or ``uncertain`` (after a crash or a lost answer): reconcile these."""
        condition: ColumnElement[bool] = comments.c.state.in_(("pending", "uncertain"))
        if link_id is not None:
            condition = and_(condition, comments.c.link_id == link_id)
        with self._engine.connect() as conn:
            rows = conn.execute(select(comments).where(condition).order_by(comments.c.comment_id)).all()
        return [_comment(row) for row in rows]

    def settled(self, link_id: int, direction: Direction) -> frozenset[str]:
        """Source ids mirrored for sure (``done``); pending, uncertain and abandoned ones are not."""
        condition = and_(
            comments.c.link_id == link_id, comments.c.direction == direction, comments.c.state == "done"
        )
        with self._engine.connect() as conn:
            return frozenset(conn.execute(select(comments.c.source_id).where(condition)).scalars())

    def targets(self, link_id: int, direction: Direction) -> set[str]:
        """Ids of the comments we created in ``direction`` (so they are not mirrored back)."""
        condition = and_(
            comments.c.link_id == link_id,
            comments.c.direction == direction,
            comments.c.target_id.is_not(None),
        )
        with self._engine.connect() as conn:
            return {row.target_id for row in conn.execute(select(comments.c.target_id).where(condition))}


def _comment(row: Any) -> CommentEntry:
    return CommentEntry(
        row.comment_id, row.link_id, row.direction, row.source_id, row.target_id, row.marker, row.state
    )
