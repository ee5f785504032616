"""Workflow graphs: transition ids, availability, paths between statuses."""

from __future__ import annotations

import pytest

from connector.sandbox.jira.workflow import WorkflowGraph
from connector.sandbox.spec import DEFAULT_WORKFLOW, JiraStatus, JiraTransition, JiraWorkflow

GRAPH = WorkflowGraph(DEFAULT_WORKFLOW)


def test_transitions_are_numbered_like_classic_jira() -> None:
    assert [(t.transition_id, t.name) for t in GRAPH.transitions] == [
        ("11", "Start Progress"),
        ("21", "Wait for Customer"),
        ("31", "Resolve"),
        ("41", "Reopen"),
        ("51", "Close"),
    ]
    assert GRAPH.transition("31").requires == ("resolution",)


@pytest.mark.parametrize(
    ("status", "names"),
    [
        ("Open", ["Start Progress", "Wait for Customer", "Resolve"]),
        ("In Progress", ["Wait for Customer", "Resolve"]),
        ("Resolved", ["Reopen", "Close"]),
        ("Closed", []),
    ],
)
def test_available_from_each_status(status: str, names: list[str]) -> None:
    assert [t.name for t in GRAPH.available(status)] == names


@pytest.mark.parametrize(
    ("start", "end", "path"),
    [
        ("Open", "Closed", ["Resolve", "Close"]),
        ("Closed", "Open", None),
        ("Resolved", "Waiting for Customer", ["Reopen", "Wait for Customer"]),
        ("Open", "Open", []),
    ],
)
def test_shortest_paths(start: str, end: str, path: list[str] | None) -> None:
    found = GRAPH.path(start, end)
    assert (None if found is None else [t.name for t in found]) == path


def test_global_transitions_and_categories() -> None:
    graph = WorkflowGraph(
        JiraWorkflow(
            "A", (JiraStatus("A", "todo"), JiraStatus("B", "done")), (JiraTransition("Cancel", "B"),)
        )
    )
    assert [t.name for t in graph.available("A")] == ["Cancel"] and graph.available("B") == []
    assert graph.transitions[0].is_global and graph.category("B") == "done"


def test_unknown_statuses_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown statuses: Nowhere"):
        WorkflowGraph(JiraWorkflow("A", (JiraStatus("A", "todo"),), (JiraTransition("Go", "Nowhere"),)))
