"""Issue links with python-jira: link types, create, read from both sides, delete, search.

The rule under test (see ``connector/sandbox/jira/links.py`` for the sources): ``POST issueLink``
with ``inwardIssue`` A and ``outwardIssue`` B reads "A <outward> B". A supplier linking its
incident to its problem as ``create_issue_link("Problem/Incident", inwardIssue=INC,
outwardIssue=PRB)`` says "INC causes PRB": INC shows PRB under ``outwardIssue``, PRB shows INC under
``inwardIssue``.
"""

from __future__ import annotations

from typing import Any

import pytest
from jira import JIRAError

from tests.contract.jira import openapi
from tests.contract.jira.conftest import Site

STANDARD_TYPES = [
    ("Blocks", "is blocked by", "blocks"),
    ("Cloners", "is cloned by", "clones"),
    ("Duplicate", "is duplicated by", "duplicates"),
    ("Relates", "relates to", "relates to"),
    ("Problem/Incident", "is caused by", "causes"),
]
NOT_FOUND = "Issue does not exist or you do not have permission to see it."


def incident_and_problem(site: Site) -> tuple[str, str]:
    incident = site.new_issue("Checkout down for EU customers")
    problem = site.new_issue("Connection pool exhausted after config push")
    return incident.key, problem.key


def link_cause(site: Site, incident: str, problem: str, **extra: Any) -> str:
    """Link "incident causes problem" with python-jira; return the link id as either side shows it."""
    response = site.client.create_issue_link("Problem/Incident", incident, problem, **extra)
    assert (response.status_code, response.text) == (201, "")
    [link] = site.client.issue(incident, fields="issuelinks").fields.issuelinks
    return str(link.id)


def post_link(site: Site, body: dict[str, Any], version: str = "2") -> Any:
    return site.http.post(site.rest("issueLink", version), json=body, timeout=5)


def test_link_types_are_seeded_and_readable_one_by_one(site: Site) -> None:
    types = site.client.issue_link_types()
    assert [(t.name, t.inward, t.outward) for t in types] == STANDARD_TYPES
    cause = next(t for t in types if t.name == "Problem/Incident")
    assert cause.raw == {
        "id": cause.id,
        "name": "Problem/Incident",
        "inward": "is caused by",
        "outward": "causes",
        "self": site.rest(f"issueLinkType/{cause.id}"),
    }
    assert site.client.issue_link_type(cause.id).raw == cause.raw
    unknown = site.http.get(site.rest("issueLinkType/99999"), timeout=5)
    assert (unknown.status_code, unknown.json()["errorMessages"]) == (
        404,
        ["No issue link type with id '99999' found."],
    )
    assert site.http.get(site.rest("issueLinkType/blocks"), timeout=5).status_code == 400


