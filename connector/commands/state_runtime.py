"""The runtime part of ``state show``: the instances sharing the store, the roles they hold, the queue.

An instance is live when it was seen within the lease TTL; a role is a live lease (``daemon`` or
``role:…``), held by the process of that host and pid. A role whose holder is no live instance
(``sync --once``, or an instance killed before its lease ran out) is listed on its own. Times are
the store's (the database server's clock on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from connector.store import Store
from connector.store.stats import live_roles, queue_depth


def runtime_state(store: Store, ttl: timedelta) -> dict[str, Any]:
    """``instances`` (each live one with its roles), ``other_roles`` and ``queue`` (per lane), as JSON data."""
    now = store.instances.now()
    roles = live_roles(store.engine, now)
    listed = []
    attached: set[str] = set()
    for instance in store.instances.live(ttl):
        mine = [role.name for role in roles if (role.host, role.pid) == (instance.host, instance.pid)]
        attached |= set(mine)
        listed.append(
            {
                "instance_id": instance.instance_id,
                "host": instance.host,
                "pid": instance.pid,
                "started_at": instance.started_at.isoformat(),
                "seen_seconds_ago": round(max(0.0, (now - instance.seen_at).total_seconds()), 1),
                "workers": instance.workers,
                "roles": mine,
            }
        )
    return {
        "instances": listed,
        "other_roles": [
            {
                "name": role.name,
                "command": role.command,
                "host": role.host,
                "pid": role.pid,
                "epoch": role.epoch,
                "expires_in_seconds": round((role.expires_at - now).total_seconds(), 1),
            }
            for role in roles
            if role.name not in attached
        ],
        "queue": {
            lane.name: {
                "pending": lane.pending,
                "due": lane.due,
                "oldest_due_seconds": None
                if lane.oldest_due_seconds is None
                else round(lane.oldest_due_seconds, 1),
                "dead": lane.dead,
            }
            for lane in queue_depth(store.engine, now)
        },
    }


def runtime_text(state: Mapping[str, Any]) -> str:
    """The lines of :func:`runtime_state` for people."""
    instances = state["instances"]
    lines = ["instances: " + (str(len(instances)) if instances else "none")]
    for instance in instances:
        started = datetime.fromisoformat(instance["started_at"])
        lines.append(
            f"  {instance['host']} pid {instance['pid']}: started {started:%Y-%m-%d %H:%M:%S}Z, "
            f"seen {instance['seen_seconds_ago']:.0f}s ago, {instance['workers']} workers, "
            f"roles: {', '.join(instance['roles']) or 'none'}"
        )
    for role in state["other_roles"]:
        lines.append(
            f"  {role['name']} held by mim-connector {role['command']} on {role['host']} "
            f"(pid {role['pid']}, not a live instance) for {role['expires_in_seconds']:.0f}s more"
        )
    if not any(lane["pending"] or lane["dead"] for lane in state["queue"].values()):
        lines.append("queue: empty")
    for name, lane in state["queue"].items():
        if not (lane["pending"] or lane["dead"]):
            continue
        oldest = lane["oldest_due_seconds"]
        due = f"{lane['due']} due, oldest {oldest:.0f}s overdue" if oldest is not None else "none due"
        lines.append(f"queue {name}: {lane['pending']} pending ({due}), {lane['dead']} dead")
    return "\n".join(lines) + "\n"
