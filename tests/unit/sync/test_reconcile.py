"""The reconciler: its pace in numbers, which links each tick takes, back-pressure, retirement.

Pacing and retirement are pure; the ticks run on a real SQLite store (the link queries on
PostgreSQL too: tests/store/test_rechecks.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.config import LoadedConfig
from connector.config.connector_file import ReconcileConfig
from connector.core.vocabulary import STATE_CANCELED, STATE_CLOSED, STATE_IN_PROGRESS, STATE_RESOLVED
from connector.store import Store
from connector.store.queue import BULK, NEW, RECONCILE, Enqueue
from connector.sync.reconcile import (
    BURST_SECONDS,
    CALLS_PER_CHECK,
    WAITING_LIMIT,
    Reconciler,
    allowance,
    closed_since,
    pace,
    retirement,
)

T0 = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)
EVEN = {"servicenow": 10.0, "jira:acme": 10.0}


def run(ticks: int, every: float, **kwargs: object) -> list[int]:
    """Checks granted at each of ``ticks`` ticks ``every`` seconds apart, credit carried along."""
    carried, out = 0.0, []
    for _ in range(ticks):
        decided = allowance(elapsed_seconds=every, carried=carried, **kwargs)  # type: ignore[arg-type]
        carried = decided.carried
        out.append(decided.checks)
    return out


# --- pacing ---------------------------------------------------------------------------------------


def test_a_large_store_is_paced_by_the_budget_share() -> None:
    """100,000 links, 10 requests/s, 10 %: one check every 3 s, not 167 a second."""
    assert pace(100_000, TEN_MINUTES, 0.1, EVEN) == pytest.approx(1 / 3)
    granted = run(30, 1.0, active_links=100_000, interval=TEN_MINUTES, share=0.1, budgets_rps=EVEN)
    assert granted == [0, 0, 1] * 10


def test_a_small_store_is_paced_by_the_interval() -> None:
    """50 links in 10 minutes: one check every 12 s, whatever the budget."""
    assert pace(50, TEN_MINUTES, 0.1, EVEN) == pytest.approx(1 / 12)
    granted = run(120, 1.0, active_links=50, interval=TEN_MINUTES, share=0.1, budgets_rps=EVEN)
    assert [i for i, checks in enumerate(granted) if checks] == [11, 23, 35, 47, 59, 71, 83, 95, 107, 119]
    assert set(granted) == {0, 1}


def test_the_slowest_system_sets_the_pace() -> None:
    budgets = {"servicenow": 50.0, "jira:acme": 50.0, "jira:globex": 3.0}
    assert pace(100_000, TEN_MINUTES, 0.5, budgets) == pytest.approx(0.5 * 3.0 / CALLS_PER_CHECK)


def test_ticks_of_any_length_give_the_same_pace() -> None:
    """Credit is carried: ticks every 0.25 s, 1 s or 4 s grant the same checks over a minute."""
    settings = {"active_links": 600, "interval": TEN_MINUTES, "share": 1.0, "budgets_rps": EVEN}
    assert sum(run(240, 0.25, **settings)) == sum(run(60, 1.0, **settings)) == 60
    assert sum(run(15, 4.0, **settings)) == 60


def test_a_pause_earns_no_burst() -> None:
    """After an hour without ticks, one tick grants at most a few seconds' worth of checks."""
    decided = allowance(100_000, TEN_MINUTES, 1.0, EVEN, 3600.0, 0.0)
    assert decided.per_second == pytest.approx(10 / 3)
    assert decided.checks == math.floor(BURST_SECONDS * 10 / 3)
    slow = allowance(50, TEN_MINUTES, 0.1, EVEN, 3600.0, 0.0)
    assert (slow.checks, slow.carried) == (1, 0.0)


def test_nothing_to_check_grants_nothing() -> None:
    assert allowance(0, TEN_MINUTES, 0.1, EVEN, 60.0, 0.5).checks == 0


@given(
    links=st.integers(0, 2_000_000),
    interval_s=st.integers(1, 86_400),
    share=st.floats(0.01, 1.0),
    rps=st.lists(st.floats(0.1, 1000.0), min_size=1, max_size=4),
    ticks=st.lists(st.floats(0.0, 30.0), min_size=1, max_size=200),
)
def test_never_more_than_the_share_of_any_budget(
    links: int, interval_s: int, share: float, rps: list[float], ticks: list[float]
) -> None:
    """Over any run of ticks: checks <= pace * time, and the pace costs <= share * rps."""
    budgets = {f"system{i}": value for i, value in enumerate(rps)}
    carried, checks = 0.0, 0
    per_second = pace(links, timedelta(seconds=interval_s), share, budgets)
    for elapsed in ticks:
        decided = allowance(links, timedelta(seconds=interval_s), share, budgets, elapsed, carried)
        carried, checks = decided.carried, checks + decided.checks
    assert per_second * CALLS_PER_CHECK <= share * min(rps) * (1 + 1e-9)
    assert per_second <= links / interval_s * (1 + 1e-9)
    assert checks <= per_second * sum(ticks) * (1 + 1e-9) + 1e-6
    assert 0 <= carried <= max(1.0, per_second * BURST_SECONDS)


