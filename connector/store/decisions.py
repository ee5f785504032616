"""What the promotion rules decided, since when time conditions hold, and which clusters exist."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Insert, and_, bindparam, delete, func, select

from connector.store.db import as_utc, upsert_insert, utcnow
from connector.store.tables import clusters, condition_state, decisions

WRITTEN = ("proposed", "promoted")
IMPLICATED = "implicated"
"""Not a rule's decision: a child incident names suppliers its major incident must reach."""
"""Decision states that changed ServiceNow (what caps count)."""


@dataclass(frozen=True)
class DecisionRecord:
    """One decision and its state.

    ``pending`` (about to write), ``proposed``/``promoted`` (written), ``dry_run``, ``capped``,
    ``failed``, or ``observed`` (a rejection seen, with the material values of the time).
    """

    decision_id: int
    incident_sys_id: str
    rule: str
    action: str
    mode: str
    state: str
    material: Mapping[str, str]
    engage: tuple[str, ...]
    parent_sys_id: str | None
    at: datetime


class Decisions:
    """The decision log of the promotion rules."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        incident_sys_id: str,
        rule: str,
        action: str,
        mode: str,
        state: str,
        material: Mapping[str, str],
        engage: Sequence[str] = (),
        *,
        at: datetime | None = None,
    ) -> DecisionRecord:
        """Append a decision and return it."""
        values = {
            "incident_sys_id": incident_sys_id,
            "rule": rule,
            "action": action,
            "mode": mode,
            "state": state,
            "material": dict(material),
            "engage": list(engage),
            "at": at or utcnow(),
        }
        with self._engine.begin() as conn:
            decision_id = int(conn.execute(decisions.insert().values(**values)).inserted_primary_key[0])  # type: ignore[index]
        found = self.get(decision_id)
        assert found is not None
        return found

    def settle(self, decision_id: int, state: str, parent_sys_id: str | None = None) -> None:
        """Record what became of a decision's write."""
        values: dict[str, Any] = {"state": state}
        if parent_sys_id is not None:
            values["parent_sys_id"] = parent_sys_id
        with self._engine.begin() as conn:
            conn.execute(decisions.update().where(decisions.c.decision_id == decision_id).values(**values))

    def get(self, decision_id: int) -> DecisionRecord | None:
        """One decision by id."""
        return self._one(decisions.c.decision_id == decision_id)

    def latest(self, incident_sys_id: str, states: Sequence[str] | None = None) -> DecisionRecord | None:
        """The newest decision for an incident (optionally among ``states``)."""
        condition = decisions.c.incident_sys_id == incident_sys_id
        if states is not None:
            condition = and_(condition, decisions.c.state.in_(states))
        with self._engine.connect() as conn:
            row = conn.execute(
                select(decisions).where(condition).order_by(decisions.c.decision_id.desc()).limit(1)
            ).first()
        return _decision(row) if row else None

    def pending(self) -> list[DecisionRecord]:
        """Decisions whose write may or may not have happened (after a crash or a lost answer)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(decisions).where(decisions.c.state == "pending").order_by(decisions.c.decision_id)
            ).all()
        return [_decision(row) for row in rows]

    def written_since(self, since: datetime, rule: str | None = None) -> int:
        """How many decisions changed ServiceNow since ``since`` (for the caps)."""
        condition = and_(decisions.c.state.in_(WRITTEN), decisions.c.at >= since)
        if rule is not None:
            condition = and_(condition, decisions.c.rule == rule)
        with self._engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(decisions).where(condition)).scalar_one()
            )

    def engaged(self, incident_sys_id: str) -> set[str]:
        """Suppliers the written decisions for an incident engaged."""
        condition = and_(decisions.c.incident_sys_id == incident_sys_id, decisions.c.state.in_(WRITTEN))
        with self._engine.connect() as conn:
            rows = conn.execute(select(decisions.c.engage).where(condition)).scalars()
            return {supplier for engage in rows for supplier in (engage or [])}

    def implicate(self, incident_sys_id: str, child_sys_id: str, suppliers: Sequence[str]) -> None:
        """Record that a child incident implicates ``suppliers`` in its major incident."""
        self.record(
            incident_sys_id, "-", "implicate", "-", IMPLICATED, {"child": child_sys_id}, sorted(suppliers)
        )

    def implicated(self, incident_sys_id: str) -> set[str]:
        """Suppliers the incident's children implicate (routed by a child's own fields)."""
        condition = and_(decisions.c.incident_sys_id == incident_sys_id, decisions.c.state == IMPLICATED)
        with self._engine.connect() as conn:
            rows = conn.execute(select(decisions.c.engage).where(condition)).scalars()
            return {supplier for engage in rows for supplier in (engage or [])}

    def of_incident(self, incident_sys_id: str) -> list[DecisionRecord]:
        """Every decision about an incident, oldest first."""
        query = (
            select(decisions)
            .where(decisions.c.incident_sys_id == incident_sys_id)
            .order_by(decisions.c.decision_id)
        )
        with self._engine.connect() as conn:
            return [_decision(row) for row in conn.execute(query).all()]

    def _one(self, condition: Any) -> DecisionRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(decisions).where(condition)).first()
        return _decision(row) if row else None


def _decision(row: Any) -> DecisionRecord:
    return DecisionRecord(
        row.decision_id,
        row.incident_sys_id,
        row.rule,
        row.action,
        row.mode,
        row.state,
        dict(row.material or {}),
        tuple(row.engage or ()),
        row.parent_sys_id,
        as_utc(row.at) or utcnow(),
    )


class ConditionState:
    """Since when each time-qualified condition has held for an incident, without a break."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def all_for(self, incident_sys_id: str) -> dict[str, datetime]:
        """Key -> since, for one incident."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(condition_state).where(condition_state.c.incident_sys_id == incident_sys_id)
            ).all()
        return {row.key: as_utc(row.since) or utcnow() for row in rows}

    def hold(self, incident_sys_id: str, key: str, since: datetime) -> None:
        """The condition holds; remember since when unless it already did."""
        self.record([(incident_sys_id, key, since)])

    def broken(self, incident_sys_id: str, key: str) -> None:
        """The condition stopped holding: forget it."""
        self.record([(incident_sys_id, key, None)])

    def record(self, states: Iterable[tuple[str, str, datetime | None]]) -> None:
        """Many :meth:`hold` (a ``since``) and :meth:`broken` (``None``) in one transaction.

        A poll that found hundreds of new versions writes their conditions at once, not each in
        a transaction of its own queued behind the workers' writes.
        """
        holds, breaks = [], []
        for incident_sys_id, key, since in states:
            if since is None:
                breaks.append({"sys": incident_sys_id, "k": key})
            else:
                holds.append({"incident_sys_id": incident_sys_id, "key": key, "since": since})
        if not holds and not breaks:
            return
        with self._engine.begin() as conn:
            if breaks:
                conn.execute(_BREAK, breaks)
            if holds:
                conn.execute(self._hold, holds)

    @functools.cached_property
    def _hold(self) -> Insert:
        """``INSERT … ON CONFLICT DO NOTHING``: one statement, the first ``since`` stays."""
        return upsert_insert(self._engine, condition_state).on_conflict_do_nothing(
            index_elements=[condition_state.c.incident_sys_id, condition_state.c.key]
        )


_BREAK = delete(condition_state).where(
    condition_state.c.incident_sys_id == bindparam("sys"), condition_state.c.key == bindparam("k")
)
"""Forget one condition of one incident (parameters ``sys`` and ``k``)."""


@dataclass(frozen=True)
class ClusterRecord:
    """A cluster of incidents sharing a value, gathered under one major incident."""

    cluster_id: int
    rule: str
    value: str
    major_sys_id: str
    created_at: datetime


class Clusters:
    """The clusters the rules formed."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def latest(self, rule: str, value: str) -> ClusterRecord | None:
        """The newest cluster of ``rule`` on ``value``."""
        condition = and_(clusters.c.rule == rule, clusters.c.value == value)
        with self._engine.connect() as conn:
            row = conn.execute(
                select(clusters).where(condition).order_by(clusters.c.cluster_id.desc()).limit(1)
            ).first()
        if row is None:
            return None
        return ClusterRecord(
            row.cluster_id, row.rule, row.value, row.major_sys_id, as_utc(row.created_at) or utcnow()
        )

    def add(self, rule: str, value: str, major_sys_id: str) -> None:
        """Record a new cluster and its major incident."""
        with self._engine.begin() as conn:
            conn.execute(
                clusters.insert().values(
                    rule=rule, value=value, major_sys_id=major_sys_id, created_at=utcnow()
                )
            )
