"""Links between incidents and supplier issues, the shadows of synced fields, and the comment ledger.

The link types themselves (:class:`~connector.core.links.Link`, its states, directions) are in
:mod:`connector.core.links`: the pure decisions read them without importing the store.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Engine, Insert, Select, and_, bindparam, func, select

from connector.core.links import Direction, Link, LinkState
from connector.store.db import as_utc, chunked, upsert_insert, utcnow, writing
from connector.store.rechecks import LinkRechecks
from connector.store.tables import comments, links, shadows

CREATED = "created"
"""Key of :meth:`CommentLedger.settled_both` for the Jira comments our outbound entries created."""
CommentState = Literal["pending", "done", "uncertain", "abandoned"]


class Links(LinkRechecks):
    """At most one link per (incident, supplier), claimed before the issue is created.

    The reconciler's queries (what to re-check next, retirement) are in :class:`LinkRechecks`.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, incident_sys_id: str, supplier: str) -> Link | None:
        """The link of this incident at this supplier."""
        return self._one(_LINK_OF_ENTITY, incident_sys_id=incident_sys_id, supplier=supplier)

    def by_issue(self, supplier: str, jira_issue_id: str) -> Link | None:
        """The link whose supplier issue has this (immutable) id."""
        return self._one(_LINK_OF_ISSUE, supplier=supplier, jira_issue_id=jira_issue_id)

    def for_incident(self, incident_sys_id: str) -> list[Link]:
        """Every supplier link of an incident."""
        return self._many(_LINKS_OF_INCIDENT, incident_sys_id=incident_sys_id)

    def for_incidents(self, incident_sys_ids: Iterable[str]) -> dict[str, list[Link]]:
        """:meth:`for_incident` of many incidents in a few reads (those without links are absent)."""
        found: dict[str, list[Link]] = {}
        for chunk in chunked(list(incident_sys_ids)):
            for link in self._many(_LINKS.where(links.c.incident_sys_id.in_(chunk))):
                found.setdefault(link.incident_sys_id, []).append(link)
        return found

    def active(self, supplier: str | None = None) -> list[Link]:
        """Links being created or linked, optionally of one supplier."""
        condition: ColumnElement[bool] = links.c.state.in_(("creating", "linked"))
        if supplier is not None:
            condition = and_(condition, links.c.supplier == supplier)
        return self._many(_LINKS.where(condition))

    def active_page(self, after: str, incidents: int) -> list[Link]:
        """Links being created or linked of the first ``incidents`` incidents whose sys_id sorts after ``after``.

        Ordered by incident, so that a page holds all the open links of each of its incidents;
        the last link's ``incident_sys_id`` is the ``after`` of the next page (``""`` starts).
        """
        return self._many(_ACTIVE_PAGE, after=after, incidents=incidents)

    def claim(
        self, incident_sys_id: str, supplier: str, stamp: str, *, conn: Connection | None = None
    ) -> tuple[Link, bool]:
        """Create the link in state ``creating``; returns ``(link, True)``, or the existing one and ``False``.

        In ``conn``'s transaction if given, else in one of its own.
        """
        now = utcnow()
        with writing(self._engine, conn) as tx:
            row = tx.execute(
                self._claim,
                {
                    "incident_sys_id": incident_sys_id,
                    "supplier": supplier,
                    "state": "creating",
                    "stamp": stamp,
                    "created_at": now,
                    "updated_at": now,
                },
            ).first()
            if row is None:
                params = {"incident_sys_id": incident_sys_id, "supplier": supplier}
                return _link(tx.execute(_LINK_OF_ENTITY, params).one()), False
        return Link(
            row.link_id, incident_sys_id, supplier, "creating", None, None, None, stamp, now, now
        ), True

    @functools.cached_property
    def _claim(self) -> Insert:
        """``INSERT … ON CONFLICT (incident_sys_id, supplier) DO NOTHING RETURNING link_id``.

        No error on a taken pair, so the claim can share a transaction (PostgreSQL aborts a
        transaction at its first error).
        """
        statement = upsert_insert(self._engine, links).on_conflict_do_nothing(
            index_elements=[links.c.incident_sys_id, links.c.supplier]
        )
        return statement.returning(links.c.link_id)

    def confirm(
        self,
        link_id: int,
        jira_issue_id: str,
        jira_key: str,
        jira_url: str,
        *,
        conn: Connection | None = None,
    ) -> Link:
        """Record the supplier issue the link points at; state becomes ``linked``.

        In ``conn``'s transaction if given, else in one of its own.
        """
        with writing(self._engine, conn) as tx:
            row = tx.execute(
                _CONFIRM_LINK,
                {
                    "id": link_id,
                    "jira_issue_id": jira_issue_id,
                    "jira_key": jira_key,
                    "jira_url": jira_url,
                    "updated_at": utcnow(),
                },
            ).one()
        return _link(row)

    def adopt(
        self,
        incident_sys_id: str,
        supplier: str,
        stamp: str,
        jira_issue_id: str,
        jira_key: str,
        jira_url: str,
        *,
        conn: Connection | None = None,
    ) -> Link:
        """Link the incident to an issue that already exists (found by its stamp), claimed or not.

        The link takes the issue's ``stamp`` and becomes ``linked``; in ``conn``'s transaction if
        given, else in one of its own.
        """
        with writing(self._engine, conn) as tx:
            link, _ = self.claim(incident_sys_id, supplier, stamp, conn=tx)
            row = tx.execute(
                _ADOPT_LINK,
                {
                    "id": link.link_id,
                    "stamp": stamp,
                    "jira_issue_id": jira_issue_id,
                    "jira_key": jira_key,
                    "jira_url": jira_url,
                    "updated_at": utcnow(),
                },
            ).one()
        return _link(row)

    def forget(self, link_id: int, *, conn: Connection | None = None) -> None:
        """Delete the link with its shadows and comment-ledger entries (a link that is not ours)."""
        with writing(self._engine, conn) as tx:
            tx.execute(shadows.delete().where(shadows.c.link_id == link_id))
            tx.execute(comments.delete().where(comments.c.link_id == link_id))
            tx.execute(links.delete().where(links.c.link_id == link_id))

    def set_state(self, link_id: int, state: LinkState) -> None:
        """Change a link's state (``unlinked`` when its issue is gone)."""
        with self._engine.begin() as conn:
            conn.execute(
                links.update().where(links.c.link_id == link_id).values(state=state, updated_at=utcnow())
            )

    def note_seen(self, incident_sys_id: str, supplier: str, version: str) -> None:
        """Remember the issue version (``id@updated``) read after our last write to it."""
        with self._engine.begin() as conn:
            conn.execute(
                _NOTE_SEEN,
                {"incident": incident_sys_id, "site": supplier, "seen_version": version[:80]},
            )

    def seen_version(self, link_id: int) -> str | None:
        """The issue version noted by :meth:`note_seen` (``None`` when none was)."""
        with self._engine.connect() as conn:
            return conn.execute(select(links.c.seen_version).where(links.c.link_id == link_id)).scalar()

    def counts(self) -> dict[str, dict[str, int]]:
        """Supplier -> link state (``creating``, ``linked``, ``unlinked``) -> how many links."""
        statement = select(links.c.supplier, links.c.state, func.count()).group_by(
            links.c.supplier, links.c.state
        )
        out: dict[str, dict[str, int]] = {}
        with self._engine.connect() as conn:
            for supplier, state, count in conn.execute(statement):
                out.setdefault(str(supplier), {})[str(state)] = int(count)
        return out

    def last_synced(self, link: Link) -> datetime:
        """When the link last changed or settled something: a synced field, a mirrored comment, its state."""
        statement = select(
            select(func.max(shadows.c.updated_at)).where(shadows.c.link_id == link.link_id).scalar_subquery(),
            select(func.max(comments.c.updated_at))
            .where(comments.c.link_id == link.link_id, comments.c.state == "done")
            .scalar_subquery(),
        )
        with self._engine.connect() as conn:
            row = conn.execute(statement).one()
        return max(t for t in (link.updated_at, as_utc(row[0]), as_utc(row[1])) if t is not None)

    def _one(self, statement: Select[Any], **params: Any) -> Link | None:
        rows = self._many(statement, **params)
        return rows[0] if rows else None

    def _many(self, statement: Select[Any], **params: Any) -> list[Link]:
        with self._engine.connect() as conn:
            rows = conn.execute(statement, params).all()
        return [_link(row) for row in rows]


