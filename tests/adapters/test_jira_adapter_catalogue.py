"""JiraAdapter's reads of a project's set-up (for ``supplier init``), over HTTP on Cloud and Data Center."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connector.core.ports import JiraStatusInfo
from tests.adapters.jira_sandbox import Jira, Served, greeted_jira, serve


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    yield from serve()


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest, served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Jira]:
    yield from greeted_jira(served, request.param, monkeypatch)


def _move(jira: Jira, key: str, *names: str) -> None:
    for name in names:
        step = next(t for t in jira.adapter.transitions(key) if t.name == name)
        jira.adapter.transition(key, step.transition_id, {"resolution": "Done"} if name == "Resolve" else {})


def test_project_lists_its_issue_types_in_one_get(jira: Jira) -> None:
    start = jira.seq()
    project = jira.adapter.project(jira.project)
    assert project is not None and jira.requests(start) == [("GET", f"project/{jira.project}")]
    assert project.key == jira.project and list(project.issue_type_ids) == [jira.issue_type, "Task"]
    assert all(type_id.isdigit() for type_id in project.issue_type_ids.values())


def test_an_unknown_project_is_none(jira: Jira) -> None:
    assert jira.adapter.project("NOPE") is None


def test_statuses_per_issue_type_with_categories(jira: Jira) -> None:
    start = jira.seq()
    statuses = jira.adapter.statuses_by_issue_type(jira.project)
    assert jira.requests(start) == [("GET", f"project/{jira.project}/statuses")]
    assert statuses[jira.issue_type] == (
        JiraStatusInfo("Open", "todo"),
        JiraStatusInfo("In Progress", "in_progress"),
        JiraStatusInfo("Waiting for Customer", "in_progress"),
        JiraStatusInfo("Resolved", "done"),
        JiraStatusInfo("Closed", "done"),
    )


def test_create_fields_say_what_is_required_and_list_allowed_values(jira: Jira) -> None:
    project = jira.adapter.project(jira.project)
    assert project is not None
    start = jira.seq()
    fields = {f.field_id: f for f in jira.adapter.create_fields(jira.project, project.issue_type_ids["Task"])}
    assert len(jira.requests(start)) == 1, "one page of 50 holds them all"
    assert {name for name, f in fields.items() if f.required} == {"project", "issuetype", "summary"}
    assert fields["priority"].allowed_values == ("Highest", "High", "Medium", "Low", "Lowest")
    assert fields["priority"].has_default and fields["issuetype"].allowed_values == ("Task",)
    assert fields["customfield_10050"].name == "SNOW Ref"


def test_sample_issue_finds_the_oldest_or_one_in_a_status(jira: Jira) -> None:
    assert jira.adapter.sample_issue(jira.project, jira.issue_type) is None
    first, second = jira.new_issue("first"), jira.new_issue("second")
    _move(jira, second, "Start Progress")
    start = jira.seq()
    assert jira.adapter.sample_issue(jira.project, jira.issue_type) == first
    assert jira.adapter.sample_issue(jira.project, jira.issue_type, "In Progress") == second
    assert jira.adapter.sample_issue(jira.project, jira.issue_type, "Closed") is None
    assert jira.adapter.sample_issue(jira.project, "Task") is None
    assert len(jira.requests(start)) == 4


def test_workflow_steps_carry_the_screen_fields(jira: Jira) -> None:
    key = jira.new_issue()
    start = jira.seq()
    steps = {step.name: step for step in jira.adapter.workflow_steps(key)}
    assert jira.requests(start) == [("GET", f"issue/{key}/transitions")]
    assert {name: step.to_status for name, step in steps.items()} == {
        "Start Progress": "In Progress",
        "Wait for Customer": "Waiting for Customer",
        "Resolve": "Resolved",
    }
    (resolution,) = steps["Resolve"].fields
    assert resolution.field_id == "resolution" and resolution.required
    assert resolution.allowed_values[:2] == ("Done", "Fixed")
    assert steps["Start Progress"].fields == () and not steps["Start Progress"].is_global


def test_created_in_status_reads_the_changelog(jira: Jira) -> None:
    untouched, moved = jira.new_issue("untouched"), jira.new_issue("moved")
    _move(jira, moved, "Start Progress", "Resolve", "Close")
    assert jira.adapter.created_in_status(untouched) == "Open"
    start = jira.seq()
    assert jira.adapter.created_in_status(moved) == "Open"
    assert len(jira.requests(start)) == 1, "the oldest status change answers it"
