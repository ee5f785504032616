"""The reconciler's queries on ``links``: which links to re-check next, retirement, and counts.

A link's ``checked_at`` says when the reconciler last took it for a re-check (``NULL``: never),
``retired_at`` since when it is retired (its incident closed for longer than
``reconcile.retire_after``: never re-checked again, unless the incident is reopened). Both are
read through the index ``ix_links_reconcile (retired_at, checked_at)``, so that taking the next
links to re-check costs the same with a hundred links or a million.

These methods are part of :class:`connector.store.links.Links` (``store.links``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, Integer, and_, bindparam, func, or_, select, update

from connector.store.db import writing
from connector.store.queue import PENDING, RECONCILE
from connector.store.tables import links, work

CHECKED_STATE = "linked"
"""The one link state worth a re-check: ``creating`` is settled by its intent, ``unlinked`` is gone."""


@dataclass(frozen=True)
class Recheck:
    """A link taken for a re-check."""

    link_id: int
    incident_sys_id: str
    supplier: str


class LinkRechecks:
    """The reconciler's part of :class:`~connector.store.links.Links`."""

    _engine: Engine

    def take_for_check(
        self,
        now: datetime,
        count: int,
        suppliers: Collection[str],
        *,
        scan: int | None = None,
        conn: Connection | None = None,
    ) -> list[Recheck]:
        """Up to ``count`` links to re-check, least recently checked first (never checked: first of all).

        Only links ``linked``, not retired, of one of ``suppliers`` are taken; each is marked
        checked at ``now``. The rows passed on the way (at most ``scan``, default ``4 * count +
        16``) that are none of these (being created, unlinked, of a disabled supplier) are marked
        too: they go to the back of the line instead of being read again at every call, so a
        call costs the same however many links there are (it may then return fewer than
        ``count``). Read and marked in one transaction (``conn``'s when given); a row is marked,
        and taken, only if no other call marked it at ``now`` or later meanwhile and (on
        PostgreSQL) none holds it (``SKIP LOCKED``): two calls never take the same link.
        """
        if count <= 0:
            return []
        scan = max(scan if scan is not None else 4 * count + 16, count)
        wanted = frozenset(suppliers)
        with writing(self._engine, conn) as tx:
            rows = list(tx.execute(_NEVER_CHECKED, {"scan": scan}).all())
            if len(rows) < scan:
                rows += tx.execute(_LEAST_RECENTLY_CHECKED, {"scan": scan - len(rows)}).all()
            passed: list[int] = []
            taken: list[Recheck] = []
            for row in rows:
                passed.append(row.link_id)
                if row.state == CHECKED_STATE and row.supplier in wanted:
                    taken.append(Recheck(row.link_id, row.incident_sys_id, row.supplier))
                    if len(taken) == count:
                        break
            if not passed:
                return []
            # Only the rows passed are locked (a row another call holds is skipped, not waited
            # for), and marked only if still due: the candidates were read without a lock.
            free = (
                select(links.c.link_id).where(links.c.link_id.in_(passed)).with_for_update(skip_locked=True)
            )
            marked = set(
                tx.execute(
                    update(links)
                    .where(
                        links.c.link_id.in_(free),
                        or_(links.c.checked_at.is_(None), links.c.checked_at < now),
                    )
                    .values(checked_at=now)
                    .returning(links.c.link_id)
                ).scalars()
            )
        return [recheck for recheck in taken if recheck.link_id in marked]

    def retire(self, link_id: int, now: datetime, *, conn: Connection | None = None) -> bool:
        """Retire the link (its incident was closed long enough): it is not re-checked any more.

        Returns ``False`` when it was retired already (it keeps its first ``retired_at``).
        """
        with writing(self._engine, conn) as tx:
            done = tx.execute(
                update(links)
                .where(links.c.link_id == link_id, links.c.retired_at.is_(None))
                .values(retired_at=now)
            )
        return done.rowcount > 0

    def unretire(self, incident_sys_id: str, *, conn: Connection | None = None) -> int:
        """Bring the retired links of a reopened incident back into the re-checks; returns how many.

        They keep their ``checked_at``: being the oldest, they are among the next ones checked.
        """
        if conn is None:
            # Mostly there is none: a read first, so the writer's lock is not taken for nothing.
            with self._engine.connect() as reader:
                if reader.execute(_RETIRED_OF, {"incident": incident_sys_id}).first() is None:
                    return 0
        with writing(self._engine, conn) as tx:
            done = tx.execute(_UNRETIRE, {"incident": incident_sys_id})
        return done.rowcount

    def reconcile_counts(self, suppliers: Collection[str] | None = None) -> tuple[int, int]:
        """``(active, retired)``: links re-checked in turn (``linked``, not retired), and retired links.

        Optionally only those of ``suppliers``. A count over the table: for metrics and for pacing
        now and then, not for every tick.
        """
        active = and_(links.c.state == CHECKED_STATE, links.c.retired_at.is_(None))
        statement = select(
            func.count().filter(active), func.count().filter(links.c.retired_at.is_not(None))
        ).select_from(links)
        if suppliers is not None:
            statement = statement.where(links.c.supplier.in_(list(suppliers)))
        with self._engine.connect() as conn:
            row = conn.execute(statement).one()
        return int(row[0] or 0), int(row[1] or 0)

    def waiting_checks(self, limit: int) -> int:
        """Re-checks waiting in the work queue (lane reconcile, pending), counted up to ``limit``."""
        waiting = (
            select(work.c.item_id)
            .where(work.c.lane == RECONCILE, work.c.state == PENDING)
            .limit(limit)
            .subquery()
        )
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(waiting)).scalar_one())


_CANDIDATE = select(links.c.link_id, links.c.incident_sys_id, links.c.supplier, links.c.state)
# Two statements rather than one ``ORDER BY checked_at NULLS FIRST``: PostgreSQL's index sorts
# NULLs last and could not serve that order; each of these two it reads straight off the index.
_NEVER_CHECKED = _CANDIDATE.where(links.c.retired_at.is_(None), links.c.checked_at.is_(None)).limit(
    bindparam("scan", type_=Integer)
)
_LEAST_RECENTLY_CHECKED = (
    _CANDIDATE.where(links.c.retired_at.is_(None), links.c.checked_at.is_not(None))
    # ``retired_at`` is NULL in every row taken, but PostgreSQL follows the index's order only if
    # told its first column: ``IS NULL`` does not make a column constant for its planner.
    .order_by(links.c.retired_at, links.c.checked_at, links.c.link_id)
    .limit(bindparam("scan", type_=Integer))
)


# Built once: every claim of a reopened or still open incident's poll runs it.
_RETIRED_OF_INCIDENT = and_(links.c.incident_sys_id == bindparam("incident"), links.c.retired_at.is_not(None))
_RETIRED_OF = select(links.c.link_id).where(_RETIRED_OF_INCIDENT).limit(1)
_UNRETIRE = update(links).where(_RETIRED_OF_INCIDENT).values(retired_at=None)
