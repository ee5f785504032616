"""Moving issues through the project workflow with python-jira."""

from __future__ import annotations

import pytest
from jira import JIRAError

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Site

CLOSE_IDS = {"cloud": "51", "datacenter": "41"}
NAMES = {
    "cloud": ("Start Progress", "Resolve", "Reopen", "Close"),
    "datacenter": ("Investigate", "Restore Service", "Reopen", "Close"),
}


def test_available_transitions_follow_the_workflow(site: Site) -> None:
    issue = site.new_issue()
    listed = site.client.transitions(issue)
    names = [t["name"] for t in listed]
    start, resolve, _reopen, _close = NAMES[site.deployment]
    assert start in names and resolve in names and "Close" not in names
    first = listed[0]
    assert first["id"] == "11" and first["to"]["statusCategory"]["key"] == "indeterminate"
    assert site.client.transitions(issue, id="11")[0]["name"] == start
    assert site.client.transitions(issue, id="999") == []


def test_transitions_v3_match_the_spec_and_expand_screen_fields(cloud: Site) -> None:
    issue = cloud.new_issue()
    response = cloud.http.get(
        cloud.rest(f"issue/{issue.key}/transitions?expand=transitions.fields", "3"), timeout=5
    )
    body = openapi.validate(response, "/rest/api/3/issue/{issueIdOrKey}/transitions")
    resolve = next(t for t in body["transitions"] if t["name"] == "Resolve")
    assert resolve["hasScreen"] is True and resolve["fields"]["resolution"]["required"] is True
    assert "Fixed" in [v["name"] for v in resolve["fields"]["resolution"]["allowedValues"]]


def test_transition_by_name_reads_the_list_then_posts_the_id(site: Site) -> None:
    issue = site.new_issue()
    since = site.served.control.last_seq()
    site.client.transition_issue(issue, NAMES[site.deployment][0])
    calls = [
        (e["method"], e["path"].rsplit("/", 1)[1], e["body"])
        for e in site.served.control.requests(since=since)
    ]
    assert calls == [
        ("GET", "transitions", None),
        ("POST", "transitions", {"transition": {"id": "11"}, "fields": {}}),
    ]
    assert site.client.issue(issue.key).fields.status.statusCategory.key == "indeterminate"


def test_a_transition_not_valid_from_the_current_status_is_400(site: Site) -> None:
    issue = site.new_issue()
    close_id = CLOSE_IDS[site.deployment]
    with pytest.raises(JIRAError) as caught:
        site.client.transition_issue(issue, close_id)
    assert caught.value.status_code == 400
    assert caught.value.response.json() == {
        "errorMessages": [f"Transition id '{close_id}' is not valid for this issue."],
        "errors": {},
    }


def test_resolution_is_required_set_on_done_and_cleared_on_reopen(site: Site) -> None:
    issue = site.new_issue()
    _start, resolve, reopen, _close = NAMES[site.deployment]
    with pytest.raises(JIRAError) as caught:
        site.client.transition_issue(issue, resolve)
    assert caught.value.status_code == 400
    assert caught.value.response.json() == {
        "errorMessages": [],
        "errors": {"resolution": "Resolution is required."},
    }
    site.client.transition_issue(
        issue, resolve, fields={"resolution": {"name": "Fixed"}}, comment="Root cause fixed"
    )
    done = site.client.issue(issue.key, expand="changelog")
    assert done.fields.status.statusCategory.key == "done" and done.fields.resolution.name == "Fixed"
    assert (
        done.fields.resolutiondate is not None and done.fields.comment.comments[0].body == "Root cause fixed"
    )
    items = {item.field: (item.fromString, item.toString) for item in done.changelog.histories[0].items}
    assert items["resolution"] == (None, "Fixed") and items["status"][1] in ("Resolved", "Restored")
    site.client.transition_issue(issue, reopen)
    reopened = site.client.issue(issue.key)
    assert (reopened.fields.resolution, reopened.fields.resolutiondate) == (None, None)


def test_a_field_off_the_transition_screen_is_refused(site: Site) -> None:
    issue = site.new_issue()
    with pytest.raises(JIRAError) as caught:
        site.client.transition_issue(issue, NAMES[site.deployment][0], fields={"summary": "sneaky"})
    assert caught.value.response.json()["errors"] == {
        "summary": "Field 'summary' cannot be set. It is not on the appropriate screen, or unknown."
    }


def test_a_transition_body_without_transition_is_400(site: Site) -> None:
    issue = site.new_issue()
    response = site.http.post(site.rest(f"issue/{issue.key}/transitions"), json={"fields": {}}, timeout=5)
    assert (response.status_code, response.json()["errorMessages"]) == (
        400,
        ["Missing 'transition' identifier"],
    )
