"""The rules' cluster window keeps each incident as a few values, not its snapshot."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

from connector.core.models import Incident
from connector.store import Store
from connector.sync.rule_context import RecentIncidents


def _snapshot(index: int) -> dict[str, str]:
    fields = {f"u_field_{k}": f"value {k} of incident {index}" for k in range(35)}
    return {**fields, "cmdb_ci": f"ci-{index % 4}", "opened_at": f"2026-11-22 09:{index % 60:02d}:00"}


def test_the_window_keeps_values_not_snapshots_and_reads_members_on_demand(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        updated = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
        for index in range(400):
            snapshot = _snapshot(index)
            store.incidents.remember(
                f"{index:032d}", f"INC{index}", 1, updated, snapshot, opened_at=snapshot["opened_at"]
            )
        records = store.incidents.opened_since(datetime(2026, 11, 22, 9, 0, tzinfo=UTC))
        fresh = Incident(f"{0:032d}", "INC0", 2, updated, {**_snapshot(0), "cmdb_ci": "ci-9"})

        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            recent = RecentIncidents(store, {fresh.sys_id: fresh}, records, ["cmdb_ci"])
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()

        assert len(recent) == 400
        assert kept < 400 * 500, f"{kept / 400:.0f} bytes per incident in the window"
        sharing = {sys_id for sys_id, _ in recent.sharing("cmdb_ci", "ci-0")}
        assert sharing == {f"{index:032d}" for index in range(4, 400, 4)}, "this cycle's version wins"
        assert recent.sharing("cmdb_ci", "ci-9") == [(fresh.sys_id, fresh.get("opened_at"))]
        assert {sys_id for sys_id, _ in recent.sharing("u_field_1", "value 1 of incident 8")} == {f"{8:032d}"}
        member = recent.get(f"{8:032d}")
        assert member is not None and member.get("u_field_3") == "value 3 of incident 8"
        assert recent.get(fresh.sys_id) is fresh
        assert recent.get("not-in-the-window") is None
    finally:
        store.close()


def test_the_window_kept_between_cycles_takes_new_versions_and_lets_go_of_old_ones(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        updated = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

        def incident(index: int, ci: str, opened: str) -> Incident:
            return Incident(f"{index:032d}", f"INC{index}", 1, updated, {"cmdb_ci": ci, "opened_at": opened})

        recent = RecentIncidents(store, {}, (), ["cmdb_ci"])
        recent.take({i.sys_id: i for i in (incident(1, "db", "2026-11-22 09:00:00"), incident(2, "db", ""))})
        later = incident(3, "db", "2026-11-22 09:40:00")
        recent.take({later.sys_id: later})
        assert len(recent) == 3 and recent.fresh == {later.sys_id: later}, "last cycle's versions stay known"
        moved = incident(1, "web", "2026-11-22 09:00:00")
        recent.take({moved.sys_id: moved})
        assert sorted(sys_id for sys_id, _ in recent.sharing("cmdb_ci", "db")) == [f"{2:032d}", f"{3:032d}"]
        recent.forget_opened_before("2026-11-22 09:30:00")
        assert [sys_id for sys_id, _ in recent.sharing("cmdb_ci", "db")] == [f"{3:032d}"]
        assert recent.sharing("cmdb_ci", "web") == [], "opened before the window's start: gone"
    finally:
        store.close()
