"""Admin webhooks: registration over REST, deliveries on issue and comment writes, signature, filters."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from connector.sandbox.jira.dates import parse_jira_time
from tests.contract.jira.conftest import Served, Site
from tests.receiver import Received, Receiver

SECRET = "whsec-Ünïcode-42"
ALL_EVENTS = [
    "jira:issue_created",
    "jira:issue_updated",
    "jira:issue_deleted",
    "comment_created",
    "comment_updated",
    "comment_deleted",
]
JIRA_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


@pytest.fixture
def receiver(served: Served) -> Iterator[Receiver]:
    served.control.push_faults(backoff_ms=5)
    made = Receiver().start()
    yield made
    made.stop()


def hooks_url(site: Site) -> str:
    return f"{site.url}/rest/webhooks/1.0/webhook"


def register(site: Site, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    body = {"name": "mim-connector", "url": receiver.url(f"/push/jira/{site.name}"), "events": ALL_EVENTS}
    body |= fields
    response = site.http.post(hooks_url(site), json=body, timeout=5)
    assert response.status_code == 201, response.text
    return dict(response.json())


def payload(received: Received) -> dict[str, Any]:
    return dict(json.loads(received.body))


def settle(served: Served) -> None:
    """Wait until the simulator has sent everything it queued."""
    assert served.app.dispatcher.wait_idle(5)


def test_registration_answers_the_webhook_with_self_and_never_the_secret(
    site: Site, receiver: Receiver
) -> None:
    jql = f"project = {site.project}"
    created = register(site, receiver, secret=SECRET, filters={"issue-related-events-section": jql})
    assert created["self"] == f"{hooks_url(site)}/1"
    assert created["url"] == receiver.url(f"/push/jira/{site.name}") and created["events"] == ALL_EVENTS
    assert created["filters"] == {"issue-related-events-section": jql}
    assert created["enabled"] is True and created["excludeBody"] is False
    listed = site.http.get(hooks_url(site), timeout=5)
    one = site.http.get(created["self"], timeout=5)
    assert listed.status_code == one.status_code == 200
    assert listed.json() == [created] and one.json() == created
    for text in (json.dumps(created), listed.text, one.text):
        assert "secret" not in text and "Ünïcode" not in text
    assert site.http.delete(created["self"], timeout=5).status_code == 204
    assert site.http.get(created["self"], timeout=5).status_code == 404
    assert site.http.delete(created["self"], timeout=5).status_code == 404
    assert site.http.get(hooks_url(site), timeout=5).json() == []


def test_registration_needs_authentication_and_valid_input(site: Site, receiver: Receiver) -> None:
    url = receiver.url()
    anonymous = requests.post(
        hooks_url(site), json={"name": "x", "url": url, "events": ALL_EVENTS}, timeout=5
    )
    assert anonymous.status_code == 401
    for bad in (
        {"url": url, "events": ALL_EVENTS},
        {"name": "x", "url": "ftp://example.com", "events": ALL_EVENTS},
        {"name": "x", "url": url, "events": []},
        {"name": "x", "url": url, "events": ALL_EVENTS, "excludeBody": "no"},
    ):
        response = site.http.post(hooks_url(site), json=bad, timeout=5)
        assert response.status_code == 400 and response.json()["errors"], bad
    bad_jql = site.http.post(
        hooks_url(site),
        json={
            "name": "x",
            "url": url,
            "events": ALL_EVENTS,
            "filters": {"issue-related-events-section": "project = "},
        },
        timeout=5,
    )
    assert bad_jql.status_code == 400 and "Error in the JQL Query" in bad_jql.json()["errorMessages"][0]
    assert site.http.get(hooks_url(site), timeout=5).json() == []


def test_issue_created_is_delivered_signed_with_jiras_body_and_headers(
    site: Site, receiver: Receiver
) -> None:
    register(site, receiver, secret=SECRET)
    issue = site.new_issue("Disk array degraded", priority={"name": "High"})
    (got,) = receiver.wait(1)
    assert got.path == f"/push/jira/{site.name}"
    headers = got.headers
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "Atlassian Webhook HTTP Client"
    assert headers["x-atlassian-webhook-flow"] == "Primary"
    assert headers["x-atlassian-webhook-identifier"] and "x-atlassian-webhook-retry" not in headers
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature"] == f"sha256={expected}"
    body = payload(got)
    assert body["webhookEvent"] == "jira:issue_created" and body["issue_event_type_name"] == "issue_created"
    assert isinstance(body["timestamp"], int)
    assert body["user"]["displayName"] == "MIM Connector"
    assert ("accountId" in body["user"]) == site.cloud and ("name" in body["user"]) == (not site.cloud)
    fetched = site.http.get(site.rest(f"issue/{issue.key}"), timeout=5).json()
    assert body["issue"]["id"] == fetched["id"] and body["issue"]["key"] == issue.key
    assert body["issue"]["self"] == fetched["self"]
    fields = body["issue"]["fields"]
    assert fields["summary"] == "Disk array degraded" and fields["priority"]["name"] == "High"
    assert fields["project"]["key"] == site.project and fields["issuetype"]["name"] == site.issue_type
    assert fields["status"] == fetched["fields"]["status"] and fields["assignee"] is None
    for stamp in ("created", "updated"):
        assert JIRA_TIME.match(fields[stamp]), fields[stamp]
        assert parse_jira_time(fields[stamp]) == parse_jira_time(fetched["fields"][stamp])
    assert body["timestamp"] == int(parse_jira_time(fields["updated"]).timestamp() * 1000)
    assert "changelog" not in body and "comment" not in body


def test_edit_and_transition_are_issue_updated_with_their_changelog(site: Site, receiver: Receiver) -> None:
    issue = site.new_issue("Before")
    register(site, receiver, events=["jira:issue_updated"])
    issue.update(fields={"summary": "After"})
    issue.update(fields={"summary": "After"})  # no change, no event
    transition = site.client.transitions(issue)[0]
    site.client.transition_issue(issue, transition["id"])
    edited, moved = receiver.wait(2)
    edit = payload(edited)
    assert edit["webhookEvent"] == "jira:issue_updated" and edit["issue_event_type_name"] == "issue_updated"
    assert edit["issue"]["fields"]["summary"] == "After"
    assert [(i["field"], i["fromString"], i["toString"]) for i in edit["changelog"]["items"]] == [
        ("summary", "Before", "After")
    ]
    move = payload(moved)
    assert move["issue_event_type_name"] == "issue_generic"
    status = next(i for i in move["changelog"]["items"] if i["field"] == "status")
    assert status["toString"] == transition["to"]["name"] == move["issue"]["fields"]["status"]["name"]
    history = site.http.get(site.rest(f"issue/{issue.key}?expand=changelog"), timeout=5).json()
    assert {edit["changelog"]["id"], move["changelog"]["id"]} == {
        h["id"] for h in history["changelog"]["histories"]
    }
    settle(site.served)
    assert len(receiver.received) == 2


def test_comment_writes_fire_comment_events_and_issue_updated(site: Site, receiver: Receiver) -> None:
    issue = site.new_issue()
    register(site, receiver)
    comment = site.client.add_comment(issue, "Supplier is investigating")
    created = [payload(r) for r in receiver.wait(2)]
    assert sorted((b["webhookEvent"], b.get("issue_event_type_name")) for b in created) == [
        ("comment_created", None),
        ("jira:issue_updated", "issue_commented"),
    ]
    for body in created:
        assert body["comment"]["id"] == comment.id and body["comment"]["body"] == "Supplier is investigating"
        assert body["comment"]["author"]["displayName"] == "MIM Connector"
        assert body["comment"]["self"].endswith(f"/comment/{comment.id}")
        assert body["issue"]["key"] == issue.key
    comment.update(body="edited")
    comment.delete()
    later = [payload(r) for r in receiver.wait(6)[2:]]
    assert [(b["webhookEvent"], b.get("issue_event_type_name")) for b in later] == [
        ("jira:issue_updated", "issue_comment_edited"),
        ("comment_updated", None),
        ("jira:issue_updated", "issue_comment_deleted"),
        ("comment_deleted", None),
    ]
    assert later[1]["comment"]["body"] == "edited" and later[3]["comment"]["id"] == comment.id


def test_events_and_jql_filter_choose_the_deliveries(site: Site, receiver: Receiver) -> None:
    register(
        site,
        receiver,
        events=["jira:issue_created", "comment_created"],
        filters={"issue-related-events-section": f"project = {site.project} AND labels = mim"},
    )
    plain = site.new_issue("not for us")
    site.client.add_comment(plain, "ignored")
    labelled = site.new_issue("for us", labels=["mim"])
    labelled.update(fields={"summary": "updated: not subscribed"})
    site.client.add_comment(labelled, "wanted")
    got = [payload(r) for r in receiver.wait(2)]
    settle(site.served)
    assert len(receiver.received) == 2
    assert [(b["webhookEvent"], b["issue"]["key"]) for b in got] == [
        ("jira:issue_created", labelled.key),
        ("comment_created", labelled.key),
    ]


def test_remote_links_properties_and_deletes_follow_jira(site: Site, receiver: Receiver) -> None:
    issue = site.new_issue()
    register(site, receiver, events=["jira:issue_updated", "jira:issue_deleted"])
    link = {"globalId": "snow:INC1", "object": {"url": "https://snow.example/INC1", "title": "INC1"}}
    assert site.http.post(site.rest(f"issue/{issue.key}/remotelink"), json=link, timeout=5).status_code == 201
    prop = site.http.put(site.rest(f"issue/{issue.key}/properties/mim"), json={"v": 1}, timeout=5)
    assert prop.status_code == 201
    issue.delete()
    (got,) = receiver.wait(1)
    settle(site.served)
    assert len(receiver.received) == 1
    body = payload(got)
    assert body["webhookEvent"] == "jira:issue_deleted" and body["issue"]["key"] == issue.key


def test_a_failed_delivery_is_retried_with_the_same_identifier(site: Site, receiver: Receiver) -> None:
    register(site, receiver, secret=SECRET, events=["jira:issue_created"])
    receiver.answer(503, 429)
    site.new_issue()
    received = receiver.wait(3)
    assert [r.headers.get("x-atlassian-webhook-retry") for r in received] == [None, "1", "2"]
    assert len({r.headers["x-atlassian-webhook-identifier"] for r in received}) == 1
    assert len({r.headers["x-hub-signature"] for r in received}) == 1 and len({r.body for r in received}) == 1
    settle(site.served)
    log = site.served.control.push_deliveries()
    assert [(e["status"], e["retry"], e["outcome"], e["event"]) for e in log] == [
        (503, 0, "retrying", "jira:issue_created"),
        (429, 1, "retrying", "jira:issue_created"),
        (200, 2, "delivered", "jira:issue_created"),
    ]


def test_each_delivery_has_its_own_identifier_and_unsigned_without_secret(
    site: Site, receiver: Receiver
) -> None:
    register(site, receiver, events=["jira:issue_created"])
    register(site, receiver, events=["jira:issue_created"], excludeBody=True)
    site.new_issue()
    first, second = receiver.wait(2)
    assert "x-hub-signature" not in first.headers and "x-hub-signature" not in second.headers
    assert first.headers["x-atlassian-webhook-identifier"] != second.headers["x-atlassian-webhook-identifier"]
    assert sorted([first.body == b"", second.body == b""]) == [False, True]


def test_disabled_webhooks_and_other_sites_get_nothing(
    served: Served, cloud: Site, dc: Site, receiver: Receiver
) -> None:
    register(cloud, receiver, enabled=False)
    register(dc, receiver, events=["jira:issue_created"])
    cloud.new_issue()
    dc.new_issue()
    (got,) = receiver.wait(1)
    settle(served)
    assert len(receiver.received) == 1 and got.path == "/push/jira/globex"


def test_a_write_whose_answer_is_lost_is_still_announced(site: Site, receiver: Receiver) -> None:
    register(site, receiver, events=["jira:issue_created"])
    site.served.control.add_fault(
        path=f"^/{site.name}/rest/api/2/issue$", method="POST", when="after_commit", status=0
    )
    fields = {"project": {"key": site.project}, "issuetype": {"name": site.issue_type}, "summary": "x"}
    with pytest.raises(requests.ConnectionError):
        site.http.post(site.rest("issue"), json={"fields": fields}, timeout=5)
    (got,) = receiver.wait(1)
    assert payload(got)["issue"]["fields"]["summary"] == "x"


def test_reset_forgets_webhooks_and_push_faults(site: Site, receiver: Receiver) -> None:
    register(site, receiver)
    control = site.served.control
    assert control.push_faults(pause=True)["pause"] is True
    site.new_issue()
    control.reset()
    assert site.http.get(hooks_url(site), timeout=5).json() == []
    assert control.push_faults() == control.clear_push_faults()
    assert control.push_faults()["pause"] is False and control.push_deliveries() == []
    assert receiver.quiet(0.1) == []


def test_push_faults_route_validates(served: Served) -> None:
    response = served.control.session.post(f"{served.url}/_sandbox/push/faults", json={"loss": 2}, timeout=5)
    assert response.status_code == 400 and "probability" in response.json()["error"]
    assert served.control.push_faults(loss=0.25, retries=1)["loss"] == 0.25
