"""The push update set as a setting: incident and journal notifications, signature, bypass, faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.sandbox.servicenow.push import DEFAULT_FIELDS
from connector.sandbox.servicenow.seed import reference_sys_id
from tests.contract.servicenow.conftest import SVC, T0, Snow
from tests.receiver import Received, Receiver

SECRET = "push-secret-Ünïcode"
STAMP = T0.strftime("%Y-%m-%d %H:%M:%S")
MIM_TEAM = reference_sys_id("sys_user_group", "MIM Team")
WORK_NOTE = "INTERNAL-ONLY: the caller is a VIP"
GUID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver().start()
    yield made
    made.stop()


def enable(snow: Snow, receiver: Receiver, **setting: Any) -> dict[str, Any]:
    return snow.control.set_push(url=receiver.url("/push/servicenow"), secret=SECRET, enabled=True, **setting)


def create(snow: Snow, payload: dict[str, object]) -> dict[str, Any]:
    response = snow.session().post(snow.table("incident"), json=payload, timeout=5)
    assert response.status_code == 201, response.text
    return dict(response.json()["result"])


def patch(snow: Snow, sys_id: str, payload: dict[str, object]) -> dict[str, Any]:
    response = snow.session().patch(snow.table("incident", sys_id), json=payload, timeout=5)
    assert response.status_code == 200, response.text
    return dict(response.json()["result"])


def body(received: Received) -> dict[str, Any]:
    return dict(json.loads(received.body))


def settle(snow: Snow) -> None:
    assert snow.app.dispatcher.wait_idle(5)


def test_the_setting_is_shown_without_its_secret_and_validated(snow: Snow, receiver: Receiver) -> None:
    assert snow.control.set_push() == {
        "url": "",
        "secret_set": False,
        "fields": list(DEFAULT_FIELDS),
        "enabled": False,
        "bypass_probability": 0.0,
    }
    shown = enable(snow, receiver, fields=["priority", "state"])
    assert shown == {
        "url": receiver.url("/push/servicenow"),
        "secret_set": True,
        "fields": ["priority", "state"],
        "enabled": True,
        "bypass_probability": 0.0,
    }
    assert SECRET not in json.dumps(snow.control.set_push())
    for bad in ({"enabled": True, "url": ""}, {"fields": 3}, {"bypass_probability": 2}, {"colour": "red"}):
        response = snow.control.session.post(f"{snow.url}/_sandbox/push", json=bad, timeout=5)
        assert response.status_code == 400, bad
    assert snow.control.set_push()["enabled"] is True


def test_an_insert_posts_the_signed_notification_of_the_update_set(snow: Snow, receiver: Receiver) -> None:
    enable(
        snow, receiver, fields=["priority", "impact", "urgency", "assignment_group", "assigned_to", "state"]
    )
    record = create(
        snow, {"short_description": "Web down", "impact": "1", "urgency": "1", "assignment_group": MIM_TEAM}
    )
    (got,) = receiver.wait(1)
    assert got.path == "/push/servicenow"
    assert got.headers["content-type"] == "application/json"
    assert GUID.match(got.headers["x-mim-delivery"]) and "x-mim-retry" not in got.headers
    mac = base64.b64encode(hmac.new(SECRET.encode(), got.body, hashlib.sha256).digest()).decode()
    assert got.headers["x-mim-signature"] == f"sha256={mac}"
    assert got.body == json.dumps(body(got), separators=(",", ":")).encode()  # compact, in this key order
    assert body(got) == {
        "table": "incident",
        "event": "insert",
        "sys_id": record["sys_id"],
        "number": record["number"],
        "sys_mod_count": 0,
        "sys_updated_on": STAMP,
        "fields": {
            "priority": "1",
            "impact": "1",
            "urgency": "1",
            "assignment_group": MIM_TEAM,
            "assigned_to": "",
            "state": "1",
        },
    }


def test_journal_entries_are_announced_without_their_text(snow: Snow, receiver: Receiver) -> None:
    record = create(snow, {"short_description": "Web down"})
    enable(snow, receiver)
    patch(snow, record["sys_id"], {"comments": "Customer update", "work_notes": WORK_NOTE, "impact": "2"})
    update, *journal = (body(r) for r in receiver.wait(3))
    assert update["event"] == "update" and update["sys_mod_count"] == 1 and update["fields"]["impact"] == "2"
    entries = snow.session().get(
        snow.table("sys_journal_field"), params={"sysparm_query": f"element_id={record['sys_id']}"}, timeout=5
    )
    by_element = {e["element"]: e for e in entries.json()["result"]}
    assert sorted(journal, key=lambda b: b["element"]) == [
        {
            "table": "sys_journal_field",
            "event": "insert",
            "sys_id": by_element[element]["sys_id"],
            "element_id": record["sys_id"],
            "element": element,
            "sys_created_on": STAMP,
        }
        for element in ("comments", "work_notes")
    ]
    for received in receiver.received:
        assert b"INTERNAL-ONLY" not in received.body and b"Customer update" not in received.body


def test_fields_are_stored_values_only_known_non_journal_and_plain_ascii(
    snow: Snow, receiver: Receiver
) -> None:
    enable(
        snow, receiver, fields="priority, u_nonexistent,comments,work_notes,short_description,u_supplier_eta"
    )
    create(snow, {"short_description": "Café down: $5 lost", "priority": "2"})
    (got,) = receiver.wait(1)
    assert set(body(got)["fields"]) == {"priority", "short_description", "u_supplier_eta"}
    assert body(got)["fields"]["short_description"] == "Café down: $5 lost"
    assert body(got)["fields"]["u_supplier_eta"] == ""
    assert got.body.isascii() and b"Caf\\u00e9 down: \\u00245 lost" in got.body


def test_nothing_is_sent_when_disabled_for_other_tables_deletes_and_no_op_updates(
    snow: Snow, receiver: Receiver
) -> None:
    create(snow, {"short_description": "before push"})
    enable(snow, receiver)
    record = create(snow, {"short_description": "x", "impact": "2"})
    receiver.wait(1)
    patch(snow, record["sys_id"], {"impact": "2"})  # nothing changes
    assert (
        snow.session().post(snow.table("problem"), json={"short_description": "p"}, timeout=5).status_code
        == 201
    )
    assert snow.session().delete(snow.table("incident", record["sys_id"]), timeout=5).status_code == 204
    snow.control.set_push(enabled=False)
    create(snow, {"short_description": "after push"})
    settle(snow)
    assert len(receiver.quiet(0.05)) == 1


def test_the_in_process_insert_is_announced_too(snow: Snow, receiver: Receiver) -> None:
    enable(snow, receiver)
    record = snow.app.insert(
        "incident", {"short_description": "seeded", "work_notes": WORK_NOTE}, user=SVC.user_name
    )
    incident, journal = (body(r) for r in receiver.wait(2))
    assert (
        incident["sys_id"] == journal["element_id"] == record["sys_id"] and journal["element"] == "work_notes"
    )


def test_bypass_skips_whole_writes(snow: Snow, receiver: Receiver) -> None:
    enable(snow, receiver, bypass_probability=1.0)
    record = create(snow, {"short_description": "quiet", "comments": "hello"})
    patch(snow, record["sys_id"], {"impact": "1"})
    settle(snow)
    assert receiver.quiet(0.05) == []
    log = snow.control.push_deliveries()
    assert [(e["event"], e["outcome"]) for e in log] == [
        ("incident.insert", "bypassed"),
        ("sys_journal_field.insert", "bypassed"),
        ("incident.update", "bypassed"),
    ]
    snow.control.set_push(bypass_probability=0.5)
    for n in range(20):
        patch(snow, record["sys_id"], {"short_description": f"n{n}"})
    settle(snow)
    sent = len(receiver.received)
    assert 0 < sent < 20
    assert sent + sum(e["outcome"] == "bypassed" for e in snow.control.push_deliveries()) == 23


def test_a_failed_post_is_not_retried_unless_faults_ask(snow: Snow, receiver: Receiver) -> None:
    enable(snow, receiver)
    receiver.answer(503)
    create(snow, {"short_description": "once"})
    receiver.wait(1)
    settle(snow)
    assert len(receiver.received) == 1
    assert [(e["status"], e["outcome"]) for e in snow.control.push_deliveries()] == [(503, "gave_up")]
    faults = snow.control.push_faults(retries=2, backoff_ms=5)
    assert (faults["retries"], faults["timeout_ms"]) == (2, 5000)
    receiver.answer(500, 502)
    create(snow, {"short_description": "retried"})
    retried = receiver.wait(4)[1:]
    assert [r.headers.get("x-mim-retry") for r in retried] == [None, "1", "2"]
    assert len({r.headers["x-mim-delivery"] for r in retried}) == 1
    assert len({r.headers["x-mim-signature"] for r in retried}) == 1


def test_the_api_answer_does_not_wait_for_the_receiver(snow: Snow, receiver: Receiver) -> None:
    enable(snow, receiver)
    receiver.delay = 0.8
    started = time.perf_counter()
    record = create(snow, {"short_description": "fast"})
    patch(snow, record["sys_id"], {"impact": "1"})
    assert time.perf_counter() - started < 0.6
    receiver.wait(1)


def test_faults_loss_and_pause_through_the_control_api(snow: Snow, receiver: Receiver) -> None:
    enable(snow, receiver)
    snow.control.push_faults(loss=1.0)
    create(snow, {"short_description": "lost"})
    assert [e["outcome"] for e in snow.control.push_deliveries()] == ["lost"]
    snow.control.push_faults(loss=0.0, pause=True)
    create(snow, {"short_description": "held"})
    assert receiver.quiet(0.1) == []
    snow.control.push_faults(pause=False)
    (got,) = receiver.wait(1)
    assert body(got)["fields"]["short_description"] == "held"
    last = snow.control.push_deliveries()[-1]["seq"]
    assert snow.control.push_deliveries(since=last) == []
    bad = snow.control.session.post(f"{snow.url}/_sandbox/push/faults", json={"pause": "yes"}, timeout=5)
    assert bad.status_code == 400


def test_reset_turns_push_off_and_forgets_faults_and_log(snow: Snow, receiver: Receiver) -> None:
    enable(snow, receiver)
    snow.control.push_faults(pause=True)
    create(snow, {"short_description": "queued"})
    snow.control.reset()
    assert snow.control.set_push()["enabled"] is False and snow.control.set_push()["secret_set"] is False
    assert snow.control.push_faults()["pause"] is False and snow.control.push_deliveries() == []
    create(snow, {"short_description": "after reset"})
    assert receiver.quiet(0.1) == []


def test_an_unreachable_receiver_does_not_fail_the_write(snow: Snow) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}/push/servicenow"
    snow.control.set_push(url=closed, secret=SECRET, enabled=True)
    record = create(snow, {"short_description": "nobody listens"})
    settle(snow)
    (entry,) = snow.control.push_deliveries()
    assert entry["status"] == 0 and entry["outcome"] == "gave_up"
    assert snow.session().get(snow.table("incident", record["sys_id"]), timeout=5).status_code == 200
    with pytest.raises(requests.HTTPError):
        snow.control.post("push", {"secret": 5})
