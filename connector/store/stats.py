"""What the state store says was synced, in counts: read-only queries for the live view and the summary.

Every figure counts settled work only (a comment ``done`` in the ledger, a decision written, a
link confirmed), so it matches what the other side holds. Counts are over the whole store: with
a fresh store (the demo) that is one run; a long-lived store counts since it was created.

Also the runtime's own state for ``state show``: the work queue's depth per lane and the roles held.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Table, and_, func, or_, select

from connector.store.db import as_utc
from connector.store.decisions import WRITTEN
from connector.store.tables import audit, comments, decisions, incidents, leases, links, work

STATUS_SOURCE_PREFIX = "status:"
"""The comment ledger keys a mirrored comment by the id of its source (a Jira comment id, a
journal entry's sys_id) and every other note by ``<kind>:…``; a supplier status change written
back is ``status:…``."""


@dataclass(frozen=True)
class SyncStats:
    """Counts of what was synced, each over settled work only."""

    incidents: int = 0
    """Incidents the connector has processed at least one version of."""
    issues: Mapping[str, int] = field(default_factory=dict)
    """Supplier -> issues created and linked there."""
    proposed: int = 0
    promoted: int = 0
    children: int = 0
    """Incidents the rules linked under a major incident."""
    capped: int = 0
    """Decisions held back by a guardrail (should stay 0)."""
    comments_out: int = 0
    """ServiceNow journal entries mirrored as supplier comments."""
    comments_in: int = 0
    """Supplier comments mirrored into incidents."""
    status_changes_in: int = 0
    """Supplier status changes written back to incidents."""
    dead_letters: int = 0
    """Entities (incident x supplier) held in the dead-letter queue now."""

    @property
    def issues_total(self) -> int:
        """Issues across every supplier."""
        return sum(self.issues.values())


def sync_stats(engine: Engine) -> SyncStats:
    """Read the current counts (a handful of indexed ``COUNT`` queries)."""
    with engine.connect() as conn:

        def count(table: Table, condition: ColumnElement[bool] | None = None) -> int:
            query = select(func.count()).select_from(table)
            if condition is not None:
                query = query.where(condition)
            return int(conn.execute(query).scalar_one())

        issues = {
            str(supplier): int(number)
            for supplier, number in conn.execute(
                select(links.c.supplier, func.count())
                .where(links.c.state == "linked")
                .group_by(links.c.supplier)
                .order_by(links.c.supplier)
            )
        }
        settled = comments.c.state == "done"
        is_comment = ~comments.c.source_id.contains(":", autoescape=True)
        is_status = comments.c.source_id.startswith(STATUS_SOURCE_PREFIX, autoescape=True)
        children = conn.execute(
            select(func.count(func.distinct(audit.c.target))).where(
                and_(audit.c.operation == "link_child", audit.c.outcome == "done")
            )
        ).scalar_one()
        return SyncStats(
            incidents=count(incidents),
            issues=issues,
            proposed=count(decisions, decisions.c.state == "proposed"),
            promoted=count(decisions, decisions.c.state == "promoted"),
            children=int(children),
            capped=count(decisions, decisions.c.state == "capped"),
            comments_out=count(comments, and_(comments.c.direction == "out", settled, is_comment)),
            comments_in=count(comments, and_(comments.c.direction == "in", settled, is_comment)),
            status_changes_in=count(comments, and_(comments.c.direction == "in", settled, is_status)),
            dead_letters=count(work, work.c.state == "dead"),
        )


def problem_links(engine: Engine) -> tuple[int, int]:
    """Incidents whose last processed version names a problem, and how many of them are mirrored.

    Reads every incident snapshot: meant for a summary at exit, not for every cycle.
    """
    with engine.connect() as conn:
        mirrored = set(
            conn.execute(select(links.c.incident_sys_id).where(links.c.state == "linked")).scalars()
        )
        with_problem = [
            sys_id
            for sys_id, snapshot in conn.execute(select(incidents.c.sys_id, incidents.c.snapshot))
            if isinstance(snapshot, dict) and snapshot.get("problem_id")
        ]
    return len(with_problem), sum(1 for sys_id in with_problem if sys_id in mirrored)


@dataclass(frozen=True)
class MajorIncident:
    """A major incident the rules made, with every supplier issue that mirrors it or its children."""

    sys_id: str
    number: str
    """Its number, or its sys_id while the store has not read it yet (a parent just created)."""
    short_description: str
    rule: str
    decided: str
    """``proposed`` or ``promoted``: what the rule did."""
    mim_state: str
    """``major_incident_state`` as last read (a person may have accepted or rejected it since)."""
    children: tuple[str, ...]
    """Numbers of the incidents the rules linked under it."""
    issues: tuple[tuple[str, str], ...]
    """``(supplier, jira_key)`` of its own mirrors."""
    child_issues: tuple[tuple[str, str, str], ...]
    """``(child number, supplier, jira_key)`` of its children's mirrors."""


@dataclass(frozen=True)
class MajorIncidents:
    """The newest major incidents (oldest first) and how many there are in all."""

    listed: tuple[MajorIncident, ...] = ()
    total: int = 0


def major_incidents(engine: Engine, limit: int = 20) -> MajorIncidents:
    """The ``limit`` newest major incidents the rules proposed or promoted, with their issue keys.

    A major incident is the incident a written decision made major, or the parent it created
    (``create-parent``); its children are those the rules linked under it (``link_child`` done)
    and whose last processed version still names it as their parent;
    its last decision names the rule. Meant for a summary at exit (a few queries, no scan of
    incident snapshots).
    """
    with engine.connect() as conn:
        latest: dict[str, Any] = {}
        for row in conn.execute(
            select(
                decisions.c.incident_sys_id, decisions.c.parent_sys_id, decisions.c.rule, decisions.c.state
            )
            .where(decisions.c.state.in_(WRITTEN))
            .order_by(decisions.c.decision_id)
        ):
            major = row.parent_sys_id or row.incident_sys_id
            latest.pop(major, None)  # re-inserted: the dict stays ordered by each one's last decision
            latest[major] = row
        chosen = list(latest)[-limit:] if limit > 0 else []
        children: dict[str, list[str]] = {sys_id: [] for sys_id in chosen}
        for target, after in conn.execute(
            select(audit.c.target, audit.c.after)
            .where(and_(audit.c.operation == "link_child", audit.c.outcome == "done"))
            .order_by(audit.c.audit_id)
        ):
            parent = after.get("parent_incident") if isinstance(after, dict) else None
            if parent in children and target not in children[parent]:
                children[parent].append(str(target))
        numbers = [number for found in children.values() for number in found]
        child_ids: dict[str, str] = {}
        moved: set[str] = set()
        for sys_id, number, snapshot in conn.execute(
            select(incidents.c.sys_id, incidents.c.number, incidents.c.snapshot).where(
                incidents.c.number.in_(numbers)
            )
        ):
            child_ids[str(number)] = str(sys_id)
            if isinstance(snapshot, dict) and "parent_incident" in snapshot:
                moved |= {
                    f"{number}@{parent}" for parent in children if snapshot["parent_incident"] != parent
                }
        # A child the desk has since unlinked (or moved under another parent) is no longer this one's.
        children = {
            parent: [n for n in found if f"{n}@{parent}" not in moved] for parent, found in children.items()
        }
        known = {
            str(sys_id): (str(number), snapshot if isinstance(snapshot, dict) else {})
            for sys_id, number, snapshot in conn.execute(
                select(incidents.c.sys_id, incidents.c.number, incidents.c.snapshot).where(
                    incidents.c.sys_id.in_(chosen)
                )
            )
        }
        keys: dict[str, list[tuple[str, str]]] = {}
        for sys_id, supplier, jira_key in conn.execute(
            select(links.c.incident_sys_id, links.c.supplier, links.c.jira_key)
            .where(
                and_(links.c.state == "linked", links.c.incident_sys_id.in_([*chosen, *child_ids.values()]))
            )
            .order_by(links.c.supplier, links.c.link_id)
        ):
            keys.setdefault(str(sys_id), []).append((str(supplier), str(jira_key)))
    listed = []
    for sys_id in chosen:
        row, (number, snapshot) = latest[sys_id], known.get(sys_id, (sys_id, {}))
        mine = children[sys_id]
        listed.append(
            MajorIncident(
                sys_id=sys_id,
                number=number,
                short_description=str(snapshot.get("short_description") or ""),
                rule=str(row.rule),
                decided=str(row.state),
                mim_state=str(snapshot.get("major_incident_state") or ""),
                children=tuple(mine),
                issues=tuple(keys.get(sys_id, ())),
                child_issues=tuple(
                    (child, supplier, key)
                    for child in mine
                    for supplier, key in keys.get(child_ids.get(child, ""), ())
                ),
            )
        )
    return MajorIncidents(tuple(listed), len(latest))


LANES = {0: "new", 1: "bulk", 2: "reconcile"}
"""The work queue's lanes by number (the ``work.lane`` column), in the order they are served."""


@dataclass(frozen=True)
class LaneDepth:
    """One lane of the work queue now."""

    lane: int
    pending: int
    """Items waiting (due now or later)."""
    due: int
    """Pending items whose due time has come."""
    oldest_due_seconds: float | None
    """How long the oldest due item has been due (``None``: nothing is due)."""
    dead: int
    """Failed items held as dead letters."""

    @property
    def name(self) -> str:
        """``new``, ``bulk``, ``reconcile`` (or ``lane N`` for one this version does not know)."""
        return LANES.get(self.lane, f"lane {self.lane}")


def queue_depth(engine: Engine, now: datetime) -> list[LaneDepth]:
    """Each lane's pending, due and dead items and the age of its oldest due item, every known lane listed.

    ``now`` is the store's time (``Instances.now()``: the database server's clock on PostgreSQL).
    """
    with engine.connect() as conn:
        counts = {
            (int(lane), str(state)): int(number)
            for lane, state, number in conn.execute(
                select(work.c.lane, work.c.state, func.count())
                .where(work.c.state.in_(("pending", "dead")))
                .group_by(work.c.lane, work.c.state)
            )
        }
        due = {
            int(lane): (int(number), as_utc(oldest))
            for lane, number, oldest in conn.execute(
                select(work.c.lane, func.count(), func.min(work.c.due_at))
                .where(work.c.state == "pending", work.c.due_at <= now)
                .group_by(work.c.lane)
            )
        }
    lanes = sorted(set(LANES) | {lane for lane, _ in counts})
    depths = []
    for lane in lanes:
        number, oldest = due.get(lane, (0, None))
        depths.append(
            LaneDepth(
                lane=lane,
                pending=counts.get((lane, "pending"), 0),
                due=number,
                oldest_due_seconds=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
                dead=counts.get((lane, "dead"), 0),
            )
        )
    return depths


ROLE_PREFIX = "role:"
"""Leases named ``role:…`` are the singleton roles (``role:servicenow``, ``role:jira:acme``,
``role:reconciler``); the ``daemon`` lease is the one writer of a SQLite store."""


@dataclass(frozen=True)
class RoleHolder:
    """A role (a live lease) and the process holding it."""

    name: str
    epoch: int
    command: str
    host: str
    pid: int
    expires_at: datetime


def live_roles(engine: Engine, now: datetime) -> list[RoleHolder]:
    """The ``daemon`` lease and every ``role:…`` lease live at ``now`` (the store's time), by name."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(leases)
            .where(
                or_(leases.c.name == "daemon", leases.c.name.startswith(ROLE_PREFIX, autoescape=True)),
                leases.c.expires_at > now,
            )
            .order_by(leases.c.name)
        ).all()
    return [
        RoleHolder(row.name, row.epoch, row.command, row.host, row.pid, as_utc(row.expires_at) or now)
        for row in rows
    ]
