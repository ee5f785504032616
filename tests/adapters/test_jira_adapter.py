"""JiraAdapter against the Jira simulator over HTTP, on a Cloud and a Data Center site.

Every verb is checked for what it does and for how many requests it costs (from the simulator's
request journal): reads and writes of one issue cost exactly one request.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import pytest

from connector.core.models import SupplierIssue
from tests.adapters.jira_sandbox import ACME_TOKEN, GLOBEX_PAT, Jira, Served, greeted_jira, make_jira, serve

READ_FIELDS = ("summary", "description", "priority", "labels", "reporter", "assignee", "customfield_10050")
STAMP = {"mim-connector": {"stamp": "INC0010001@mim-connector", "incident": "INC0010001"}}


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    yield from serve()


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest, served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Jira]:
    yield from greeted_jira(served, request.param, monkeypatch)


def read(jira: Jira, key: str, **options: bool) -> SupplierIssue:
    found = jira.adapter.issue(key, READ_FIELDS, **options)
    assert found is not None
    return found


# --- identity and reads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deployment", "site", "login", "zone"),
    [("cloud", "acme", "mim", "Europe/Berlin"), ("datacenter", "globex", "mim-connector", "Asia/Kolkata")],
)
def test_myself_is_cached_and_names_the_account(
    served: Served, monkeypatch: pytest.MonkeyPatch, deployment: str, site: str, login: str, zone: str
) -> None:
    served.control.reset()
    jira = make_jira(served, deployment, monkeypatch)
    start = jira.seq()
    account = jira.adapter.myself()
    assert jira.adapter.myself() is account
    assert jira.requests(start) == [("GET", "serverInfo"), ("GET", "myself")]
    assert account.display_name == "MIM Connector" and account.time_zone == zone
    user = next(u for u in served.app.info()["sites"][site]["users"] if u["username"] == login)
    assert account.account_id == (user["account_id"] if deployment == "cloud" else login)
    jira.adapter.close()


def test_create_sets_the_stamp_atomically_and_one_get_reads_it(jira: Jira) -> None:
    fields = {
        "summary": "Disk array degraded",
        "description": "Line one\nLine two",
        "priority": "High",
        "labels": ["mim", "db", "p1"],
        "customfield_10050": "INC0010001",
    }
    start = jira.seq()
    ref = jira.adapter.create_issue(jira.project, jira.issue_type, fields, STAMP)
    entries = jira.journal(start)
    assert [(e["method"], e["path"].rsplit("/rest/api/2/", 1)[1]) for e in entries] == [("POST", "issue")]
    assert entries[0]["body"]["properties"] == [{"key": "mim-connector", "value": STAMP["mim-connector"]}]
    assert entries[0]["body"]["fields"]["project"] == {"key": jira.project}
    assert ref.key == f"{jira.project}-1" and ref.issue_id.isdigit()

    start = jira.seq()
    issue = read(jira, ref.key)
    assert jira.requests(start) == [("GET", f"issue/{ref.key}")]
    assert issue.stamp == "INC0010001@mim-connector"
    assert (issue.issue_id, issue.key, issue.status, issue.status_category) == (
        ref.issue_id,
        ref.key,
        "Open",
        "todo",
    )
    assert issue.url == f"{jira.served.url}/{jira.name}/browse/{ref.key}"
    assert dict(issue.fields) == {
        "summary": "Disk array degraded",
        "description": "Line one\nLine two",
        "priority": "High",
        "labels": "db mim p1",
        "reporter": "MIM Connector",
        "assignee": "",
        "customfield_10050": "INC0010001",
    }
    assert issue.updated.tzinfo is not None and abs(issue.updated - datetime.now(UTC)) < timedelta(minutes=1)
    assert issue.comments == ()


def test_an_issue_without_our_property_has_no_stamp_and_a_missing_one_is_none(jira: Jira) -> None:
    key = jira.new_issue()
    assert read(jira, key).stamp is None
    start = jira.seq()
    assert jira.adapter.issue(f"{jira.project}-999", READ_FIELDS) is None
    assert len(jira.requests(start)) == 1


def test_update_is_one_put(jira: Jira) -> None:
    key = jira.new_issue()
    start = jira.seq()
    jira.adapter.update_issue(key, {"summary": "Array rebuilt", "priority": "Low", "labels": "b a"})
    assert jira.requests(start) == [("PUT", f"issue/{key}")]
    issue = read(jira, key)
    assert (issue.fields["summary"], issue.fields["priority"], issue.fields["labels"]) == (
        "Array rebuilt",
        "Low",
        "a b",
    )


def test_transitions_is_one_get_and_transition_one_post_with_resolution_by_name(jira: Jira) -> None:
    key = jira.new_issue()
    start = jira.seq()
    available = jira.adapter.transitions(key)
    assert jira.requests(start) == [("GET", f"issue/{key}/transitions")]
    assert {(t.name, t.to_status) for t in available} >= {
        ("Resolve", "Resolved"),
        ("Start Progress", "In Progress"),
    }
    resolve = next(t for t in available if t.name == "Resolve")

    start = jira.seq()
    jira.adapter.transition(key, resolve.transition_id, {"resolution": "Fixed"})
    entries = jira.journal(start)
    assert [(e["method"], e["path"].endswith(f"/issue/{key}/transitions")) for e in entries] == [
        ("POST", True)
    ]
    assert entries[0]["body"]["fields"] == {"resolution": {"name": "Fixed"}}
    issue = jira.adapter.issue(key, ["resolution"])
    assert issue is not None
    assert (issue.status, issue.status_category, issue.fields["resolution"]) == ("Resolved", "done", "Fixed")


def test_add_comment_is_one_post_and_comes_back_on_the_issue(jira: Jira) -> None:
    key = jira.new_issue()
    start = jira.seq()
    comment = jira.adapter.add_comment(key, "We are on it.\nETA 30 minutes.")
    assert jira.requests(start) == [("POST", f"issue/{key}/comment")]
    me = jira.adapter.myself()
    assert (comment.author, comment.author_id, comment.body) == (
        "MIM Connector",
        me.account_id,
        "We are on it.\nETA 30 minutes.",
    )
    assert comment.created.tzinfo is not None and comment.updated == comment.created

    start = jira.seq()
    issue = read(jira, key)
    assert jira.requests(start) == [("GET", f"issue/{key}")], "comments come with the issue"
    assert issue.comments == (comment,)


def test_comments_beyond_the_first_page_of_the_field_are_fetched(jira: Jira) -> None:
    key = jira.new_issue()
    written = [jira.adapter.add_comment(key, f"update {n}") for n in range(3)]
    # Jira caps the comment field; the simulator does not, so an injected answer shows only one.
    real = read(jira, key)
    assert real.comments == tuple(written)
    control = jira.served.control
    session = control.session
    bean = session.get(
        f"{jira.served.url}/{jira.name}/rest/api/2/issue/{key}",
        params={"fields": "status,updated,comment", "properties": "mim-connector"},
        headers=_auth(jira),
        timeout=5,
    ).json()
    bean["fields"]["comment"] |= {"comments": bean["fields"]["comment"]["comments"][:1], "maxResults": 1}
    control.add_fault(
        path=f"/{jira.name}/rest/api/2/issue/{key}$", method="GET", status=200, body=json.dumps(bean), count=1
    )
    start = jira.seq()
    paged = jira.adapter.issue(key, ["summary"])
    assert paged is not None and paged.comments == tuple(written)
    assert [(m, p.split("?")[0]) for m, p in jira.requests(start)] == [
        ("GET", f"issue/{key}"),
        ("GET", f"issue/{real.issue_id}/comment"),
    ]
    query = jira.journal(start)[-1]["query"]
    assert "startAt=1" in query


def _auth(jira: Jira) -> dict[str, str]:
    if jira.cloud:
        return {
            "Authorization": "Basic " + base64.b64encode(f"mim@acme.example:{ACME_TOKEN}".encode()).decode()
        }
    return {"Authorization": f"Bearer {GLOBEX_PAT}"}


def test_remote_link_upsert_is_one_post_with_the_full_object_and_stays_one_link(jira: Jira) -> None:
    key = jira.new_issue()
    url = "https://acme-corp.service-now.com/nav_to.do?uri=incident.do?sys_id=abc"
    start = jira.seq()
    jira.adapter.upsert_remote_link(key, "mim-connector:INC0010001", url, "INC0010001")
    jira.adapter.upsert_remote_link(key, "mim-connector:INC0010001", url, "INC0010001: Disk array degraded")
    entries = jira.journal(start)
    assert [(e["method"], e["path"].rsplit("/rest/api/2/", 1)[-1]) for e in entries] == [
        ("POST", f"issue/{key}/remotelink")
    ] * 2
    assert not any("applinks" in e["path"] for e in entries)
    assert entries[1]["body"] == {
        "globalId": "mim-connector:INC0010001",
        "object": {
            "url": url,
            "title": "INC0010001: Disk array degraded",
            "icon": {
                "url16x16": "https://acme-corp.service-now.com/favicon.ico",
                "title": "INC0010001: Disk array degraded",
            },
        },
    }
    stored = jira.served.app.peek_issue(jira.name, key)
    assert stored is not None and len(stored.remote_links) == 1
    assert stored.remote_links[0].object["title"] == "INC0010001: Disk array degraded"
    assert stored.remote_links[0].object["icon"] is not None


def test_server_time_follows_the_date_header(jira: Jira) -> None:
    jira.served.control.set_clock(3600)
    jira.adapter.transitions(jira.new_issue())
    server_time = jira.adapter.server_time()
    assert server_time is not None
    assert abs(server_time - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=5)


# --- search --------------------------------------------------------------------------------------------


def test_updated_since_pages_through_everything_once_in_order(jira: Jira) -> None:
    keys = [jira.new_issue(f"issue {n}") for n in range(7)]
    since = datetime.now(UTC) - timedelta(minutes=5)
    start = jira.seq()
    found = list(jira.adapter.issues_updated_since(jira.project, since, page_size=3))
    assert [ref.key for ref in found] == keys
    assert all(ref.updated is not None and ref.issue_id for ref in found)
    search = "search/jql" if jira.cloud else "search"
    assert jira.requests(start) == [("GET", search)] * 3
    queries = [e["query"] for e in jira.journal(start)]
    assert "nextPageToken" in queries[1] if jira.cloud else "startAt=3" in queries[1]
    assert "fields=updated" in queries[0]


def test_jql_bounds_are_minutes_in_the_accounts_time_zone(jira: Jira) -> None:
    old = jira.new_issue("before the window")
    jira.served.control.set_clock(600)  # ten minutes later on the server
    new = jira.new_issue("inside the window")
    issue = read(jira, new)
    since = issue.updated - timedelta(seconds=3)
    start = jira.seq()
    found = [ref.key for ref in jira.adapter.issues_updated_since(jira.project, since, page_size=50)]
    assert found == [new], f"{old} was updated ten minutes before the bound"
    jql = jira.journal(start)[0]["query"]
    zone = "Europe/Berlin" if jira.cloud else "Asia/Kolkata"
    expected = since.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")
    assert parse_qs(jql)["jql"] == [
        f'project = "{jira.project}" AND updated >= "{expected}" ORDER BY updated ASC, key ASC'
    ]


def test_search_lags_writes_but_issue_reads_do_not(jira: Jira) -> None:
    jira.settings(index_lag_seconds=60)
    since = datetime.now(UTC) - timedelta(minutes=1)
    key = jira.new_issue()
    assert list(jira.adapter.issues_updated_since(jira.project, since, page_size=10)) == []
    assert list(jira.adapter.created_by_me_since(jira.project, since)) == []
    assert read(jira, key).key == key
    jira.served.control.set_clock(61)
    assert [ref.key for ref in jira.adapter.created_by_me_since(jira.project, since)] == [key]
