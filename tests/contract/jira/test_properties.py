"""Issue entity properties: where the connector keeps the ServiceNow identity on the Jira side."""

from __future__ import annotations

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Site


def test_put_new_then_replace_get_list_delete(site: Site) -> None:
    issue = site.new_issue()
    updated_before = site.client.issue(issue.key).fields.updated
    assert (
        site.client.add_issue_property(
            issue.key, "servicenow", {"sys_id": "abc", "number": "INC1"}
        ).status_code
        == 201
    )
    assert (
        site.client.add_issue_property(
            issue.key, "servicenow", {"sys_id": "abc", "number": "INC2"}
        ).status_code
        == 200
    )
    [prop] = site.client.issue_properties(issue.key)
    assert (prop.key, prop.value.number) == ("servicenow", "INC2")
    assert site.client.issue(issue.key).fields.updated == updated_before, "properties do not bump updated"
    assert (
        site.http.delete(site.rest(f"issue/{issue.key}/properties/servicenow"), timeout=5).status_code == 204
    )
    missing = site.http.get(site.rest(f"issue/{issue.key}/properties/servicenow"), timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {
        "errorMessages": ["The property with key 'servicenow' does not exist."],
        "errors": {},
    }


def test_property_shapes_match_the_spec(cloud: Site) -> None:
    issue = cloud.new_issue()
    cloud.client.add_issue_property(issue.key, "servicenow", {"sys_id": "abc"})
    keys = openapi.validate(
        cloud.http.get(cloud.rest(f"issue/{issue.key}/properties", "3"), timeout=5),
        "/rest/api/3/issue/{issueIdOrKey}/properties",
    )
    assert [k["key"] for k in keys["keys"]] == ["servicenow"]
    one = cloud.http.get(cloud.rest(f"issue/{issue.key}/properties/servicenow", "3"), timeout=5)
    assert openapi.validate(one, "/rest/api/3/issue/{issueIdOrKey}/properties/{propertyKey}") == {
        "key": "servicenow",
        "value": {"sys_id": "abc"},
    }


def test_an_empty_property_value_is_refused(site: Site) -> None:
    issue = site.new_issue()
    response = site.http.put(
        site.rest(f"issue/{issue.key}/properties/servicenow"),
        data=b"",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