def test_problem_incident_link_reads_right_from_both_sides(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    before = {key: site.client.issue(key).fields.updated for key in (incident, problem)}
    site.served.control.set_clock(120)
    link_id = link_cause(site, incident, problem)

    on_incident = site.client.issue(incident, expand="changelog")
    [link] = on_incident.fields.issuelinks
    assert not hasattr(link, "inwardIssue") and link.outwardIssue.key == problem
    assert (link.type.name, link.type.outward) == ("Problem/Incident", "causes")
    assert link.outwardIssue.fields.summary == "Connection pool exhausted after config push"
    assert link.self == site.rest(f"issueLink/{link_id}")

    on_problem = site.client.issue(problem, expand="changelog")
    [back] = on_problem.fields.issuelinks
    assert str(back.id) == link_id and not hasattr(back, "outwardIssue")
    assert (back.inwardIssue.key, back.type.inward) == (incident, "is caused by")

    for issue, text in (
        (on_incident, f"This issue causes {problem}"),
        (on_problem, f"This issue is caused by {incident}"),
    ):
        assert issue.fields.updated > before[issue.key], "a link is an update of both issues"
        [history] = issue.raw["changelog"]["histories"]
        assert history["items"] == [
            {
                "field": "Link",
                "fieldtype": "jira",
                "from": None,
                "fromString": None,
                "to": problem if issue is on_incident else incident,
                "toString": text,
            }
        ]

    whole = site.client.issue_link(link_id)
    assert (whole.inwardIssue.key, whole.outwardIssue.key, whole.type.name) == (
        incident,
        problem,
        "Problem/Incident",
    ), "GET issueLink echoes the create request: inwardIssue is the one that causes"


def test_a_link_by_type_id_and_issue_ids(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    duplicate = next(t for t in site.client.issue_link_types() if t.name == "Duplicate")
    ids = {key: site.client.issue(key).id for key in (incident, problem)}
    body = {
        "type": {"id": duplicate.id},
        "inwardIssue": {"id": ids[problem]},
        "outwardIssue": {"id": ids[incident]},
    }
    assert post_link(site, body).status_code == 201
    [link] = site.client.issue(problem, fields="issuelinks").fields.issuelinks
    assert (link.type.outward, link.outwardIssue.key) == ("duplicates", incident)


def test_repeating_a_link_keeps_one_link_and_adds_the_comment_to_the_source(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    link_id = link_cause(site, incident, problem)
    link_cause(site, incident, problem, comment={"body": "Root cause confirmed by the supplier"})
    assert [str(link.id) for link in site.client.issue(problem).fields.issuelinks] == [link_id]
    assert [c.body for c in site.client.comments(incident)] == ["Root cause confirmed by the supplier"]
    assert site.client.comments(problem) == []


def test_delete_removes_the_link_from_both_issues(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    link_id = link_cause(site, incident, problem)
    response = site.client.delete_issue_link(link_id)
    assert response.status_code == 204
    for key in (incident, problem):
        issue = site.client.issue(key, expand="changelog")
        assert issue.fields.issuelinks == []
        assert issue.changelog.histories[0].items[0].fromString.startswith("This issue ")
    for method in ("get", "delete"):
        gone = site.http.request(method, site.rest(f"issueLink/{link_id}"), timeout=5)
        assert (gone.status_code, gone.json()["errorMessages"]) == (
            404,
            [f"No issue link with id '{link_id}' exists."],
        )
    assert site.http.get(site.rest("issueLink/abc"), timeout=5).status_code == 400


def test_deleting_an_issue_drops_its_links(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    link_id = link_cause(site, incident, problem)
    site.client.issue(problem).delete()
    assert site.client.issue(incident).fields.issuelinks == []
    assert site.http.get(site.rest(f"issueLink/{link_id}"), timeout=5).status_code == 404


@pytest.mark.parametrize(
    ("change", "status", "messages"),
    [
        ({"type": {"name": "Causes"}}, 404, ["No issue link type with name 'Causes' found."]),
        ({"type": {"id": "99"}}, 404, ["No issue link type with id '99' found."]),
        ({"outwardIssue": {"key": "NOPE-1"}}, 404, [NOT_FOUND]),
        (
            {"inwardIssue": {"id": "99999"}, "type": {"name": "Causes"}},
            404,
            ["No issue link type with name 'Causes' found.", NOT_FOUND],
        ),
    ],
)
def test_refusals_create_nothing(
    site: Site, change: dict[str, Any], status: int, messages: list[str]
) -> None:
    incident, problem = incident_and_problem(site)
    body = {
        "type": {"name": "Problem/Incident"},
        "inwardIssue": {"key": incident},
        "outwardIssue": {"key": problem},
    }
    response = post_link(site, body | change)
    assert (response.status_code, response.json()["errorMessages"]) == (status, messages)
    openapi.check(response.json(), openapi.component("ErrorCollection"))
    assert site.client.issue(incident).fields.issuelinks == []


def test_an_issue_cannot_link_to_itself(site: Site) -> None:
    incident = site.new_issue().key
    body = {"type": {"name": "Relates"}, "inwardIssue": {"key": incident}, "outwardIssue": {"key": incident}}
    response = post_link(site, body)
    assert (response.status_code, response.json()["errorMessages"]) == (
        400,
        ["You cannot link an issue to itself."],
    )


def test_python_jira_raises_on_an_unknown_type(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    with pytest.raises(JIRAError) as refused:
        site.client.create_issue_link("Root cause", incident, problem)
    assert refused.value.status_code == 404


def test_an_empty_comment_refuses_the_link(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    body = {
        "type": {"name": "Relates"},
        "inwardIssue": {"key": incident},
        "outwardIssue": {"key": problem},
        "comment": {"body": "  "},
    }
    response = post_link(site, body)
    assert response.status_code == 400 and response.json()["errors"] == {
        "comment": "Comment body can not be empty!"
    }
    assert site.client.issue(incident).fields.issuelinks == []


def test_only_data_center_says_where_the_link_is(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    body = {"type": {"name": "Blocks"}, "inwardIssue": {"key": incident}, "outwardIssue": {"key": problem}}
    response = post_link(site, body)
    [link] = site.client.issue(incident, fields="issuelinks").fields.issuelinks
    expected = None if site.cloud else site.rest(f"issueLink/{link.id}")
    assert response.headers.get("Location") == expected


def test_issuelinks_in_search_and_linked_issues_jql(site: Site) -> None:
    incident, problem = incident_and_problem(site)
    bystander = site.new_issue("Unrelated").key
    link_cause(site, incident, problem)
    found = site.client.search_issues(f"key = {incident}", fields="issuelinks")
    assert [link.outwardIssue.key for link in found[0].fields.issuelinks] == [problem]

    def linked(jql_args: str) -> list[str]:
        jql = f"project = {site.project} AND issue in linkedIssues({jql_args})"
        return [issue.key for issue in site.client.search_issues(jql, fields="summary")]

    assert linked(incident) == [problem]
    assert linked(f'{incident}, "causes"') == [problem]
    assert linked(f'{problem}, "Is Caused By"') == [incident]
    assert linked(f'{incident}, "is caused by"') == []
    assert bystander not in linked(problem)
    not_linked = site.client.search_issues(
        f"project = {site.project} AND issue not in linkedIssues({incident})"
    )
    assert {issue.key for issue in not_linked} == {incident, bystander}
    with pytest.raises(JIRAError) as refused:
        site.client.search_issues(f"project = {site.project} AND issue = linkedIssues({incident})")
    assert refused.value.status_code == 400


def test_issuelinks_is_a_navigable_read_only_field(site: Site) -> None:
    field = next(f for f in site.client.fields() if f["id"] == "issuelinks")
    assert (field["name"], field["navigable"], field["clauseNames"], field["schema"]) == (
        "Linked Issues",
        True,
        [],
        {"type": "array", "items": "issuelinks", "system": "issuelinks"},
    )
    issue = site.new_issue()
    assert site.client.issue(issue.key).fields.issuelinks == []


def test_link_shapes_match_the_spec(cloud: Site) -> None:
    incident, problem = incident_and_problem(cloud)
    listed = openapi.validate(
        cloud.http.get(cloud.rest("issueLinkType", "3"), timeout=5), "/rest/api/3/issueLinkType"
    )
    cause = next(t for t in listed["issueLinkTypes"] if t["name"] == "Problem/Incident")
    one = cloud.http.get(cloud.rest(f"issueLinkType/{cause['id']}", "3"), timeout=5)
    assert openapi.validate(one, "/rest/api/3/issueLinkType/{issueLinkTypeId}") == cause
    comment = {
        "body": {
            "type": "doc",
            "version": 1,
            "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": "Linked by the supplier"}]}
            ],
        }
    }
    body = {"type": {"id": cause["id"]}, "inwardIssue": {"key": incident}, "outwardIssue": {"key": problem}}
    openapi.check(body | {"comment": comment}, openapi.component("LinkIssueRequestJsonBean"))
    as_v2_string = post_link(cloud, body | {"comment": {"body": "plain text"}}, "3")
    assert as_v2_string.status_code == 400, "v3 comments are ADF documents"
    assert post_link(cloud, body | {"comment": comment}, "3").status_code == 201
    issue = cloud.http.get(
        cloud.rest(f"issue/{incident}", "3"), params={"fields": "issuelinks,comment"}, timeout=5
    )
    fields = openapi.validate(issue, "/rest/api/3/issue/{issueIdOrKey}")["fields"]
    [entry] = fields["issuelinks"]
    assert set(entry) == {"id", "self", "type", "outwardIssue"}
    openapi.check(entry["type"], openapi.component("IssueLinkType"))
    openapi.check(entry["outwardIssue"], openapi.component("LinkedIssue"))
    assert fields["comment"]["comments"][0]["body"] == comment["body"]
    whole = cloud.http.get(cloud.rest(f"issueLink/{entry['id']}", "3"), timeout=5)
    link = openapi.validate(whole, "/rest/api/3/issueLink/{linkId}")
    assert (link["inwardIssue"]["key"], link["outwardIssue"]["key"]) == (incident, problem)
    deleted = cloud.http.delete(cloud.rest(f"issueLink/{entry['id']}", "3"), timeout=5)
    assert deleted.status_code == 204 and deleted.content == b""


def test_version_3_is_cloud_only(dc: Site) -> None:
    assert dc.http.get(dc.rest("issueLinkType", "3"), timeout=5).status_code == 404