# --- retirement -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "closed_days_ago", "retired"),
    [
        (STATE_CLOSED, 8, True),
        (STATE_CANCELED, 8, True),
        (STATE_CLOSED, 6, False),  # not long enough
        (STATE_RESOLVED, 30, False),  # a resolved incident can still be reopened
        (STATE_IN_PROGRESS, 30, False),  # reopened
        (STATE_CLOSED, None, False),  # closed when, nobody knows
    ],
)
def test_retirement(state: str, closed_days_ago: int | None, retired: bool) -> None:
    closed_at = None if closed_days_ago is None else T0 - timedelta(days=closed_days_ago)
    assert retirement(state, closed_at, T0, timedelta(days=7)) is retired


def test_closed_since_reads_closed_at_then_resolved_at_then_the_last_change() -> None:
    both = {"closed_at": "2026-11-20 08:00:00", "resolved_at": "2026-11-19 08:00:00"}
    assert closed_since(both) == datetime(2026, 11, 20, 8, tzinfo=UTC)
    assert closed_since({"closed_at": "", "resolved_at": "2026-11-19 08:00:00"}) == datetime(
        2026, 11, 19, 8, tzinfo=UTC
    )
    assert closed_since({"sys_updated_on": "2026-11-21 08:00:00"}) == datetime(2026, 11, 21, 8, tzinfo=UTC)
    assert closed_since({"closed_at": "yesterday"}) is None


# --- ticks on a store -----------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'state.db'}", actor="test-instance")
    yield opened
    opened.close()


def link(store: Store, incident_sys_id: str, supplier: str = "acme") -> int:
    """A linked incident; returns the link id."""
    claimed, _ = store.links.claim(incident_sys_id, supplier, f"{incident_sys_id}@test")
    store.links.confirm(claimed.link_id, f"id-{incident_sys_id}", f"KEY-{incident_sys_id}", "https://x")
    return claimed.link_id


def reconciler(store: Store, loaded: LoadedConfig, **settings: object) -> Reconciler:
    """A reconciler whose checks the interval paces (share 1: the demo's 10/s budgets allow 3.3/s)."""
    reconcile = ReconcileConfig.model_validate({"interval": "10s", "share": 1.0, **settings})
    connector = loaded.connector.model_copy(update={"reconcile": reconcile})
    return Reconciler(store, dataclasses.replace(loaded, connector=connector), ["acme", "globex"])


def taken(items: list[Enqueue]) -> list[str]:
    return [item.incident_sys_id for item in items]


def test_a_tick_enqueues_the_least_recently_checked_links(store: Store, loaded: LoadedConfig) -> None:
    """20 links in 10 s: 2 checks a second, every link once per round, never-checked ones first."""
    for n in range(20):
        link(store, f"inc{n:02}")
    rec = reconciler(store, loaded)
    assert rec.tick(T0) == []  # the first tick starts the clock
    first = rec.tick(T0 + timedelta(seconds=2))
    assert first == [
        Enqueue(f"inc{n:02}", "acme", "reconcile", lane=RECONCILE, full_journal=True) for n in range(4)
    ]
    seen = taken(first)
    for second in range(4, 12, 2):
        seen += taken(rec.tick(T0 + timedelta(seconds=second)))
    assert sorted(seen) == [f"inc{n:02}" for n in range(20)]  # one round, each link once
    link(store, "inc99")  # never checked: before every link checked already
    assert taken(rec.tick(T0 + timedelta(seconds=12))) == ["inc99", "inc00", "inc01", "inc02"]
    assert taken(rec.tick(T0 + timedelta(seconds=14))) == ["inc03", "inc04", "inc05", "inc06"]


def test_two_reconcilers_ticking_at_once_take_different_links(store: Store, loaded: LoadedConfig) -> None:
    """A role handed over mid-tick: each link is still taken once."""
    for n in range(20):
        link(store, f"inc{n:02}")
    one, two = reconciler(store, loaded), reconciler(store, loaded)
    for rec in (one, two):
        rec.tick(T0)
    later = T0 + timedelta(seconds=2)
    first, second = taken(one.tick(later)), taken(two.tick(later))
    assert len(first) == len(second) == 4
    assert not set(first) & set(second)


