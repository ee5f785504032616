"""The role keeper: instances share the singleton roles, and a stopped one's roles pass to another.

Two clocks are faked: the lease clock (the database's, injected into :class:`Leases`) and each
keeper's own clock (its monotonic uptime), which is what ``held`` trusts.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from connector.runtime.lease import this_process
from connector.runtime.roles import RoleChange, RoleKeeper
from connector.store import Store
from connector.store.leases import RECONCILER_ROLE, SERVICENOW_ROLE, Holder, Leases, supplier_role

TTL = timedelta(seconds=15)
EVERY = timedelta(seconds=5)
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
ROLES = (SERVICENOW_ROLE, supplier_role("acme"), RECONCILER_ROLE)


class LeaseClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Uptime:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


class Instance:
    """One connector instance's keeper, with its own clock and the changes it heard."""

    def __init__(self, leases: Leases, host: str, roles: tuple[str, ...] = ROLES) -> None:
        self.uptime = Uptime()
        self.changes: list[RoleChange] = []
        self.keeper = RoleKeeper(
            leases,
            Holder("run", host, 100, T0, ""),
            roles,
            TTL,
            EVERY,
            clock=self.uptime,
            on_change=self.changes.append,
        )

    def heard(self) -> list[tuple[str, bool, str]]:
        heard = [(change.role, change.held, change.reason) for change in self.changes]
        self.changes.clear()
        return heard


def gauge(role: str) -> float | None:
    return REGISTRY.get_sample_value("mim_role_held", {"role": role})


def test_the_first_instance_takes_every_role_and_the_second_none(store: Store) -> None:
    leases = Leases(store.engine, LeaseClock())
    first, second = Instance(leases, "host-a"), Instance(leases, "host-b")
    assert first.keeper.holding() == {} and gauge(SERVICENOW_ROLE) == 0
    first.keeper.acquire_now()
    second.keeper.acquire_now()
    assert set(first.keeper.holding()) == set(ROLES)
    assert first.heard() == [(role, True, "taken") for role in ROLES]
    assert second.keeper.holding() == {} and second.heard() == []
    assert all(second.keeper.held(role) is None for role in ROLES)
    for role in ROLES:
        lease = leases.get(role)
        assert lease is not None and lease.holder.host == "host-a" and first.keeper.held(role) == lease


def test_a_clean_stop_hands_every_role_to_the_other_instance_at_its_next_tick(store: Store) -> None:
    leases = Leases(store.engine, LeaseClock())
    first, second = Instance(leases, "host-a"), Instance(leases, "host-b")
    first.keeper.acquire_now()
    first.heard()
    first.keeper.release_all()
    assert first.keeper.holding() == {}
    assert first.heard() == [(role, False, "released") for role in ROLES]
    second.keeper.acquire_now()
    assert {role: lease.epoch for role, lease in second.keeper.holding().items()} == dict.fromkeys(ROLES, 2)
    assert second.heard() == [(role, True, "taken") for role in ROLES]


