"""``mim-connector state show`` on a store several daemons share: the instances, their roles, the queue.

The store is filled by hand (rows as the daemons write them); no sandbox is reached.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert

from connector.store import Store
from connector.store.tables import instances, leases, work

SCRIPT = str(Path(sys.executable).parent / "mim-connector")
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"


@pytest.fixture
def config(offline: Path) -> Path:
    """The shipped config, offline (see ``tests/integration/conftest.py``)."""
    return offline


def show(config: Path, *args: str) -> str:
    result = subprocess.run(
        [SCRIPT, "state", "-c", str(config), "show", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def fill(path: Path) -> None:
    """Two live daemons holding roles, one gone, and a queue with due, later and dead items."""
    store = Store.open(f"sqlite:///{path}")
    try:
        store.instances.register("host-a-11-x", "host-a", 11, 4)
        store.instances.register("host-b-22-y", "host-b", 22, 8)
        now = store.instances.now()
        store.instances.register("host-c-33-z", "host-c", 33, 2)
        with store.transaction() as conn:
            conn.execute(
                instances.update()
                .where(instances.c.instance_id == "host-c-33-z")
                .values(seen_at=now - timedelta(minutes=5))
            )
            for name, host, pid in (
                ("role:servicenow", "host-a", 11),
                ("role:jira:acme", "host-b", 22),
                ("role:reconciler", "host-b", 22),
            ):
                conn.execute(
                    insert(leases).values(
                        name=name,
                        epoch=2,
                        command="run",
                        host=host,
                        pid=pid,
                        process_started_at=now,
                        process_key="",
                        acquired_at=now,
                        renewed_at=now,
                        expires_at=now + timedelta(seconds=40),
                    )
                )
            for number, (state, lane, due_in) in enumerate(
                [
                    ("pending", 0, -90),
                    ("pending", 0, 30),
                    ("pending", 1, -5),
                    ("dead", 1, 600),
                    ("pending", 2, 60),
                ]
            ):
                conn.execute(
                    insert(work).values(
                        entity=f"s{number}:acme",
                        incident_sys_id=f"s{number}",
                        supplier="acme",
                        state=state,
                        lane=lane,
                        reasons=["poll"],
                        due_at=now + timedelta(seconds=due_in),
                        enqueued_at=now,
                        version=1,
                        detail={},
                    )
                )
    finally:
        store.close()


def test_state_show_lists_the_instances_their_roles_and_the_queue(config: Path) -> None:
    fill(config.parent.parent / "state.db")

    lines = show(config).splitlines()
    start = lines.index("instances: 2")
    assert re.fullmatch(
        rf"  host-a pid 11: started {WHEN}, seen \d+s ago, 4 workers, roles: role:servicenow",
        lines[start + 1],
    ), lines[start + 1]
    assert re.fullmatch(
        rf"  host-b pid 22: started {WHEN}, seen \d+s ago, 8 workers, roles: role:jira:acme, role:reconciler",
        lines[start + 2],
    ), lines[start + 2]
    assert not any("host-c" in line for line in lines), "an instance not seen within the lease TTL is gone"
    assert re.fullmatch(
        r"queue new: 2 pending \(1 due, oldest (9\d|1\d\d)s overdue\), 0 dead", lines[start + 3]
    )
    assert re.fullmatch(r"queue bulk: 1 pending \(1 due, oldest \d+s overdue\), 1 dead", lines[start + 4])
    assert lines[start + 5] == "queue reconcile: 1 pending (none due), 0 dead"
    assert "dead letters queued: 1" in lines, "the totals are still shown, dead letters from the queue"

    data = json.loads(show(config, "--json"))
    assert [(i["instance_id"], i["roles"]) for i in data["instances"]] == [
        ("host-a-11-x", ["role:servicenow"]),
        ("host-b-22-y", ["role:jira:acme", "role:reconciler"]),
    ]
    assert data["other_roles"] == []
    assert {lane: counts["pending"] for lane, counts in data["queue"].items()} == {
        "new": 2,
        "bulk": 1,
        "reconcile": 1,
    }
    assert data["queue"]["bulk"]["dead"] == 1 and data["queue"]["reconcile"]["oldest_due_seconds"] is None
    assert "watermarks" in data and "links" in data
