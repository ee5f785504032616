"""Remote links: the idempotent ``globalId`` upsert the connector stamps identity with."""

from __future__ import annotations

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Site

GLOBAL_ID = "servicenow:incident:0123456789abcdef0123456789abcdef"


def test_upsert_by_global_id_replaces_without_duplicating(site: Site) -> None:
    issue = site.new_issue()
    control = site.served.control
    since = control.last_seq()
    first = site.client.add_remote_link(
        issue.key,
        {"url": "https://sn.example/incident.do?sys_id=1", "title": "INC0010001", "summary": "P1 outage"},
        globalId=GLOBAL_ID,
        relationship="mirrors",
    )
    second = site.client.add_remote_link(
        issue.key,
        {"url": "https://sn.example/incident.do?sys_id=1", "title": "INC0010001 (resolved)"},
        globalId=GLOBAL_ID,
    )
    calls = [(e["method"], e["path"].rsplit("/", 1)[1], e["status"]) for e in control.requests(since=since)]
    assert calls == [
        ("GET", "listApplicationlinks", 200),  # cached by python-jira once it succeeds
        ("POST", "remotelink", 201),
        ("POST", "remotelink", 200),
    ]
    assert first.id == second.id
    [link] = site.client.remote_links(issue.key)
    assert link.raw == {
        "id": first.id,
        "self": site.rest(f"issue/{issue.key}/remotelink/{first.id}"),
        "globalId": GLOBAL_ID,
        "object": {"url": "https://sn.example/incident.do?sys_id=1", "title": "INC0010001 (resolved)"},
    }, "an upsert replaces the link: the summary and relationship it left out are gone"


def test_lookup_and_delete_by_global_id_and_by_id(site: Site) -> None:
    issue = site.new_issue()
    link = site.client.add_remote_link(issue.key, {"url": "https://x.example", "title": "X"}, globalId="g-1")
    site.client.add_remote_link(issue.key, {"url": "https://y.example", "title": "Y"}, globalId="g-2")
    by_global = site.http.get(
        site.rest(f"issue/{issue.key}/remotelink"), params={"globalId": "g-1"}, timeout=5
    ).json()
    assert by_global["id"] == link.id
    assert site.client.remote_link(issue.key, link.id).object.title == "X"
    put = site.http.put(
        site.rest(f"issue/{issue.key}/remotelink/{link.id}"),
        json={"globalId": "g-1", "object": {"url": "https://x.example", "title": "X2"}},
        timeout=5,
    )
    assert put.status_code == 204 and site.client.remote_link(issue.key, link.id).object.title == "X2"
    assert (
        site.http.delete(
            site.rest(f"issue/{issue.key}/remotelink"), params={"globalId": "g-2"}, timeout=5
        ).status_code
        == 204
    )
    assert (
        site.http.delete(site.rest(f"issue/{issue.key}/remotelink/{link.id}"), timeout=5).status_code == 204
    )
    assert site.client.remote_links(issue.key) == []
    gone = site.http.get(site.rest(f"issue/{issue.key}/remotelink"), params={"globalId": "g-1"}, timeout=5)
    assert gone.status_code == 404


def test_remote_link_shapes_match_the_spec(cloud: Site) -> None:
    issue = cloud.new_issue()
    body = {
        "globalId": "g",
        "application": {"type": "servicenow", "name": "ServiceNow"},
        "object": {"url": "https://x.example", "title": "X", "status": {"resolved": False}},
    }
    posted = cloud.http.post(cloud.rest(f"issue/{issue.key}/remotelink", "3"), json=body, timeout=5)
    created = openapi.validate(posted, "/rest/api/3/issue/{issueIdOrKey}/remotelink")
    one = cloud.http.get(cloud.rest(f"issue/{issue.key}/remotelink/{created['id']}", "3"), timeout=5)
    assert (
        openapi.validate(one, "/rest/api/3/issue/{issueIdOrKey}/remotelink/{linkId}")["application"]["name"]
        == "ServiceNow"
    )
    listed = cloud.http.get(cloud.rest(f"issue/{issue.key}/remotelink", "3"), timeout=5).json()
    openapi.check(listed[0], openapi.component("RemoteIssueLink"))


def test_a_link_needs_url_and_title(site: Site) -> None:
    issue = site.new_issue()
    response = site.http.post(
        site.rest(f"issue/{issue.key}/remotelink"),
        json={"globalId": "g", "object": {"url": "https://x.example"}},
        timeout=5,
    )
    assert response.status_code == 400 and response.json()["errors"] == {"title": "'title' is required."}


def test_a_new_link_is_in_the_changelog(site: Site) -> None:
    issue = site.new_issue()
    site.client.add_remote_link(issue.key, {"url": "https://x.example", "title": "INC0010001"}, globalId="g")
    [history] = site.client.issue(issue.key, expand="changelog").changelog.histories
    assert (
        history.items[0].field == "RemoteIssueLink"
        and history.items[0].toString == 'This issue links to "INC0010001"'
    )
