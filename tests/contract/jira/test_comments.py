"""Comments: strings on v2, ADF on v3, one page per python-jira call."""

from __future__ import annotations

import pytest
from jira import JIRAError

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Site

ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "From v3"}]}],
}


def test_add_and_list_comments(site: Site) -> None:
    issue = site.new_issue()
    before = site.client.issue(issue.key).fields.updated
    comment = site.client.add_comment(issue, "Supplier is investigating")
    assert comment.id and comment.body == "Supplier is investigating"
    assert comment.author.displayName == "MIM Connector" and comment.created == comment.updated
    assert [c.body for c in site.client.comments(issue)] == ["Supplier is investigating"]
    assert site.client.issue(issue.key).fields.updated >= before


def test_comment_update_and_delete(site: Site) -> None:
    issue = site.new_issue()
    comment = site.client.add_comment(issue, "first")
    comment.update(body="edited")
    assert site.client.comment(issue.key, comment.id).body == "edited"
    comment.delete()
    assert site.client.comments(issue) == []
    missing = site.http.get(site.rest(f"issue/{issue.key}/comment/{comment.id}"), timeout=5)
    assert missing.status_code == 404


def test_v3_bodies_are_adf_both_ways(cloud: Site) -> None:
    issue = cloud.new_issue()
    posted = cloud.http.post(cloud.rest(f"issue/{issue.key}/comment", "3"), json={"body": ADF}, timeout=5)
    comment = openapi.validate(posted, "/rest/api/3/issue/{issueIdOrKey}/comment")
    assert comment["body"] == ADF
    assert cloud.client.comments(issue)[0].body == "From v3"
    cloud.client.add_comment(issue, "From v2")
    page = openapi.validate(
        cloud.http.get(cloud.rest(f"issue/{issue.key}/comment", "3"), timeout=5),
        "/rest/api/3/issue/{issueIdOrKey}/comment",
    )
    assert page["comments"][1]["body"]["content"][0]["content"][0]["text"] == "From v2"
    single = cloud.http.get(cloud.rest(f"issue/{issue.key}/comment/{comment['id']}", "3"), timeout=5)
    openapi.validate(single, "/rest/api/3/issue/{issueIdOrKey}/comment/{id}")


def test_v3_refuses_a_string_body_and_empty_bodies_are_refused(cloud: Site) -> None:
    issue = cloud.new_issue()
    refused = cloud.http.post(
        cloud.rest(f"issue/{issue.key}/comment", "3"), json={"body": "plain"}, timeout=5
    )
    assert refused.status_code == 400
    assert refused.json()["errors"] == {
        "comment": "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    }
    with pytest.raises(JIRAError) as caught:
        cloud.client.add_comment(issue, "   ")
    assert caught.value.response.json()["errors"] == {"comment": "Comment body can not be empty!"}


def test_python_jira_reads_only_the_first_page_of_comments(site: Site) -> None:
    issue = site.new_issue()
    for number in range(3):
        site.client.add_comment(issue, f"note {number}")
    assert [c.body for c in site.client.comments(issue, max_results=2)] == ["note 0", "note 1"]
    assert [c.body for c in site.client.comments(issue, order_by="-created", max_results=1)] == ["note 2"]
    page = site.http.get(site.rest(f"issue/{issue.key}/comment?maxResults=2&startAt=2"), timeout=5).json()
    assert (page["total"], page["startAt"], [c["body"] for c in page["comments"]]) == (3, 2, ["note 2"])
