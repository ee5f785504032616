"""The work queue's statements, built once (see :mod:`connector.store.queue`).

A worker runs them for every claim and every intent, and building a statement (its cache key
above all) costs SQLAlchemy several times what running a built one does. Each takes its values
as bound parameters named after the columns they stand for (``now`` for the time of the call).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, and_, bindparam, delete, exists, or_, select, update

from connector.store.tables import claims, work
from connector.store.workitems import DEAD, PENDING

NOW: BindParameter[datetime] = bindparam("now")
CLAIMED = exists().where(claims.c.incident_sys_id == work.c.incident_sys_id, claims.c.until > NOW)
"""The work row's incident has a live claim."""
PENDING_DUE = and_(work.c.state == PENDING, work.c.due_at <= NOW)
LETTER_DUE = and_(work.c.state == DEAD, or_(work.c.due_at <= NOW, work.c.manual.is_(True)))


def candidate(due: Any) -> Any:
    """A lane's first due item whose incident nobody holds (``:lane``, ``:now``), its row locked where that exists.

    ``:passed``: incidents this claim found taken by others meanwhile, not to be read again.
    """
    return (
        select(work.c.incident_sys_id)
        .where(
            work.c.lane == bindparam("lane"),
            due,
            ~CLAIMED,
            work.c.incident_sys_id.not_in(bindparam("passed", expanding=True)),
        )
        .order_by(work.c.due_at, work.c.item_id)
        .limit(1)
        .with_for_update(skip_locked=True, of=work)
    )


PENDING_CANDIDATE = candidate(PENDING_DUE)
LETTER_CANDIDATE = candidate(LETTER_DUE)
DUE_OF_INCIDENT = (
    select(work)
    .where(work.c.incident_sys_id == bindparam("incident_sys_id"), or_(PENDING_DUE, LETTER_DUE))
    .order_by(work.c.item_id)
)
UNCLAIM = delete(claims).where(claims.c.incident_sys_id == bindparam("incident_sys_id"))
RELEASE = delete(claims).where(
    claims.c.incident_sys_id == bindparam("incident_sys_id"), claims.c.token == bindparam("token")
)
CLAIM_TOKEN = (
    select(claims.c.token)
    .where(claims.c.incident_sys_id == bindparam("incident_sys_id"))
    .with_for_update(read=True)
)
LOCK_ITEMS = (
    select(work.c.item_id)
    .where(work.c.item_id.in_(bindparam("item_ids", expanding=True)))
    .order_by(work.c.entity)
    .with_for_update()
)
REMOVE_PENDING = delete(work).where(
    work.c.item_id == bindparam("item_id"), work.c.version == bindparam("version"), work.c.state == PENDING
)
DETAILS_OF_INCIDENT = select(work.c.item_id, work.c.detail).where(
    work.c.incident_sys_id == bindparam("incident_sys_id"), work.c.state.in_((PENDING, DEAD))
)
SET_DETAIL = update(work).where(work.c.item_id == bindparam("id")).values(detail=bindparam("detail"))
ITEM_OF_ENTITY = select(work).where(work.c.entity == bindparam("entity"))
