"""The push dispatcher against a real local receiver: delivery, retries, give-up, and every fault.

:class:`Receiver` is also what the contract tests of Jira webhooks and ServiceNow push post to.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from connector.sandbox.push import Delivery, Dispatcher, PushFaults
from tests.receiver import Received, Receiver

FAST = {"backoff_ms": 5}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver().start()
    yield made
    made.stop()


@pytest.fixture
def dispatcher() -> Iterator[Dispatcher]:
    made = Dispatcher("test", retry_header="X-Retry", seed=7)
    made.set_faults(FAST)
    yield made
    made.close()


def delivery(receiver: Receiver, n: int = 1, event: str = "thing_happened") -> Delivery:
    body = f'{{"n":{n}}}'.encode()
    return Delivery(
        receiver.url(), body, {"Content-Type": "application/json", "X-Id": f"d{n}"}, f"d{n}", event
    )


def numbers(received: list[Received]) -> list[int]:
    return [int(r.headers["x-id"][1:]) for r in received]


def test_a_delivery_is_posted_as_given_and_logged(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.enqueue(delivery(receiver))
    (got,) = receiver.wait(1)
    assert got.path == "/hook" and got.body == b'{"n":1}'
    assert got.headers["content-type"] == "application/json" and "x-retry" not in got.headers
    assert dispatcher.wait_idle(5)
    (entry,) = dispatcher.deliveries()
    assert (
        entry["identifier"] == "d1" and entry["event"] == "thing_happened" and entry["url"] == receiver.url()
    )
    assert (entry["status"], entry["retry"], entry["outcome"]) == (200, 0, "delivered")
    assert not entry["lost"] and not entry["duplicate"] and entry["seq"] == dispatcher.last_seq


def test_enqueue_never_waits_for_the_receiver(receiver: Receiver, dispatcher: Dispatcher) -> None:
    receiver.delay = 0.3
    started = time.perf_counter()
    for n in range(3):
        dispatcher.enqueue(delivery(receiver, n))
    assert time.perf_counter() - started < 0.1
    receiver.wait(1)


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 503])
def test_retryable_answers_are_retried_with_the_same_identifier_and_a_retry_header(
    receiver: Receiver, dispatcher: Dispatcher, status: int
) -> None:
    receiver.answer(status, status)
    dispatcher.enqueue(delivery(receiver))
    received = receiver.wait(3)
    assert [r.headers.get("x-retry") for r in received] == [None, "1", "2"]
    assert {r.headers["x-id"] for r in received} == {"d1"} and {r.body for r in received} == {b'{"n":1}'}
    assert dispatcher.wait_idle(5)
    log = dispatcher.deliveries()
    assert [(e["status"], e["retry"], e["outcome"]) for e in log] == [
        (status, 0, "retrying"),
        (status, 1, "retrying"),
        (200, 2, "delivered"),
    ]
    assert {e["identifier"] for e in log} == {"d1"}


def test_backoff_doubles_between_retries(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.set_faults({"backoff_ms": 40})
    receiver.answer(503, 503)
    dispatcher.enqueue(delivery(receiver))
    first, second, third = receiver.wait(3)
    assert second.at - first.at >= 0.035 and third.at - second.at >= 0.075


def test_retries_are_bounded(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.set_faults({"retries": 2})
    receiver.answer(500, 500, 500, 500)
    dispatcher.enqueue(delivery(receiver))
    assert len(receiver.wait(3)) == 3
    assert dispatcher.wait_idle(5)
    assert len(receiver.quiet(0.1)) == 3
    assert [e["outcome"] for e in dispatcher.deliveries()] == ["retrying", "retrying", "gave_up"]


@pytest.mark.parametrize("status", [400, 401, 404, 410, 302])
def test_other_answers_are_given_up_at_once(receiver: Receiver, dispatcher: Dispatcher, status: int) -> None:
    receiver.answer(status)
    dispatcher.enqueue(delivery(receiver))
    receiver.wait(1)
    assert dispatcher.wait_idle(5)
    assert len(receiver.quiet(0.1)) == 1
    assert [(e["status"], e["outcome"]) for e in dispatcher.deliveries()] == [(status, "gave_up")]


def test_a_refused_connection_is_status_0_and_retried(receiver: Receiver, dispatcher: Dispatcher) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    dispatcher.set_faults({"retries": 1})
    dispatcher.enqueue(Delivery(closed, b"{}", {}, "gone", "thing_happened"))
    assert dispatcher.wait_idle(5)
    log = dispatcher.deliveries()
    assert [(e["status"], e["retry"], e["outcome"]) for e in log] == [(0, 0, "retrying"), (0, 1, "gave_up")]
    assert "ConnectionError" in log[0]["error"]


def test_a_slow_receiver_is_a_timeout_and_retried(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.set_faults({"timeout_ms": 50, "retries": 1})
    receiver.delay = 0.3
    dispatcher.enqueue(delivery(receiver))
    assert dispatcher.wait_idle(5)
    log = dispatcher.deliveries()
    assert [(e["status"], e["retry"]) for e in log] == [(0, 0), (0, 1)]
    assert "Timeout" in log[0]["error"]
    assert [r.headers.get("x-retry") for r in receiver.wait(2)] == [None, "1"]


def test_a_retry_waits_without_holding_back_other_deliveries(
    receiver: Receiver, dispatcher: Dispatcher
) -> None:
    dispatcher.set_faults({"backoff_ms": 500})
    receiver.answer(503)
    dispatcher.enqueue(delivery(receiver, 1))
    receiver.wait(1)
    dispatcher.enqueue(delivery(receiver, 2))
    assert numbers(receiver.wait(3)) == [1, 2, 1]


def test_loss_drops_deliveries_silently_and_repeatably(receiver: Receiver) -> None:
    lost_sets = []
    for _run in range(2):
        sender = Dispatcher("test", retry_header="X-Retry", seed=3)
        sender.set_faults({"loss": 0.5})
        for n in range(20):
            sender.enqueue(delivery(receiver, n))
        assert sender.wait_idle(5)
        log = sender.deliveries()
        lost = {e["identifier"] for e in log if e["lost"]}
        assert all(e["outcome"] == "lost" and e["status"] is None for e in log if e["lost"])
        assert {e["identifier"] for e in log if e["outcome"] == "delivered"} == {
            f"d{n}" for n in range(20)
        } - lost
        lost_sets.append(lost)
        sender.close()
    assert 0 < len(lost_sets[0]) < 20 and lost_sets[0] == lost_sets[1]
    assert len(receiver.received) == 40 - 2 * len(lost_sets[0])


def test_duplicate_sends_the_same_delivery_twice(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.set_faults({"duplicate": 1.0})
    dispatcher.enqueue(delivery(receiver))
    first, second = receiver.wait(2)
    assert first.headers["x-id"] == second.headers["x-id"] == "d1" and first.body == second.body
    assert dispatcher.wait_idle(5)
    assert [e["duplicate"] for e in dispatcher.deliveries()] == [False, True]


def test_reorder_swaps_each_held_delivery_with_the_next(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.set_faults({"reorder": 1.0, "pause": True})
    for n in range(1, 5):
        dispatcher.enqueue(delivery(receiver, n))
    dispatcher.set_faults({"pause": False})
    assert numbers(receiver.wait(4)) == [2, 1, 4, 3]
    assert dispatcher.wait_idle(5)
    assert {e["identifier"] for e in dispatcher.deliveries() if e["reordered"]} == {"d1", "d3"}


def test_a_held_delivery_without_successor_goes_after_the_window(
    receiver: Receiver, dispatcher: Dispatcher
) -> None:
    dispatcher.set_faults({"reorder": 1.0, "reorder_window_ms": 150})
    started = time.monotonic()
    dispatcher.enqueue(delivery(receiver))
    (got,) = receiver.wait(1)
    assert got.at - started >= 0.14


def test_delay_holds_every_delivery(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.set_faults({"delay_ms": 150})
    started = time.monotonic()
    dispatcher.enqueue(delivery(receiver))
    (got,) = receiver.wait(1)
    assert got.at - started >= 0.14


def test_pause_queues_until_released_in_order(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.set_faults({"pause": True})
    for n in range(1, 4):
        dispatcher.enqueue(delivery(receiver, n))
    assert receiver.quiet(0.15) == [] and dispatcher.pending() == 3
    dispatcher.set_faults({"pause": False})
    assert numbers(receiver.wait(3)) == [1, 2, 3]


def test_drop_while_paused_loses_what_the_outage_saw(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.set_faults({"pause": True})
    dispatcher.enqueue(delivery(receiver, 1))
    dispatcher.set_faults({"drop_while_paused": True})
    dispatcher.enqueue(delivery(receiver, 2))
    dispatcher.set_faults({"pause": False})
    dispatcher.enqueue(delivery(receiver, 3))
    assert numbers(receiver.wait(2)) == [1, 3]
    assert dispatcher.wait_idle(5)
    assert [(e["identifier"], e["outcome"]) for e in dispatcher.deliveries()] == [
        ("d2", "dropped"),
        ("d1", "delivered"),
        ("d3", "delivered"),
    ]


def test_reset_forgets_queue_faults_and_log_but_keeps_numbering(
    receiver: Receiver, dispatcher: Dispatcher
) -> None:
    dispatcher.enqueue(delivery(receiver, 1))
    receiver.wait(1)
    assert dispatcher.wait_idle(5)
    last = dispatcher.last_seq
    dispatcher.set_faults({"pause": True, "loss": 0.5})
    dispatcher.enqueue(delivery(receiver, 2))
    dispatcher.reset()
    assert dispatcher.faults() == PushFaults() and dispatcher.deliveries() == [] and dispatcher.pending() == 0
    dispatcher.set_faults(FAST)
    dispatcher.enqueue(delivery(receiver, 3))
    assert numbers(receiver.wait(2)) == [1, 3]
    assert dispatcher.wait_idle(5)
    assert [e["seq"] for e in dispatcher.deliveries()] == [last + 2]


def test_the_log_is_bounded_and_read_from_a_cursor(receiver: Receiver) -> None:
    sender = Dispatcher("test", retry_header="X-Retry", log_size=3)
    try:
        for n in range(5):
            sender.enqueue(delivery(receiver, n))
        assert sender.wait_idle(5)
        assert [e["identifier"] for e in sender.deliveries()] == ["d2", "d3", "d4"]
        assert [e["identifier"] for e in sender.deliveries(since=sender.last_seq - 1)] == ["d4"]
        assert [e["identifier"] for e in sender.deliveries(limit=1)] == ["d2"]
    finally:
        sender.close()


@pytest.mark.parametrize(
    "change",
    [
        {"loss": 1.5},
        {"duplicate": True},
        {"retries": -1},
        {"pause": 1},
        {"delay_ms": 0.5},
        {"timeout_ms": 0},
        {"x": 1},
    ],
)
def test_faults_are_validated(change: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        PushFaults().updated(change)


def test_a_bypassed_delivery_is_only_logged(receiver: Receiver, dispatcher: Dispatcher) -> None:
    dispatcher.bypassed(delivery(receiver))
    assert receiver.quiet(0.1) == []
    assert [(e["outcome"], e["status"]) for e in dispatcher.deliveries()] == [("bypassed", None)]
