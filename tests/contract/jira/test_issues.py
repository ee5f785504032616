"""Creating, reading, editing and deleting issues with python-jira, and the raw shapes behind them."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from jira import JIRAError

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Site

JIRA_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$")


def test_create_with_names_costs_two_project_lookups(site: Site) -> None:
    control = site.served.control
    since = control.last_seq()
    issue = site.client.create_issue(project=site.project, issuetype=site.issue_type, summary="Link down")
    calls = [
        (e["method"], e["path"].removeprefix(f"/{site.name}/rest/api/2/"), e["query"], e["status"])
        for e in control.requests(since=since)
    ]
    project_id = site.client.project(site.project).id
    assert calls == [
        ("GET", f"project/{site.project}", "", 200),
        ("GET", f"project/{project_id}", "expand=issueTypes", 200),
        ("POST", "issue", "", 201),
        ("GET", f"issue/{issue.key}", "", 200),
    ]
    assert issue.key == f"{site.project}-1" and issue.fields.status.name in ("Open", "New")


def test_create_with_ids_goes_straight_to_post(site: Site) -> None:
    project = site.client.project(site.project, expand="issueTypes")
    type_id = next(t.id for t in project.issueTypes if t.name == site.issue_type)
    since = site.served.control.last_seq()
    issue = site.client.create_issue(
        fields={
            "project": {"id": project.id},
            "issuetype": {"id": type_id},
            "summary": "By ids",
            "labels": ["servicenow"],
        },
        prefetch=False,
    )
    assert [e["method"] for e in site.served.control.requests(since=since)] == ["POST"]
    assert issue.key == f"{site.project}-1"
    assert site.client.issue(issue.key.lower()).fields.labels == ["servicenow"]


def test_created_issue_answer_and_bean_match_the_spec(cloud: Site) -> None:
    body = {
        "fields": {
            "project": {"key": "ACME"},
            "issuetype": {"name": "Incident"},
            "summary": "Spec check",
            "customfield_10050": "INC0010001",
        }
    }
    created = openapi.validate(
        cloud.http.post(cloud.rest("issue", "3"), json=body, timeout=5), "/rest/api/3/issue"
    )
    assert created["self"] == cloud.rest(f"issue/{created['id']}", "3")
    bean = openapi.validate(
        cloud.http.get(cloud.rest(f"issue/{created['key']}?expand=changelog,names", "3"), timeout=5),
        "/rest/api/3/issue/{issueIdOrKey}",
    )
    assert (
        bean["fields"]["customfield_10050"] == "INC0010001"
        and bean["names"]["customfield_10050"] == "SNOW Ref"
    )


def test_timestamps_have_milliseconds_and_the_users_offset(site: Site) -> None:
    issue = site.new_issue()
    created = issue.fields.created
    assert JIRA_TIME.match(created), created
    parsed = datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%f%z")
    stored = site.served.app.peek_issue(site.name, issue.key)
    assert stored is not None and parsed == stored.created
    expected_zone = "Europe/Berlin" if site.cloud else "Asia/Kolkata"
    assert parsed.utcoffset() == stored.created.astimezone(ZoneInfo(expected_zone)).utcoffset()
    assert (
        issue.fields.status.statusCategory.key == "new"
        and issue.fields.reporter.displayName == "MIM Connector"
    )


def test_update_fields_and_label_operations_write_a_changelog(site: Site) -> None:
    issue = site.new_issue(labels=["servicenow"])
    issue.update(
        fields={"summary": "Renamed"}, update={"labels": [{"add": "mim-proposed"}, {"remove": "servicenow"}]}
    )
    assert (issue.fields.summary, issue.fields.labels) == ("Renamed", ["mim-proposed"])
    again = site.client.issue(issue.key, expand="changelog")
    [history] = again.changelog.histories
    items = {item.field: (item.fromString, item.toString) for item in history.items}
    assert items == {"summary": ("Disk array degraded", "Renamed"), "labels": ("servicenow", "mim-proposed")}
    assert again.fields.updated >= again.fields.created


def test_a_no_op_update_leaves_no_trace(site: Site) -> None:
    issue = site.new_issue()
    before = issue.fields.updated
    issue.update(fields={"summary": issue.fields.summary})
    again = site.client.issue(issue.key, expand="changelog")
    assert again.fields.updated == before and again.changelog.histories == []


def test_status_cannot_be_set_by_edit(site: Site) -> None:
    issue = site.new_issue()
    with pytest.raises(JIRAError) as caught:
        issue.update(fields={"status": {"name": "Closed"}})
    assert caught.value.status_code == 400
    assert caught.value.response.json() == {
        "errorMessages": [],
        "errors": {
            "status": "Field 'status' cannot be set. It is not on the appropriate screen, or unknown."
        },
    }


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        (
            {"customfield_99999": "x"},
            {
                "customfield_99999": "Field 'customfield_99999' cannot be set. It is not on the appropriate screen, or unknown."
            },
        ),
        (
            {"resolution": {"name": "Fixed"}},
            {
                "resolution": "Field 'resolution' cannot be set. It is not on the appropriate screen, or unknown."
            },
        ),
        ({"summary": ""}, {"summary": "You must specify a summary of the issue."}),
        ({"summary": "a\nb"}, {"summary": "The summary is invalid because it contains newline characters."}),
        ({"priority": {"name": "Urgent"}}, {"priority": "The priority selected is invalid."}),
        ({"labels": ["two words"]}, {"labels": "The label 'two words' contains spaces which is invalid."}),
    ],
)
def test_create_refuses_bad_fields_with_field_errors(site: Site, fields: dict, errors: dict) -> None:
    with pytest.raises(JIRAError) as caught:
        site.new_issue(**fields)
    assert caught.value.status_code == 400
    assert caught.value.response.json() == {"errorMessages": [], "errors": errors}
    assert site.served.app.peek_issue(site.name, f"{site.project}-1") is None


def test_create_without_project_or_summary(site: Site) -> None:
    response = site.http.post(site.rest("issue"), json={"fields": {}}, timeout=5)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "project": "Specify a valid project ID or key",
        "summary": "You must specify a summary of the issue.",
    }


def test_properties_on_create_and_on_get(site: Site) -> None:
    body = {
        "fields": {
            "project": {"key": site.project},
            "issuetype": {"name": site.issue_type},
            "summary": "With identity",
        },
        "properties": [{"key": "servicenow", "value": {"sys_id": "abc123", "number": "INC0010001"}}],
    }
    key = site.http.post(site.rest("issue"), json=body, timeout=5).json()["key"]
    issue = site.client.issue(key, properties="servicenow")
    assert issue.raw["properties"] == {"servicenow": {"sys_id": "abc123", "number": "INC0010001"}}


def test_fields_parameter_limits_the_answer(site: Site) -> None:
    issue = site.new_issue()
    raw = site.http.get(site.rest(f"issue/{issue.key}?fields=summary,status"), timeout=5).json()
    assert set(raw["fields"]) == {"summary", "status"}
    raw = site.http.get(site.rest(f"issue/{issue.key}?fields=*all,-comment"), timeout=5).json()
    assert "comment" not in raw["fields"] and "customfield_10050" in raw["fields"]


def test_rich_text_is_a_string_on_v2_and_adf_on_v3(cloud: Site) -> None:
    issue = cloud.new_issue(
        description="First line\nsecond line\n\nNext paragraph", customfield_10070="Root cause text"
    )
    v3 = cloud.http.get(cloud.rest(f"issue/{issue.key}", "3"), timeout=5).json()["fields"]
    assert v3["description"]["type"] == "doc" and len(v3["description"]["content"]) == 2
    assert v3["customfield_10070"]["content"][0]["content"][0]["text"] == "Root cause text"
    assert issue.fields.description == "First line\nsecond line\n\nNext paragraph"
    refused = cloud.http.put(
        cloud.rest(f"issue/{issue.key}", "3"), json={"fields": {"description": "plain"}}, timeout=5
    )
    assert refused.status_code == 400
    assert refused.json()["errors"] == {
        "description": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    }


def test_datetime_custom_field_round_trips_in_the_users_zone(site: Site) -> None:
    issue = site.new_issue(customfield_10061="2026-03-01T12:00:00.000+0000")
    shown = issue.fields.customfield_10061
    assert (
        datetime.strptime(shown, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        == datetime.fromisoformat("2026-03-01T12:00:00+00:00").timestamp()
    )
    assert shown.endswith("+0100" if site.cloud else "+0530")


def test_edit_with_return_issue_and_delete(site: Site) -> None:
    issue = site.new_issue()
    response = site.http.put(
        site.rest(f"issue/{issue.id}?returnIssue=true"), json={"fields": {"summary": "Returned"}}, timeout=5
    )
    assert response.status_code == 200 and response.json()["fields"]["summary"] == "Returned"
    issue.delete()
    with pytest.raises(JIRAError) as caught:
        site.client.issue(issue.key)
    assert caught.value.status_code == 404
    assert caught.value.response.json() == {
        "errorMessages": ["Issue does not exist or you do not have permission to see it."],
        "errors": {},
    }


def test_assignee_by_account_id_on_cloud_and_name_on_datacenter(site: Site) -> None:
    colleague = "jane" if site.cloud else "jroe"
    other = site.served.app.sites[site.name].users[colleague]
    reference = {"accountId": other.account_id} if site.cloud else {"name": colleague}
    issue = site.new_issue(assignee=reference)
    assert issue.fields.assignee.displayName == other.display_name
    wrong = {"name": colleague} if site.cloud else {"name": "nobody"}
    with pytest.raises(JIRAError) as caught:
        issue.update(fields={"assignee": wrong})
    assert caught.value.status_code == 400 and "assignee" in caught.value.response.json()["errors"]


def test_full_changelog_endpoint_on_cloud(cloud: Site) -> None:
    issue = cloud.new_issue()
    for number in range(3):
        issue.update(fields={"summary": f"Rename {number}"})
    page = openapi.validate(
        cloud.http.get(cloud.rest(f"issue/{issue.key}/changelog?maxResults=2", "3"), timeout=5),
        "/rest/api/3/issue/{issueIdOrKey}/changelog",
    )
    assert (page["total"], page["isLast"], [v["items"][0]["toString"] for v in page["values"]]) == (
        3,
        False,
        ["Rename 0", "Rename 1"],
    )