# Built once: the store's hottest statements (several per entity and pass) skip SQLAlchemy's
# statement construction and hit its compiled cache directly.
_LINKS = select(links).order_by(links.c.link_id)
_LINK_OF_ENTITY = _LINKS.where(
    links.c.incident_sys_id == bindparam("incident_sys_id"), links.c.supplier == bindparam("supplier")
)
_LINK_OF_ISSUE = _LINKS.where(
    links.c.supplier == bindparam("supplier"), links.c.jira_issue_id == bindparam("jira_issue_id")
)
_LINKS_OF_INCIDENT = _LINKS.where(links.c.incident_sys_id == bindparam("incident_sys_id"))
_NOTE_SEEN = (
    links.update()
    .where(links.c.incident_sys_id == bindparam("incident"), links.c.supplier == bindparam("site"))
    .values(seen_version=bindparam("seen_version"))
)
_OPEN = links.c.state.in_(("creating", "linked"))
_ACTIVE_PAGE = (
    select(links)
    .where(
        _OPEN,
        links.c.incident_sys_id.in_(
            select(links.c.incident_sys_id)
            .where(_OPEN, links.c.incident_sys_id > bindparam("after"))
            .group_by(links.c.incident_sys_id)
            .order_by(links.c.incident_sys_id)
            .limit(bindparam("incidents"))
        ),
    )
    .order_by(links.c.incident_sys_id, links.c.link_id)
)
_CONFIRM_LINK = (
    links.update()
    .where(links.c.link_id == bindparam("id"))
    .values(
        state="linked",
        jira_issue_id=bindparam("jira_issue_id"),
        jira_key=bindparam("jira_key"),
        jira_url=bindparam("jira_url"),
        updated_at=bindparam("updated_at"),
    )
    .returning(*links.c)
)