def test_the_links_are_marked_when_taken(store: Store, loaded: LoadedConfig) -> None:
    for n in range(3):
        link(store, f"inc{n}")
    now = T0 + timedelta(seconds=5)
    picked = store.links.take_for_check(now, 2, ["acme"])
    again = store.links.take_for_check(now, 2, ["acme"])
    assert [r.incident_sys_id for r in picked] == ["inc0", "inc1"]
    assert [r.incident_sys_id for r in again] == ["inc2"]  # the two marked at ``now`` are not due
    assert store.links.take_for_check(now, 2, ["acme"]) == []
    assert [
        r.incident_sys_id for r in store.links.take_for_check(now + timedelta(seconds=1), 2, ["acme"])
    ] == [
        "inc0",
        "inc1",
    ]


def test_waiting_rechecks_hold_the_reconciler_back(store: Store, loaded: LoadedConfig) -> None:
    for n in range(40):
        link(store, f"inc{n:02}")
    rec = reconciler(store, loaded, interval="1s")  # as fast as the budget allows: 3 checks a second
    rec.tick(T0)
    waiting = [Enqueue(f"inc{n:02}", "acme", "reconcile", lane=RECONCILE) for n in range(WAITING_LIMIT + 1)]
    store.queue.enqueue(waiting, T0)
    # Fresh work does not count: only re-checks waiting hold re-checks back.
    store.queue.enqueue([Enqueue(f"new{n}", "acme", "servicenow", lane=NEW) for n in range(30)], T0)
    store.queue.enqueue([Enqueue(f"bulk{n}", "acme", "backfill", lane=BULK) for n in range(30)], T0)
    assert store.links.waiting_checks(100) == WAITING_LIMIT + 1
    assert rec.tick(T0 + timedelta(seconds=1)) == []
    assert rec.tick(T0 + timedelta(seconds=2)) == []
    claim = store.queue.claim("worker", T0, timedelta(minutes=1), lanes=(RECONCILE,))
    assert claim is not None and store.queue.complete(claim, claim.items)
    assert store.links.waiting_checks(100) == WAITING_LIMIT
    # The time held back earned nothing: the next tick grants one second's worth.
    assert len(rec.tick(T0 + timedelta(seconds=3))) == 3


def test_retired_links_are_never_taken_and_come_back_when_reopened(
    store: Store, loaded: LoadedConfig
) -> None:
    ids = {n: link(store, f"inc{n}") for n in range(4)}
    assert store.links.retire(ids[1], T0)
    assert not store.links.retire(ids[1], T0 + timedelta(days=1))  # keeps its first retirement
    assert store.links.reconcile_counts() == (3, 1)
    now = T0 + timedelta(seconds=1)
    assert {r.incident_sys_id for r in store.links.take_for_check(now, 10, ["acme"])} == {
        "inc0",
        "inc2",
        "inc3",
    }
    assert store.links.unretire("inc1") == 1
    assert store.links.unretire("inc1") == 0
    assert store.links.reconcile_counts() == (4, 0)
    later = now + timedelta(seconds=1)
    assert [r.incident_sys_id for r in store.links.take_for_check(later, 1, ["acme"])] == ["inc1"]


def test_links_not_to_check_are_passed_over_at_a_bounded_cost(store: Store, loaded: LoadedConfig) -> None:
    """Links of a disabled supplier, unlinked or being created are never taken, and do not block the line."""
    for n in range(6):
        link(store, f"off{n}", "initech")  # a supplier this reconciler does not serve
    gone = link(store, "gone")
    store.links.set_state(gone, "unlinked")
    store.links.claim("creating", "acme", "creating@test")
    link(store, "inc0")
    link(store, "inc1", "globex")
    now = T0 + timedelta(seconds=1)
    # Each call looks at no more than ``scan`` rows: the first finds nothing, but moves them back.
    assert store.links.take_for_check(now, 1, ["acme", "globex"], scan=4) == []
    picked = store.links.take_for_check(now, 2, ["acme", "globex"], scan=6)
    assert [r.incident_sys_id for r in picked] == ["inc0", "inc1"]
    assert store.links.reconcile_counts(["acme", "globex"]) == (2, 0)
    assert store.links.reconcile_counts() == (8, 0)


def test_marked_and_enqueued_in_one_transaction(store: Store, loaded: LoadedConfig) -> None:
    """A tick whose enqueue fails leaves its links unmarked: they are taken again at the next tick."""
    for n in range(20):
        link(store, f"inc{n:02}")
    rec = reconciler(store, loaded)
    rec.tick(T0)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        lost = rec.tick(T0 + timedelta(seconds=1), conn=tx)
        raise RuntimeError("the process died before the enqueue committed")
    with store.transaction() as tx:
        items = rec.tick(T0 + timedelta(seconds=2), conn=tx)
        store.queue.enqueue(items, T0 + timedelta(seconds=2), conn=tx)
    assert taken(lost) == ["inc00", "inc01"]
    assert taken(items) == ["inc00", "inc01"]
    assert store.links.waiting_checks(100) == 2
