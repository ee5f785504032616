"""The instances sharing a store, and their membership: shares of every site's budget, shared 429 closures.

Two daemons are two ``Store`` objects on one database (a SQLite file, or a PostgreSQL database).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from connector.core.errors import RateLimited
from connector.http.ratelimit import Limiter
from connector.http.retry import RetryPolicy
from connector.http.transport import THROTTLE_MARGIN, HttpFailure, Transport
from connector.runtime.assembly import keep_throttles
from connector.runtime.membership import Membership, new_instance_id
from connector.store import Store
from connector.store.instances import Instances
from tests.factories import FakeClock

TTL = timedelta(seconds=45)


@pytest.fixture
def other(store_url: str) -> Iterator[Store]:
    """A second daemon's connection to the same store."""
    opened = Store.open(store_url, actor="other-instance")
    yield opened
    opened.close()


def transport(system: str, clock: FakeClock) -> Transport:
    limiter = Limiter(10.0, 10, clock=clock, sleep=clock.sleep)
    policy = RetryPolicy(attempts=1, initial=0.1, maximum=1.0, jitter=0.0)
    return Transport(system, limiter, policy=policy, sleep=clock.sleep, clock=clock)


def test_instances_register_beat_and_leave(store: Store) -> None:
    joined = store.instances.register("host-a-1-x", "host-a", 1, 4)
    store.instances.register("host-b-2-y", "host-b", 2, 8)
    live = store.instances.live(TTL)
    assert [(i.instance_id, i.host, i.pid, i.workers) for i in live] == [
        ("host-a-1-x", "host-a", 1, 4),
        ("host-b-2-y", "host-b", 2, 8),
    ]
    assert live[0] == joined and live[0].started_at.tzinfo is not None
    assert store.instances.beat("host-a-1-x", host="host-a", pid=1, workers=4)
    (again,) = [i for i in store.instances.live(TTL) if i.instance_id == "host-a-1-x"]
    assert again.seen_at >= joined.seen_at and again.started_at == joined.started_at
    store.instances.leave("host-b-2-y")
    assert [i.instance_id for i in store.instances.live(TTL)] == ["host-a-1-x"]
    store.instances.register("host-a-1-x", "host-a", 1, 16)
    assert [i.workers for i in store.instances.live(TTL)] == [16], "registering again replaces the row"


def test_a_vanished_instance_is_registered_again_by_its_beat(store: Store) -> None:
    store.instances.register("host-a-1-x", "host-a", 1, 4)
    store.instances.leave("host-a-1-x")
    assert not store.instances.beat("host-a-1-x", host="host-a", pid=1, workers=4)
    assert [i.instance_id for i in store.instances.live(TTL)] == ["host-a-1-x"]


def test_an_instance_not_seen_within_the_ttl_is_gone_and_pruned_later(store: Store) -> None:
    now = datetime(2026, 11, 22, 10, tzinfo=UTC)
    instances = Instances(store.engine, clock=lambda: now)
    instances.register("dead", "host-a", 1, 4)
    now += timedelta(seconds=30)
    instances.register("alive", "host-b", 2, 4)
    now += timedelta(seconds=20)
    assert [i.instance_id for i in instances.live(TTL)] == ["alive"], "dead was seen 50 s ago"
    assert instances.prune(timedelta(minutes=5)) == 0
    now += timedelta(seconds=260)
    assert instances.prune(timedelta(minutes=5)) == 1, "dead was seen 310 s ago, alive 280 s ago"
    now += timedelta(seconds=20)
    assert instances.prune(timedelta(minutes=5)) == 1


def test_two_memberships_share_every_budget_and_the_survivor_takes_it_back(
    store: Store, other: Store
) -> None:
    clock = FakeClock()
    first = [transport("servicenow", clock), transport("jira:acme", clock)]
    second = [transport("servicenow", clock), transport("jira:acme", clock)]
    one = Membership(store, new_instance_id("host-a", 11), 4, first, TTL, host="host-a", pid=11)
    two = Membership(other, new_instance_id("host-b", 22), 4, second, TTL, host="host-b", pid=22)

    assert [i.host for i in one.join()] == ["host-a"]
    assert [t.limiter.share for t in first] == [1.0, 1.0]
    assert len(two.join()) == 2
    assert [t.limiter.share for t in second] == [0.5, 0.5], "the newcomer takes its share at once"
    assert [t.limiter.share for t in first] == [1.0, 1.0], "the other one at its next beat"
    beat = one.beat()
    assert beat is not None and {i.host for i in beat} == {"host-a", "host-b"}
    assert [t.limiter.share for t in first] == [0.5, 0.5]
    assert [t.limiter.bucket.rate for t in first] == [5.0, 5.0]
    assert REGISTRY.get_sample_value("mim_instances") == 2

    two.leave()
    assert one.beat() is not None
    assert [t.limiter.share for t in first] == [1.0, 1.0]
    assert [t.limiter.bucket.rate for t in first] == [10.0, 10.0]
    assert REGISTRY.get_sample_value("mim_instances") == 1


def test_a_429_one_instance_receives_closes_the_scope_for_the_other(store: Store, other: Store) -> None:
    clock = FakeClock()
    receiver, bystander = transport("jira:acme", clock), transport("jira:acme", clock)
    unrelated = transport("jira:globex", clock)
    for own, site in ((store, receiver), (other, bystander), (other, unrelated)):
        keep_throttles(own, site)
    written: list[tuple[str, float]] = []
    keep = bystander.limiter.gate.on_close
    assert keep is not None

    def recorded(scope: str, seconds: float) -> None:
        written.append((scope, seconds))
        keep(scope, seconds)

    bystander.limiter.gate.on_close = recorded
    one = Membership(store, "a", 4, [receiver], TTL, host="host-a", pid=11)
    two = Membership(other, "b", 4, [bystander, unrelated], TTL, host="host-b", pid=22)
    one.join()
    two.join()

    def refused() -> None:
        raise HttpFailure(429, {"Retry-After": "30"}, "")

    with pytest.raises(RateLimited):
        receiver.call(refused, method="GET", what="GET issue", write=False)
    assert set(store.throttles.open_closures()) == {"jira:acme|jira:acme"}
    assert bystander.limiter.gate.closed() == {}, "not before its next request"

    # It shares the store (1/2): before each request it looks at the store's closures (a read only).
    listen = bystander.limiter.listen
    assert listen is not None
    listen()
    (left,) = bystander.limiter.gate.closed().values()
    assert 25 < left <= 30 + THROTTLE_MARGIN
    assert unrelated.limiter.gate.closed() == {}, "another site's budget is not closed"
    assert written == [], "a closure read from the store is not written back"
    assert bystander.limiter.gate.wait(["jira:acme"]) == pytest.approx(left)
    assert list(other.throttles.open_closures()) == ["jira:acme|jira:acme"]
    assert two.beat() is not None and bystander.limiter.gate.closed().keys() == {"jira:acme"}


def test_an_instance_id_names_host_and_pid_and_is_new_at_every_start() -> None:
    first, second = new_instance_id("h" * 300, 4242), new_instance_id("h" * 300, 4242)
    assert first != second and first.startswith("h" * 40 + "-4242-") and len(first) <= 64
