"""A supplier search that answers something other than a page of issues: the poll fails, nothing moves on."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sync_oracle import FAST, converge
from tests.integration.world import World

QUICK_RETRIES = {
    **FAST,
    "\nmetrics:\n": "\nretry: {attempts: 2, initial_backoff: 10ms, max_backoff: 20ms, cooldown: 1s}\nmetrics:\n",
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World.create(tmp_path, overrides=QUICK_RETRIES)
    yield created
    created.close()


def test_a_search_answer_without_issues_keeps_the_watermark_and_loses_no_reply(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = world.runtime()
    try:
        incident = world.create_incident(assignment_group=world.acme_group())
        converge(runtime)
        (issue,) = world.issues("acme", "ACME")
        before = runtime.store.watermarks.get("jira:acme")
        assert before is not None
        world.agent("acme").add_comment(issue.key, "Looking into the storage array")
        world.jira_control.add_fault(
            path=r"^/acme/rest/api/\d/search/jql$", method="GET", status=200, body={"isLast": True}
        )
        time.sleep(1.1)  # a new second on the server's clock: an advanced watermark would differ
        with caplog.at_level(logging.WARNING):
            runtime.engine.cycle(sweep=False)
        assert runtime.store.watermarks.get("jira:acme") == before, "a bad answer must not move the watermark"
        assert "cannot search acme" in caplog.text and "no list of issues" in caplog.text

        world.jira_control.clear_faults()
        time.sleep(1.1)  # the cool-down the failed tries opened
        converge(runtime, sweep=False)
        notes = [j["value"] for j in world.journal(incident["sys_id"]) if j["element"] == "work_notes"]
        assert sum("Looking into the storage array" in note for note in notes) == 1
        assert runtime.store.watermarks.get("jira:acme") != before
    finally:
        runtime.close()
