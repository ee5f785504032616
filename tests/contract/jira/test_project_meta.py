"""What a client learns of a project before working in it: statuses per issue type, the create screen."""

from __future__ import annotations

import pytest
from jira import JIRAError

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Site

STATUSES = "/rest/api/3/project/{projectIdOrKey}/statuses"
CREATEMETA = "/rest/api/3/issue/createmeta/{projectIdOrKey}/issuetypes/{issueTypeId}"


def _type_id(site: Site) -> str:
    return next(t.id for t in site.client.project(site.project).issueTypes if t.name == site.issue_type)


def test_statuses_per_issue_type_through_python_jira(site: Site) -> None:
    types = {t.name: t for t in site.client.issue_types_for_project(site.project)}
    assert set(types) == {site.issue_type, "Task"}
    statuses = [(s.name, s.statusCategory.key) for s in types[site.issue_type].statuses]
    expected = (
        [
            ("Open", "new"),
            ("In Progress", "indeterminate"),
            ("Waiting for Customer", "indeterminate"),
            ("Resolved", "done"),
            ("Closed", "done"),
        ]
        if site.cloud
        else [("New", "new"), ("Investigating", "indeterminate"), ("Restored", "done"), ("Closed", "done")]
    )
    assert statuses == expected


@pytest.mark.parametrize("version", ["2", "3"])
def test_statuses_match_the_spec(cloud: Site, version: str) -> None:
    response = cloud.http.get(cloud.rest(f"project/{cloud.project}/statuses", version), timeout=5)
    body = openapi.validate(response, STATUSES)
    assert [t["subtask"] for t in body] == [False, False]


def test_statuses_of_an_unknown_project_is_404(site: Site) -> None:
    response = site.http.get(site.rest("project/NOPE/statuses"), timeout=5)
    assert response.status_code == 404
    assert response.json()["errorMessages"] == ["No project could be found with key 'NOPE'."]
    openapi.check(response.json(), openapi.component("ErrorCollection"))


def test_cloud_createmeta_lists_fields_and_matches_the_spec(cloud: Site) -> None:
    response = cloud.http.get(
        cloud.rest(f"issue/createmeta/{cloud.project}/issuetypes/{_type_id(cloud)}", "3")
    )
    body = openapi.validate(response, CREATEMETA)
    fields = {f["fieldId"]: f for f in body["fields"]}
    assert "values" not in body and body["total"] == len(fields)
    assert {name for name, f in fields.items() if f["required"]} == {"project", "issuetype", "summary"}
    assert [v["name"] for v in fields["priority"]["allowedValues"]] == [
        "Highest",
        "High",
        "Medium",
        "Low",
        "Lowest",
    ]
    assert fields["priority"]["defaultValue"]["name"] == "Medium" and fields["priority"]["hasDefaultValue"]
    assert fields["customfield_10050"]["schema"]["custom"].endswith(":textfield")
    assert {"status", "resolution", "created", "comment"}.isdisjoint(fields), "not settable on create"


def test_python_jira_refuses_createmeta_fields_on_cloud(cloud: Site) -> None:
    """Why the adapter reads createmeta itself: python-jira rejects the call on Cloud (pycontribs/jira#1907)."""
    with pytest.raises(JIRAError, match="Unsupported JIRA deployment type"):
        cloud.client.project_issue_fields(cloud.project, _type_id(cloud))


def test_datacenter_createmeta_pages_values_as_python_jira_reads_them(dc: Site) -> None:
    first = dc.client.project_issue_fields(dc.project, _type_id(dc), maxResults=3)
    assert [f.fieldId for f in first] == ["summary", "description", "issuetype"]
    fields = dc.client.project_issue_fields(dc.project, _type_id(dc), maxResults=False)
    assert {f.fieldId for f in fields if f.required} == {"project", "issuetype", "summary"}
    page = dc.http.get(
        dc.rest(f"issue/createmeta/{dc.project}/issuetypes/{_type_id(dc)}"),
        params={"startAt": 3, "maxResults": 3},
        timeout=5,
    ).json()
    assert page["startAt"] == 3 and page["isLast"] is False and "fields" not in page
    assert [f.name for f in fields if f.fieldId == "priority"] == ["Priority"]


def test_createmeta_refuses_an_oversized_page_on_cloud(cloud: Site) -> None:
    response = cloud.http.get(
        cloud.rest(f"issue/createmeta/{cloud.project}/issuetypes/{_type_id(cloud)}"),
        params={"maxResults": 201},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["errorMessages"] == ["Parameter 'maxResults' must not exceed the limit '200'"]


def test_createmeta_of_an_issue_type_the_project_lacks_is_404(site: Site) -> None:
    response = site.http.get(site.rest(f"issue/createmeta/{site.project}/issuetypes/99999"), timeout=5)
    assert response.status_code == 404
