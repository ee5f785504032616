"""What ``state show`` says of the runtime: live instances with their roles, other role holders, the queue."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert

from connector.commands.state_runtime import runtime_state, runtime_text
from connector.store import Store
from connector.store.stats import queue_depth
from connector.store.tables import instances, leases, work

TTL = timedelta(seconds=45)


def lease(store: Store, name: str, host: str, pid: int, expires_in: float, command: str = "run") -> None:
    now = store.instances.now()
    with store.transaction() as conn:
        conn.execute(
            insert(leases).values(
                name=name,
                epoch=3,
                command=command,
                host=host,
                pid=pid,
                process_started_at=now,
                process_key="",
                acquired_at=now,
                renewed_at=now,
                expires_at=now + timedelta(seconds=expires_in),
            )
        )


def item(store: Store, entity: str, state: str, lane: int, due_in: float) -> None:
    now = store.instances.now()
    with store.transaction() as conn:
        conn.execute(
            insert(work).values(
                entity=entity,
                incident_sys_id=entity.split(":")[0],
                supplier=entity.split(":")[1],
                state=state,
                lane=lane,
                reasons=["test"],
                due_at=now + timedelta(seconds=due_in),
                enqueued_at=now,
                version=1,
                detail={},
            )
        )


def test_the_queue_is_counted_per_lane_with_the_age_of_its_oldest_due_item(store: Store) -> None:
    item(store, "s1:acme", "pending", 0, -120)
    item(store, "s2:acme", "pending", 0, -10)
    item(store, "s3:acme", "pending", 0, 600)
    item(store, "s4:acme", "pending", 1, 600)
    item(store, "s5:acme", "dead", 1, -3000)
    item(store, "s6:acme", "resolved", 2, -3000)
    item(store, "s7:acme", "pending", 7, -5)
    depths = {lane.name: lane for lane in queue_depth(store.engine, store.instances.now())}
    assert list(depths) == ["new", "bulk", "reconcile", "lane 7"]
    new, bulk, reconcile = depths["new"], depths["bulk"], depths["reconcile"]
    assert (new.pending, new.due, new.dead) == (3, 2, 0)
    assert new.oldest_due_seconds is not None and 120 <= new.oldest_due_seconds < 150
    assert (bulk.pending, bulk.due, bulk.oldest_due_seconds, bulk.dead) == (1, 0, None, 1)
    assert (reconcile.pending, reconcile.due, reconcile.oldest_due_seconds, reconcile.dead) == (0, 0, None, 0)


def test_each_live_instance_is_shown_with_the_roles_its_process_holds(store: Store) -> None:
    store.instances.register("host-a-11-x", "host-a", 11, 4)
    store.instances.register("host-b-22-y", "host-b", 22, 8)
    lease(store, "role:servicenow", "host-a", 11, 15)
    lease(store, "role:jira:acme", "host-a", 11, 15)
    lease(store, "role:reconciler", "host-b", 22, 15)
    lease(store, "role:jira:globex", "host-b", 22, -5)  # expired: held by nobody
    lease(store, "daemon", "host-c", 33, 30, command="sync --once")
    lease(store, "elsewhere", "host-a", 11, 30)  # not a role
    item(store, "s1:acme", "pending", 0, -60)

    state = runtime_state(store, TTL)
    instances: list[dict[str, Any]] = state["instances"]
    assert [(i["host"], i["pid"], i["workers"], i["roles"]) for i in instances] == [
        ("host-a", 11, 4, ["role:jira:acme", "role:servicenow"]),
        ("host-b", 22, 8, ["role:reconciler"]),
    ]
    assert all(0 <= i["seen_seconds_ago"] < 30 for i in instances)
    assert datetime.fromisoformat(instances[0]["started_at"]).tzinfo is not None
    (other,) = state["other_roles"]
    assert (other["name"], other["command"], other["host"], other["pid"], other["epoch"]) == (
        "daemon",
        "sync --once",
        "host-c",
        33,
        3,
    )
    assert state["queue"]["new"]["pending"] == 1 and state["queue"]["new"]["oldest_due_seconds"] >= 60

    lines = runtime_text(state).splitlines()
    assert lines[0] == "instances: 2"
    assert lines[1].startswith("  host-a pid 11: started ")
    assert lines[1].endswith(", 4 workers, roles: role:jira:acme, role:servicenow")
    assert lines[2].endswith(", 8 workers, roles: role:reconciler")
    assert lines[3].startswith(
        "  daemon held by mim-connector sync --once on host-c (pid 33, not a live instance) for "
    )
    assert lines[4].startswith("queue new: 1 pending (1 due, oldest ") and lines[4].endswith(
        "s overdue), 0 dead"
    )
    assert lines[5:] == [], "lanes with nothing in them are not shown"


def test_an_empty_store_shows_no_instances_and_an_empty_queue(store: Store) -> None:
    state = runtime_state(store, TTL)
    assert state["instances"] == [] and state["other_roles"] == []
    assert runtime_text(state).splitlines() == ["instances: none", "queue: empty"]


def test_a_killed_instance_is_no_longer_shown(store: Store) -> None:
    store.instances.register("gone", "host-a", 11, 4)
    now = store.instances.now()
    with store.transaction() as conn:
        conn.execute(instances.update().values(seen_at=now - TTL - timedelta(seconds=1)))
    assert runtime_state(store, TTL)["instances"] == []