def test_a_silent_instance_stops_holding_by_its_own_clock_and_its_roles_pass_once_they_expire(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    lease_clock = LeaseClock()
    leases = Leases(store.engine, lease_clock)
    paused, other = Instance(leases, "host-a"), Instance(leases, "host-b")
    paused.keeper.acquire_now()
    paused.heard()
    # `paused` renews no more (SIGSTOP, a partition): its roles expire by the lease clock...
    lease_clock.now = T0 + TTL - timedelta(seconds=1)
    other.keeper.acquire_now()
    assert other.keeper.holding() == {}, "not before they expire"
    paused.uptime.seconds += TTL.total_seconds() - 1
    assert set(paused.keeper.holding()) == set(ROLES)
    paused.uptime.seconds += 1
    assert paused.keeper.holding() == {}, "...and by its own clock it no longer acts as holder"
    assert paused.keeper.held(SERVICENOW_ROLE) is None
    lease_clock.now = T0 + TTL
    other.keeper.acquire_now()
    assert {role: lease.epoch for role, lease in other.keeper.holding().items()} == dict.fromkeys(ROLES, 2)
    # When it resumes, its renewals meet the new epoch: it drops the roles, once, without dying.
    with caplog.at_level(logging.WARNING, logger="connector.runtime.roles"):
        paused.keeper.acquire_now()
        paused.keeper.acquire_now()
    assert paused.keeper.holding() == {}
    taken_over = [record.getMessage() for record in caplog.records if "taken over" in record.getMessage()]
    assert len(taken_over) == 3
    assert taken_over[0].startswith(
        "role role:servicenow taken over by mim-connector run on host-b (pid 100, started 2026-11-22 10:00:00Z) "
        "(epoch 2)"
    )
    assert [(role, held, reason.split(" (pid")[0]) for role, held, reason in paused.heard()] == [
        (role, False, "taken over by mim-connector run on host-b") for role in ROLES
    ]
    assert set(other.keeper.holding()) == set(ROLES)


def test_a_role_held_through_a_store_outage_counts_until_its_ttl_and_is_kept_if_nobody_took_it(
    store: Store,
) -> None:
    leases = Leases(store.engine, LeaseClock())
    solo = Instance(leases, "host-a", (SERVICENOW_ROLE,))
    solo.keeper.acquire_now()
    solo.heard()
    epoch = solo.keeper.holding()[SERVICENOW_ROLE].epoch
    with store.engine.begin() as conn:  # every statement on the leases fails from here on
        conn.execute(text("ALTER TABLE leases RENAME TO leases_away"))
    try:
        solo.uptime.seconds += EVERY.total_seconds()
        solo.keeper.acquire_now()
        assert solo.keeper.held(SERVICENOW_ROLE) is not None, "a failed renewal is not a lost role"
        assert solo.heard() == []
        solo.uptime.seconds += TTL.total_seconds()
        assert solo.keeper.held(SERVICENOW_ROLE) is None, "past its ttl, nothing proves it is still ours"
        solo.keeper.acquire_now()
        assert solo.heard() == [(SERVICENOW_ROLE, False, "lapsed")]
        assert gauge(SERVICENOW_ROLE) == 0
    finally:
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE leases_away RENAME TO leases"))
    solo.keeper.acquire_now()
    assert solo.heard() == [(SERVICENOW_ROLE, True, "renewed after a lapse")]
    lease = solo.keeper.held(SERVICENOW_ROLE)
    assert lease is not None and lease.epoch == epoch and gauge(SERVICENOW_ROLE) == 1


def test_a_reload_takes_an_added_supplier_and_releases_a_removed_one(store: Store) -> None:
    leases = Leases(store.engine, LeaseClock())
    first, second = Instance(leases, "host-a"), Instance(leases, "host-b")
    first.keeper.acquire_now()
    second.keeper.acquire_now()
    first.heard()
    globex = supplier_role("globex")
    first.keeper.set_roles((SERVICENOW_ROLE, RECONCILER_ROLE, globex))
    assert first.heard() == [(supplier_role("acme"), False, "no longer configured")]
    assert gauge(supplier_role("acme")) is None, "a role no longer configured has no gauge"
    assert gauge(globex) == 0
    first.keeper.acquire_now()
    assert first.heard() == [(globex, True, "taken")] and gauge(globex) == 1
    second.keeper.acquire_now()
    assert set(second.keeper.holding()) == {supplier_role("acme")}, "released at once, taken by the other"


def test_the_keepers_thread_takes_the_roles_another_instance_released(store: Store) -> None:
    first = RoleKeeper(store.leases, Holder("run", "host-a", 1, T0, ""), ROLES, TTL, EVERY)
    second = RoleKeeper(
        store.leases, Holder("run", "host-b", 2, T0, ""), ROLES, TTL, timedelta(milliseconds=20)
    )
    first.acquire_now()
    second.start()
    try:
        first.release_all()
        deadline = time.monotonic() + 30
        while set(second.holding()) != set(ROLES):
            assert time.monotonic() < deadline, "the second keeper's thread never took the roles"
            time.sleep(0.02)
    finally:
        second.release_all()
    assert second.holding() == {}
    for role in ROLES:
        lease = store.leases.get(role)
        assert lease is not None and lease.epoch == 2 and lease.expires_at <= store.leases.now()


def test_a_role_held_by_a_dead_process_on_this_machine_is_taken_at_once(store: Store) -> None:
    me = this_process("run")
    assert me.process_key, "this machine exposes /proc"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # gone: a supervisor restarts the daemon it ran after a SIGKILL
    boot, namespace, _ticks = me.process_key.split("|")
    dead = Holder("run", me.host, child.pid, me.started_at, f"{boot}|{namespace}|1")
    assert store.leases.try_acquire(dead, TTL, name=SERVICENOW_ROLE) is not None
    keeper = RoleKeeper(store.leases, me, (SERVICENOW_ROLE,), TTL, EVERY)
    keeper.acquire_now()
    lease = keeper.held(SERVICENOW_ROLE)
    assert lease is not None and lease.epoch == 2, "taken before the dead holder's lease expired"
    keeper.release_all()
