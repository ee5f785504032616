"""Search as python-jira does it: Cloud ``search/jql`` with tokens, Data Center ``search`` with offsets."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
from jira import JIRAError

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Served, Site, cloud_client

REMOVED = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)


def make_issues(site: Site, count: int, **fields) -> list[str]:
    body = {"project": {"key": site.project}, "issuetype": {"name": site.issue_type}, **fields}
    return [
        site.http.post(
            site.rest("issue"), json={"fields": {"summary": f"Issue {n}", **body}}, timeout=5
        ).json()["key"]
        for n in range(count)
    ]


def search_calls(site: Site, since: int) -> list[tuple[str, dict[str, list[str]]]]:
    return [
        (e["path"].removeprefix(f"/{site.name}/rest/api/2/"), parse_qs(e["query"]))
        for e in site.served.control.requests(since=since)
    ]


def test_cloud_default_search_returns_only_the_first_page(cloud: Site) -> None:
    make_issues(cloud, 5)
    cloud.settings(max_results_limit=2)
    first = cloud.client.search_issues("project = ACME ORDER BY key ASC")
    assert [i.key for i in first] == ["ACME-1", "ACME-2"]
    assert first.nextPageToken is not None and first.total == 2, (
        "Cloud has no total: python-jira reports the page length"
    )
    everything = cloud.client.search_issues("project = ACME ORDER BY key ASC", maxResults=False)
    assert [i.key for i in everything] == [
        f"ACME-{n}" for n in range(1, 6)
    ] and everything.nextPageToken is None


def test_cloud_search_all_pages_with_translated_fields(cloud: Site) -> None:
    make_issues(cloud, 3, customfield_10050="INC0010001")
    cloud.settings(max_results_limit=2)
    since = cloud.served.control.last_seq()
    found = cloud.client.search_issues("project = ACME", maxResults=False, fields="summary,updated,SNOW Ref")
    calls = search_calls(cloud, since)
    assert [path for path, _query in calls] == ["field", "search/jql", "search/jql"]
    query = calls[1][1]
    assert query["fields"] == ["summary", "updated", "customfield_10050"] and query["maxResults"] == ["100"]
    assert "nextPageToken" not in query and "nextPageToken" in calls[2][1]
    assert {i.raw["fields"]["SNOW Ref"] for i in found} == {"INC0010001"} and len(found) == 3


def test_search_jql_defaults_to_ids_and_matches_the_spec(cloud: Site) -> None:
    keys = make_issues(cloud, 2)
    for version in ("2", "3"):
        response = cloud.http.get(
            cloud.rest("search/jql", version), params={"jql": "project = ACME"}, timeout=5
        )
        body = openapi.validate(response, "/rest/api/3/search/jql")
        assert body == {"issues": [{"id": "10002"}, {"id": "10001"}], "isLast": True}, keys
    response = cloud.http.get(
        cloud.rest("search/jql", "3"),
        params={"jql": "project = ACME", "fields": "*all", "expand": "names,changelog"},
        timeout=5,
    )
    body = openapi.validate(response, "/rest/api/3/search/jql")
    assert body["names"]["summary"] == "Summary" and body["issues"][0]["changelog"]["total"] == 0


def test_search_jql_post_reads_only_the_body(cloud: Site) -> None:
    make_issues(cloud, 3)
    found = cloud.client.enhanced_search_issues(
        "project = ACME", maxResults=2, use_post=True, fields="summary"
    )
    assert len(found) == 2 and found.nextPageToken
    body = {
        "jql": "project = ACME",
        "maxResults": 5,
        "nextPageToken": found.nextPageToken,
        "fields": ["summary"],
    }
    rest = cloud.http.post(cloud.rest("search/jql", "3"), params={"maxResults": 1}, json=body, timeout=5)
    assert [i["fields"]["summary"] for i in openapi.validate(rest, "/rest/api/3/search/jql")["issues"]] == [
        "Issue 0"
    ]
    unknown = cloud.http.post(
        cloud.rest("search/jql"), json={"jql": "project = ACME", "startAt": 0}, timeout=5
    )
    assert unknown.status_code == 400
    no_body = cloud.http.post(cloud.rest("search/jql", "3"), timeout=5)
    assert no_body.status_code == 415 and no_body.headers["Content-Type"].startswith(
        "application/problem+json"
    )
    assert no_body.json() == {
        "title": "Unsupported Media Type",
        "detail": "Content-Type 'null' is not supported.",
        "instance": "/rest/api/3/search/jql",
    }


@pytest.mark.parametrize("jql", ["order by key desc", "ORDER BY created DESC", ""])
def test_unbounded_jql_is_refused_on_cloud(cloud: Site, jql: str) -> None:
    response = cloud.http.get(cloud.rest("search/jql"), params={"jql": jql}, timeout=5)
    assert response.status_code == 400
    assert response.json() == {
        "errorMessages": [
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
        ],
        "errors": {},
    }


@pytest.mark.parametrize("max_results", ["0", "5001", "x"])
def test_search_jql_max_results_range(cloud: Site, max_results: str) -> None:
    response = cloud.http.get(
        cloud.rest("search/jql"), params={"jql": "project = ACME", "maxResults": max_results}, timeout=5
    )
    assert response.status_code == 400


def test_malformed_page_token_is_400(cloud: Site) -> None:
    response = cloud.http.get(
        cloud.rest("search/jql"), params={"jql": "project = ACME", "nextPageToken": "garbage!"}, timeout=5
    )
    assert response.status_code == 400


@pytest.mark.parametrize("version", ["2", "3", "latest"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_old_cloud_search_is_gone(cloud: Site, version: str, method: str) -> None:
    response = cloud.http.request(
        method,
        f"{cloud.url}/rest/api/{version}/search",
        params={"jql": "project = ACME"},
        json={"jql": "project = ACME"},
        timeout=5,
    )
    assert (response.status_code, response.json()) == (410, {"errorMessages": [REMOVED], "errors": {}})


def test_python_jira_without_server_info_falls_into_the_410(served: Served) -> None:
    client = cloud_client(served, get_server_info=False)
    with pytest.raises(JIRAError) as caught:
        client.search_issues("project = ACME")
    assert caught.value.status_code == 410
    client.close()


def test_start_at_on_cloud_fails_in_python_jira_before_any_request(cloud: Site) -> None:
    since = cloud.served.control.last_seq()
    with pytest.raises(JIRAError, match="deprecated in Jira Cloud"):
        cloud.client.search_issues("project = ACME", startAt=50)
    assert cloud.served.control.requests(since=since) == []


def test_datacenter_search_pages_with_start_at_and_clamps_max_results(dc: Site) -> None:
    make_issues(dc, 5)
    dc.settings(max_results_limit=2)
    since = dc.served.control.last_seq()
    found = dc.client.search_issues("project = NET ORDER BY key ASC", maxResults=False)
    assert [i.key for i in found] == [f"NET-{n}" for n in range(1, 6)] and found.total == 5
    calls = search_calls(dc, since)
    assert [path for path, _q in calls] == ["field", "search", "search", "search"]
    assert calls[1][1]["validateQuery"] == ["True"] and [q["startAt"] for _p, q in calls[1:]] == [
        ["0"],
        ["2"],
        ["4"],
    ]
    one_page = dc.client.search_issues("project = NET", maxResults=100)
    assert (len(one_page), one_page.total, one_page.maxResults) == (2, 5, 2), "the clamp is silent"
    raw = dc.http.get(dc.rest("search"), params={"jql": "project = NET", "maxResults": 1}, timeout=5)
    body = openapi.validate(raw, "/rest/api/3/search")
    assert (body["startAt"], body["maxResults"], body["total"]) == (0, 1, 5)
    assert (
        set(body["issues"][0]["fields"]) >= {"summary", "status", "updated"}
        and "comment" not in body["issues"][0]["fields"]
    )


def test_datacenter_validate_query(dc: Site) -> None:
    strict = dc.http.get(dc.rest("search"), params={"jql": "project = NOPE"}, timeout=5)
    assert strict.status_code == 400
    assert strict.json()["errorMessages"] == ["The value 'NOPE' does not exist for the field 'project'."]
    lax = dc.http.get(
        dc.rest("search"), params={"jql": "project = NOPE", "validateQuery": "false"}, timeout=5
    )
    assert lax.status_code == 200 and lax.json()["warningMessages"] == [
        "The value 'NOPE' does not exist for the field 'project'."
    ]
    assert dc.http.get(dc.rest("search/jql"), params={"jql": "project = NET"}, timeout=5).status_code == 404


def test_datacenter_search_by_post(dc: Site) -> None:
    make_issues(dc, 2)
    found = dc.client.search_issues("project = NET", use_post=True)
    assert found.total == 2


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        (
            "project = ACME AND",
            "Error in the JQL Query: Expecting a field name but got the end of the query. (line 1, character 19)",
        ),
        (
            "project ACME",
            "Error in the JQL Query: Expecting operator but got 'ACME'. The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'. (line 1, character 9)",
        ),
        (
            'summary ~ "open',
            "Error in the JQL Query: The quoted string 'open' has not been completed. (line 1, character 11)",
        ),
        (
            "project = ACME foo",
            "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'foo'. (line 1, character 16)",
        ),
        ("nosuchfield = 1", "Field 'nosuchfield' does not exist or you do not have permission to view it."),
        (
            "customfield_10050 ~ INC1",
            "Field 'customfield_10050' does not exist or you do not have permission to view it.",
        ),
        ("summary = x", "The operator '=' is not supported by the 'summary' field."),
        (
            'updated >= "2026-01-01 10:00:00"',
            "Date value '2026-01-01 10:00:00' for field 'updated' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.",
        ),
        ("status = Nope", "The value 'Nope' does not exist for the field 'status'."),
        ("project = ACME ORDER BY description", "Field 'description' does not support sorting."),
    ],
)
def test_invalid_jql_answers_400_with_jiras_message(cloud: Site, jql: str, message: str) -> None:
    response = cloud.http.get(cloud.rest("search/jql"), params={"jql": jql}, timeout=5)
    assert (response.status_code, response.json()) == (400, {"errorMessages": [message], "errors": {}})


def test_approximate_count_on_cloud(cloud: Site) -> None:
    make_issues(cloud, 3)
    assert cloud.client.approximate_issue_count("project = ACME") == 3
    unbounded = cloud.http.post(
        cloud.rest("search/approximate-count", "3"), json={"jql": "order by key"}, timeout=5
    )
    assert unbounded.status_code == 400


def test_search_jql_caps_requested_properties(cloud: Site) -> None:
    response = cloud.http.get(
        cloud.rest("search/jql"), params={"jql": "project = ACME", "properties": "a,b,c,d,e,f"}, timeout=5
    )
    assert response.status_code == 400
