"""The push receiver on a real store: verified, remembered, turned into queued work or a woken poll.

Requests go through werkzeug's test client into the receiver's WSGI application (the same object
the daemon serves); the store is real (SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from werkzeug.test import Client

from connector.core.secrets import Secret
from connector.core.signatures import sign
from connector.runtime.push import PushReceiver, Wakers, jira_source, servicenow_source
from connector.store import Store
from connector.store.queue import NEW
from connector.sync.cycle import issue_version

JIRA_SECRET = "acme webhook secret"
SN_SECRET = "servicenow push secret"
UPDATED = "2026-12-08T01:51:23.000+0000"


class Woken:
    """What the receiver set going, in order."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def wakers(self) -> Wakers:
        return Wakers(workers=lambda: self.calls.append("workers"), poll=self.calls.append)


@pytest.fixture
def woken() -> Woken:
    return Woken()


@pytest.fixture
def client(store: Store, woken: Woken) -> Iterator[Client]:
    sources = {
        "jira:acme": jira_source("acme", Secret(JIRA_SECRET)),
        "servicenow": servicenow_source(Secret(SN_SECRET)),
    }
    receiver = PushReceiver(store, sources, 64 * 1024, timedelta(days=1), woken.wakers())
    yield Client(receiver)


@pytest.fixture
def linked(store: Store) -> int:
    """INC s1 is mirrored to ACME's issue 10001 (OPS-1)."""
    link, _ = store.links.claim("s1", "acme", "stamp-1")
    store.links.confirm(link.link_id, "10001", "OPS-1", "https://acme/browse/OPS-1")
    return link.link_id


def jira_delivery(
    issue_id: str = "10001", event: str = "jira:issue_updated", updated: str = UPDATED
) -> bytes:
    return json.dumps(
        {
            "timestamp": 1765158683000,
            "webhookEvent": event,
            "issue": {"id": issue_id, "key": "OPS-1", "fields": {"updated": updated}},
        }
    ).encode()


def post_jira(
    client: Client,
    body: bytes,
    delivery: str = "d-1",
    *,
    secret: str = JIRA_SECRET,
    signature: str | None = None,
    supplier: str = "acme",
) -> Any:
    headers = {"X-Atlassian-Webhook-Identifier": delivery, "Content-Type": "application/json"}
    headers["X-Hub-Signature"] = signature if signature is not None else sign(secret, body)
    return client.post(f"/push/jira/{supplier}", data=body, headers=headers)


def rejected(source: str, reason: str) -> float:
    value = REGISTRY.get_sample_value("mim_push_rejected_total", {"source": source, "reason": reason})
    return value or 0.0


def test_a_signed_change_of_a_linked_issue_queues_its_entity_and_wakes_the_workers(
    client: Client, store: Store, linked: int, woken: Woken
) -> None:
    answer = post_jira(client, jira_delivery())
    assert answer.status_code == 202 and answer.json["message"] == "queued"
    item = store.queue.pending("s1:acme")
    assert item is not None and item.lane == NEW and "push" in item.reasons
    assert woken.calls == ["workers"]
    announced = issue_version("10001", datetime(2026, 12, 8, 1, 51, 23, tzinfo=UTC))
    assert store.deliveries.known("jira:acme#version", [announced, "10001@other"]) == {announced}


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("", "missing"),
        ("sha1=abc", "malformed"),
        ("sha256=zz", "malformed"),
        (sign(JIRA_SECRET, b"another body"), "mismatch"),
        (sign("a guessed secret", jira_delivery()), "mismatch"),
    ],
)
def test_a_bad_signature_is_refused_counted_and_queues_nothing(
    client: Client, store: Store, linked: int, woken: Woken, signature: str, reason: str
) -> None:
    before = rejected("jira:acme", reason)
    answer = post_jira(client, jira_delivery(), signature=signature)
    assert answer.status_code == 401
    assert rejected("jira:acme", reason) == before + 1
    assert store.queue.pending("s1:acme") is None and woken.calls == []
    # The same delivery, properly signed, is not taken for a repeat of the refused one.
    assert post_jira(client, jira_delivery()).status_code == 202


def test_a_repeat_of_a_delivery_is_answered_and_does_nothing(
    client: Client, store: Store, linked: int, woken: Woken
) -> None:
    assert post_jira(client, jira_delivery(), "d-7").status_code == 202
    first = store.queue.pending("s1:acme")
    again = post_jira(client, jira_delivery(), "d-7")
    assert again.status_code == 200 and again.json["message"] == "duplicate"
    assert store.queue.pending("s1:acme") == first, "the repeat enqueued nothing"
    assert woken.calls == ["workers"]


