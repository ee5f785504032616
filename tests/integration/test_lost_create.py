"""A create whose answer was lost is found by its stamp in a bounded number of calls, end to end."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import requests

from tests.integration.sync_oracle import FAST, act, check, converge
from tests.integration.world import World

ISSUE = r"^/acme/rest/api/2/issue$"
PAGE = 100
"""Issues per page of the sandbox's Cloud search when fields are asked for (as Jira Cloud)."""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World.create(tmp_path, overrides=FAST)
    yield created
    created.close()


def create_as_connector(world: World, count: int) -> None:
    """``count`` issues created by the connector's Jira account for other incidents (like the rest of a burst)."""
    world.jira_control.post("sites/acme/settings", {"burst_per_second": 1_000_000})
    session = requests.Session()
    session.auth = ("mim-connector@example.com", world.environ["MIM_DEMO_ACME_TOKEN"])
    url = f"{world.sandbox.site_url('acme')}/rest/api/2/issue"
    for n in range(count):
        stamp = {"stamp": f"burst-{n}", "incident_sys_id": f"burst{n}", "incident_number": f"INC9{n:06d}"}
        body = {
            "fields": {
                "project": {"key": "ACME"},
                "issuetype": {"name": "Incident"},
                "summary": f"burst {n}",
            },
            # Stamped for another instance's incidents: this one has nothing to look up for them.
            "properties": [{"key": "mim-connector", "value": {**stamp, "servicenow": "burst.example"}}],
        }
        session.post(url, json=body, timeout=10).raise_for_status()


def test_a_lost_create_is_found_by_search_pages_not_one_read_per_recent_issue(world: World) -> None:
    """The executor settles the pending create from search pages that carry the stamp property."""
    later = 250
    created = world.create_incident(assignment_group=world.acme_group())
    world.jira_control.add_fault(method="POST", path=ISSUE, when="after_commit", action="drop", count=1)
    runtime = world.runtime()
    try:
        assert runtime.engine.cycle().failed, "the lost answer surfaces as a failure of that entity"
        create_as_connector(world, later)  # the burst goes on: newer issues of ours
        (link,) = runtime.store.links.for_incident(created["sys_id"])
        incident = runtime.snow.incident(created["sys_id"], runtime.engine.fields)
        assert incident is not None and link.state == "creating"
        marks = world.marks()
        settled = runtime.engine.suppliers["acme"].executor.reconcile(incident, link, datetime.now(UTC))
        calls = [e for e in world.jira_control.requests(since=marks[1]) if e["user"] == "mim-connector"]
        assert settled is not None and (settled.state, settled.jira_key) == ("linked", "ACME-1")
        converge(runtime)
    finally:
        runtime.close()
    lookups = [e for e in calls if "/search" in e["path"] and "reporter" in unquote_plus(e.get("query", ""))]
    assert len(lookups) == len(calls) == math.ceil((later + 1) / PAGE), (
        "one search page per 100 recent issues"
    )
    summaries = [i.fields.summary for i in world.issues("acme", "ACME")]
    assert sum(created["number"] in s for s in summaries) == 1, "no duplicate"


def test_a_create_answered_without_its_issue_is_settled_by_its_stamp(world: World) -> None:
    """``200 {}`` to the create: one clear, classified failure of that entity; then found, not repeated."""
    incident = act(world, "create", None)
    world.jira_control.add_fault(method="POST", path=ISSUE, when="after_commit", status=200, body={}, count=1)
    runtime = world.runtime()
    try:
        report = runtime.engine.cycle()
        assert report.failed == {
            f"{incident['sys_id']}:acme": "UncertainOutcome: jira:acme: POST issue answered without the "
            "new issue's id and key; it may have been created"
        }
        converge(runtime)
        check(world, incident, 1)
    finally:
        runtime.close()


def test_a_lost_create_found_after_both_sides_moved_mirrors_the_desks_later_state(world: World) -> None:
    """The create's answer is lost; the engineer starts work, then the desk resolves the incident.

    The issue found carries the stamp of the create the store has pending: nothing was synced to it
    yet, so the desk's resolution is news to it and reaches it (a store that never knew the issue
    would rebuild its shadow from the changelog instead, and let the supplier's move stand).
    """
    incident = act(world, "create", None)
    world.jira_control.add_fault(method="POST", path=ISSUE, when="after_commit", action="drop", count=1)
    runtime = world.runtime()
    try:
        assert runtime.engine.cycle().failed, "the create's answer is lost"
        (issue,) = world.issues("acme", "ACME")
        agent = world.agent("acme")
        start = next(t["id"] for t in agent.transitions(issue.key) if t["to"]["name"] == "In Progress")
        agent.transition_issue(issue.key, start)
        world.update_incident(
            incident["sys_id"], state="6", close_code="Solution provided", close_notes="Fixed"
        )
        # A restart (say the daemon was killed); the supplier's search shows the issue, stamped,
        # before the incident's poll comes round.
        runtime.close()
        runtime = world.runtime()
        runtime.engine.cycle(servicenow=False, sites=["acme"])
        converge(runtime)
    finally:
        runtime.close()
    assert world.agent("acme").issue(issue.key).fields.status.name == "Resolved"
    assert len(world.issues("acme", "ACME")) == 1
