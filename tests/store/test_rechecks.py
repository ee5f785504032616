"""The reconciler's link queries (connector/store/rechecks.py), on SQLite and on PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, text

from connector.store import Store
from connector.store.queue import BULK, RECONCILE, Enqueue
from connector.store.rechecks import _LEAST_RECENTLY_CHECKED, _NEVER_CHECKED
from connector.store.tables import links

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def link(store: Store, incident_sys_id: str, supplier: str = "acme") -> int:
    claimed, _ = store.links.claim(incident_sys_id, supplier, f"{incident_sys_id}@test")
    store.links.confirm(claimed.link_id, f"id-{incident_sys_id}", f"KEY-{incident_sys_id}", "https://x")
    return claimed.link_id


def incidents(store: Store, now: datetime, count: int, suppliers: tuple[str, ...] = ("acme",)) -> list[str]:
    return [r.incident_sys_id for r in store.links.take_for_check(now, count, suppliers)]


def test_never_checked_first_then_least_recently_checked(store: Store) -> None:
    for n in range(5):
        link(store, f"inc{n}")
    first = incidents(store, T0, 2)
    second = incidents(store, T0 + timedelta(seconds=1), 2)
    third = incidents(store, T0 + timedelta(seconds=2), 2)
    assert sorted(first + second + third[:1]) == [f"inc{n}" for n in range(5)]
    assert third[1:] == first[:1]  # the round starts over with the oldest check
    assert incidents(store, T0 + timedelta(seconds=3), 3) == [*first[1:], *second]


def test_two_calls_at_one_time_never_take_the_same_link(store: Store) -> None:
    for n in range(5):
        link(store, f"inc{n}")
    first, second, third = (incidents(store, T0, 2) for _ in range(3))
    assert len(first) == len(second) == 2
    assert len(third) == 1
    assert len(set(first + second + third)) == 5
    assert incidents(store, T0, 2) == []


def test_retire_and_unretire(store: Store) -> None:
    acme = link(store, "inc1")
    link(store, "inc1", "globex")
    link(store, "inc2")
    assert store.links.retire(acme, T0)
    assert not store.links.retire(acme, T0 + timedelta(days=1))
    assert store.links.reconcile_counts() == (2, 1)
    assert store.links.reconcile_counts(["acme"]) == (1, 1)
    assert incidents(store, T0, 5, ("acme", "globex")) == ["inc1", "inc2"]  # inc1 at globex only
    with store.transaction() as tx:
        assert store.links.unretire("inc1", conn=tx) == 1
    assert store.links.reconcile_counts() == (3, 0)
    assert [(r.incident_sys_id, r.supplier) for r in store.links.take_for_check(T0, 5, ["acme"])] == [
        ("inc1", "acme")
    ]


def test_waiting_checks_counts_pending_rechecks_only_up_to_a_limit(store: Store) -> None:
    store.queue.enqueue([Enqueue(f"inc{n}", "acme", "reconcile", lane=RECONCILE) for n in range(5)], T0)
    store.queue.enqueue([Enqueue(f"bulk{n}", "acme", "backfill", lane=BULK) for n in range(5)], T0)
    assert store.links.waiting_checks(100) == 5
    assert store.links.waiting_checks(3) == 3
    claim = store.queue.claim("worker", T0, timedelta(minutes=1), lanes=(RECONCILE,))
    assert claim is not None
    failed = store.queue.fail(
        claim.items[0], "Boom", "boom", T0, base_delay=timedelta(seconds=1), max_delay=timedelta(minutes=1)
    )
    assert failed.state == "dead"
    assert store.links.waiting_checks(100) == 4  # a dead letter is not waiting to be re-checked


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_a_link_locked_by_one_call_is_skipped_by_another(store: Store, dialect: str) -> None:
    """Two instances' reconcilers during a handover: the rows one holds are skipped, not waited for."""
    if store.dialect != dialect:
        pytest.skip("SQLite has one writer: a second call waits for the first to commit")
    for n in range(4):
        link(store, f"inc{n}")
    with store.transaction() as tx:
        held = [r.incident_sys_id for r in store.links.take_for_check(T0, 2, ["acme"], conn=tx)]
        meanwhile = incidents(store, T0, 4)
    assert len(held) == 2
    assert sorted(held + meanwhile) == [f"inc{n}" for n in range(4)]


def test_the_next_links_are_read_off_the_index(store: Store) -> None:
    """Neither query sorts or scans the table: a tick costs the same with any number of links.

    As in a running store: most links checked at some time, a few new ones never.
    """
    rows = [
        {
            "incident_sys_id": f"inc{n:05}",
            "supplier": "acme",
            "state": "linked",
            "stamp": f"s{n}",
            "created_at": T0,
            "updated_at": T0,
            "checked_at": T0 + timedelta(seconds=n % 997) if n % 5000 else None,
        }
        for n in range(20_000)
    ]
    with store.transaction() as tx:
        tx.execute(insert(links), rows)
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.execute(text("ANALYZE links"))
            prefix = "EXPLAIN "
        else:
            conn.execute(text("ANALYZE"))
            prefix = "EXPLAIN QUERY PLAN "
        for statement in (_NEVER_CHECKED, _LEAST_RECENTLY_CHECKED):
            compiled = statement.params(scan=8).compile(store.engine, compile_kwargs={"literal_binds": True})
            plan = "\n".join(
                str(row[-1]) for row in conn.execute(text(prefix + str(compiled).replace("%%", "%")))
            )
            assert "ix_links_reconcile" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # SQLite: no sort
            assert "Seq Scan" not in plan, plan
            assert "\n  ->  Sort" not in plan and not plan.startswith("Sort"), plan