def test_our_own_echo_is_recognised_by_the_version_our_last_write_left(
    client: Client, store: Store, linked: int, woken: Woken
) -> None:
    updated = datetime(2026, 12, 8, 1, 51, 23, tzinfo=UTC)
    store.links.note_seen("s1", "acme", issue_version("10001", updated))
    echo = post_jira(client, jira_delivery(updated=UPDATED), "d-1")
    assert echo.status_code == 200 and echo.json["message"] == "echo"
    assert store.queue.pending("s1:acme") is None
    later = post_jira(client, jira_delivery(updated="2026-12-08T01:52:00.000+0000"), "d-2")
    assert later.status_code == 202 and store.queue.pending("s1:acme") is not None


def test_an_issue_the_store_does_not_know_wakes_the_suppliers_poll(
    client: Client, store: Store, woken: Woken
) -> None:
    answer = post_jira(client, jira_delivery(issue_id="99999"))
    assert answer.status_code == 202 and answer.json["message"] == "woke_poll"
    assert woken.calls == ["jira:acme"] and store.queue.size() == 0


def post_servicenow(client: Client, payload: dict[str, Any], delivery: str) -> Any:
    body = json.dumps(payload).encode()
    headers = {"X-MIM-Delivery": delivery, "X-MIM-Signature": sign(SN_SECRET, body, "base64")}
    return client.post("/push/servicenow", data=body, headers=headers)


def test_a_servicenow_notification_keeps_the_version_for_the_rules_and_wakes_the_poll(
    client: Client, store: Store, woken: Woken
) -> None:
    incident = {
        "table": "incident",
        "event": "update",
        "sys_id": "s1",
        "number": "INC0010001",
        "sys_mod_count": 3,
        "sys_updated_on": "2026-12-08 01:51:23",
        "fields": {"priority": "1", "assigned_to": None},
    }
    assert post_servicenow(client, incident, "g-1").status_code == 202
    assert post_servicenow(client, incident, "g-1").json["message"] == "duplicate"
    assert store.deliveries.known("servicenow#version", ["s1@3"]) == {"s1@3"}
    (version,) = store.pushed.waiting()
    assert (version.number, version.mod_count, version.updated_on) == ("INC0010001", 3, "2026-12-08 01:51:23")
    assert version.fields == {"priority": "1", "assigned_to": ""}
    assert version.received_at.tzinfo is not None, "times come back from the store in UTC"
    journal = {"table": "sys_journal_field", "event": "insert", "sys_id": "j1", "element_id": "s1"}
    assert post_servicenow(client, journal, "g-2").status_code == 202
    assert len(store.pushed.waiting()) == 1, "a journal entry is no incident version"
    assert post_servicenow(client, {**incident, "sys_mod_count": "x"}, "g-3").status_code == 400
    assert woken.calls == ["servicenow", "servicenow"]


def test_servicenow_signs_in_base64_and_nothing_else_passes(client: Client) -> None:
    body = json.dumps({"table": "sys_journal_field", "sys_id": "j1"}).encode()
    hex_signed = {"X-MIM-Delivery": "g-9", "X-MIM-Signature": sign(SN_SECRET, body, "hex")}
    assert client.post("/push/servicenow", data=body, headers=hex_signed).status_code == 401


def test_what_is_not_a_delivery_gets_its_own_answer(client: Client, store: Store, linked: int) -> None:
    assert client.get("/push/jira/acme").status_code == 405
    assert post_jira(client, jira_delivery(), supplier="globex").status_code == 404, "no secret, no endpoint"
    assert client.post("/metrics", data=b"{}").status_code == 404
    huge = b'{"x": "' + b"a" * (64 * 1024) + b'"}'
    assert post_jira(client, huge).status_code == 413
    assert post_jira(client, b"[1, 2]").status_code == 400
    assert post_jira(client, b'{"webhookEvent": "jira:issue_updated"}', "d-9").status_code == 400
    assert store.queue.size() == 0


def test_a_store_that_cannot_be_written_answers_503_and_the_retry_is_not_a_repeat(
    client: Client, store: Store, linked: int
) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE deliveries RENAME TO deliveries_away"))
    assert post_jira(client, jira_delivery(), "d-3").status_code == 503
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE deliveries_away RENAME TO deliveries"))
    assert post_jira(client, jira_delivery(), "d-3").status_code == 202
