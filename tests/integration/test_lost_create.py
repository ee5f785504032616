"""A create whose answer was lost is found by its stamp in a bounded number of calls, end to end."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote_plus

import pytest
import requests

from tests.integration.sync_oracle import FAST, converge
from tests.integration.world import World

ISSUE = r"^/acme/rest/api/2/issue$"
READ = re.compile(r"^/acme/rest/api/2/issue/[A-Z]+-\d+$")
PAGE = 100
"""Issues per page of the sandbox's Cloud search when fields are asked for (as Jira Cloud)."""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World.create(tmp_path, overrides=FAST)
    yield created
    created.close()


def create_as_connector(world: World, count: int) -> None:
    """``count`` issues created by the connector's Jira account for other incidents (the rest of a burst)."""
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
            "properties": [{"key": "mim-connector", "value": {**stamp, "instance": "mim-connector-demo"}}],
        }
        session.post(url, json=body, timeout=10).raise_for_status()


def test_a_lost_create_is_found_by_search_pages_not_one_read_per_recent_issue(world: World) -> None:
    later = 250
    incident = world.create_incident(assignment_group=world.acme_group())
    world.jira_control.add_fault(method="POST", path=ISSUE, when="after_commit", action="drop", count=1)
    runtime = world.runtime()
    try:
        assert runtime.engine.cycle().failed, "the lost answer surfaces as a failure of that entity"
        create_as_connector(world, later)  # the burst goes on: newer issues of ours
        marks = world.marks()
        converge(runtime)
        (link,) = runtime.store.links.for_incident(incident["sys_id"])
        assert (link.state, link.jira_key) == ("linked", "ACME-1"), "the lost create was found, not repeated"
    finally:
        runtime.close()
    summaries = [i.fields.summary for i in world.issues("acme", "ACME")]
    assert sum(incident["number"] in s for s in summaries) == 1, "no duplicate"
    calls = [e for e in world.jira_control.requests(since=marks[1]) if e["user"] == "mim-connector"]
    lookups = [e for e in calls if "/search" in e["path"] and "reporter" in unquote_plus(e.get("query", ""))]
    reads = [e["path"] for e in calls if e["method"] == "GET" and READ.match(e["path"])]
    assert len(lookups) <= math.ceil((later + 1) / PAGE), "one search page per 100 recent issues"
    assert set(reads) <= {"/acme/rest/api/2/issue/ACME-1"}, "no read of any other recent issue"