_ADOPT_LINK = _CONFIRM_LINK.values(stamp=bindparam("stamp"))


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
        return self.sides(link_id).get(side, {})

    def sides(self, link_id: int) -> dict[str, dict[str, str]]:
        """Side (``jira``, ``servicenow``) -> field -> value as last synced, in one query."""
        out: dict[str, dict[str, str]] = {"jira": {}, "servicenow": {}}
        with self._engine.connect() as conn:
            for row in conn.execute(_SHADOWS_OF_LINK, {"link_id": link_id}):
                out.setdefault(row.side, {})[row.field] = row.value
        return out

    def dated(self, link_id: int, side: str, field: str) -> tuple[str, datetime] | None:
        """One shadow and when it was last written, or ``None``."""
        statement = select(shadows.c.value, shadows.c.updated_at).where(
            shadows.c.link_id == link_id, shadows.c.side == side, shadows.c.field == field
        )
        with self._engine.connect() as conn:
            row = conn.execute(statement).one_or_none()
        return (str(row.value), as_utc(row.updated_at) or utcnow()) if row else None

    def put(
        self, link_id: int, side: str, values: Mapping[str, str], *, conn: Connection | None = None
    ) -> None:
        """Remember ``values`` as synced (other fields keep their shadows), in one statement.

        In ``conn``'s transaction if given, else in one of its own.
        """
        if not values:
            return
        now = utcnow()
        rows = [
            {"link_id": link_id, "side": side, "field": field, "value": value, "updated_at": now}
            for field, value in values.items()
        ]
        with writing(self._engine, conn) as tx:
            tx.execute(self._upsert, rows)

    @functools.cached_property
    def _upsert(self) -> Insert:
        """``INSERT … ON CONFLICT (link_id, side, field) DO UPDATE`` (SQLite ≥ 3.24 and PostgreSQL)."""
        statement = upsert_insert(self._engine, shadows)
        return statement.on_conflict_do_update(
            index_elements=[shadows.c.link_id, shadows.c.side, shadows.c.field],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
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
        params = {"link_id": link_id, "direction": direction, "source_id": source_id}
        with self._engine.connect() as conn:
            row = conn.execute(_COMMENT_OF_SOURCE, params).one_or_none()
        return _comment(row) if row else None

    def begin(
        self,
        link_id: int,
        direction: Direction,
        source_id: str,
        marker: str,
        *,
        conn: Connection | None = None,
    ) -> tuple[CommentEntry, bool]:
        """Record the intent to mirror; returns the entry and whether it is new.

        An entry proven not to have landed (``abandoned``) starts again as new. In ``conn``'s
        transaction if given, else in one of its own.
        """
        now = utcnow()
        with writing(self._engine, conn) as tx:
            row = tx.execute(
                self._begin,
                {
                    "link_id": link_id,
                    "direction": direction,
                    "source_id": source_id,
                    "marker": marker,
                    "state": "pending",
                    "created_at": now,
                    "updated_at": now,
                },
            ).first()
            if row is not None:
                return CommentEntry(
                    row.comment_id, link_id, direction, source_id, None, marker, "pending"
                ), True
            params = {"link_id": link_id, "direction": direction, "source_id": source_id}
            entry = _comment(tx.execute(_COMMENT_OF_SOURCE, params).one())
            if entry.state != "abandoned":
                return entry, False
            self.finish(entry.comment_id, "pending", conn=tx)
        return replace(entry, state="pending"), True

    @functools.cached_property
    def _begin(self) -> Insert:
        """``INSERT … ON CONFLICT (link_id, direction, source_id) DO NOTHING RETURNING comment_id``."""
        statement = upsert_insert(self._engine, comments).on_conflict_do_nothing(
            index_elements=[comments.c.link_id, comments.c.direction, comments.c.source_id]
        )
        return statement.returning(comments.c.comment_id)

    def finish(
        self,
        comment_id: int,
        state: CommentState,
        target_id: str | None = None,
        *,
        conn: Connection | None = None,
    ) -> None:
        """Record the outcome of mirroring (in ``conn``'s transaction if given)."""
        params: dict[str, Any] = {"id": comment_id, "state": state, "updated_at": utcnow()}
        if target_id is not None:
            params["target_id"] = target_id
        with writing(self._engine, conn) as tx:
            tx.execute(_FINISH_COMMENT if target_id is None else _FINISH_COMMENT_WITH_TARGET, params)

    def unfinished(self, link_id: int | None = None) -> list[CommentEntry]:
        """Entries still ``pending`` or ``uncertain`` (after a crash or a lost answer): reconcile these."""
        statement = _UNFINISHED_COMMENTS if link_id is None else _UNFINISHED_COMMENTS_OF_LINK
        with self._engine.connect() as conn:
            rows = conn.execute(statement, {"link_id": link_id}).all()
        return [_comment(row) for row in rows]

    def settled_both(self, link_id: int) -> dict[str, frozenset[str]]:
        """Direction (``out``, ``in``) -> source ids mirrored for sure (``done``), in one query.

        Also ``created`` -> the ids of the Jira comments those outbound entries created, so that
        our own comments are known by identity, whatever their text. Pending, uncertain and
        abandoned entries are not settled.
        """
        found: dict[str, set[str]] = {"out": set(), "in": set(), CREATED: set()}
        with self._engine.connect() as conn:
            for row in conn.execute(_SETTLED_BOTH, {"link_id": link_id}):
                found.setdefault(row.direction, set()).add(row.source_id)
                if row.direction == "out" and row.target_id:
                    found[CREATED].add(row.target_id)
        return {direction: frozenset(ids) for direction, ids in found.items()}

    def targets(self, link_id: int, direction: Direction) -> set[str]:
        """Ids of the comments we created in ``direction`` (so they are not mirrored back)."""
        condition = and_(
            comments.c.link_id == link_id,
            comments.c.direction == direction,
            comments.c.target_id.is_not(None),
        )
        with self._engine.connect() as conn:
            return {row.target_id for row in conn.execute(select(comments.c.target_id).where(condition))}


_SHADOWS_OF_LINK = select(shadows.c.side, shadows.c.field, shadows.c.value).where(
    shadows.c.link_id == bindparam("link_id")
)
_SETTLED_BOTH = select(comments.c.direction, comments.c.source_id, comments.c.target_id).where(
    comments.c.link_id == bindparam("link_id"), comments.c.state == "done"
)
_COMMENT_OF_SOURCE = select(comments).where(
    comments.c.link_id == bindparam("link_id"),
    comments.c.direction == bindparam("direction"),
    comments.c.source_id == bindparam("source_id"),
)
_FINISH_COMMENT = (
    comments.update()
    .where(comments.c.comment_id == bindparam("id"))
    .values(state=bindparam("state"), updated_at=bindparam("updated_at"))
)
_FINISH_COMMENT_WITH_TARGET = _FINISH_COMMENT.values(target_id=bindparam("target_id"))
_UNFINISHED_COMMENTS = (
    select(comments).where(comments.c.state.in_(("pending", "uncertain"))).order_by(comments.c.comment_id)
)
_UNFINISHED_COMMENTS_OF_LINK = _UNFINISHED_COMMENTS.where(comments.c.link_id == bindparam("link_id"))


def _comment(row: Any) -> CommentEntry:
    return CommentEntry(
        row.comment_id, row.link_id, row.direction, row.source_id, row.target_id, row.marker, row.state
    )
