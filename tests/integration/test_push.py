"""Push end to end: the daemon against simulators that push, with polls too slow to explain anything.

``mim-connector run`` polls every 60 s here, so a change mirrored within seconds was heard by push:
a Jira webhook (signed, hex) or the ServiceNow update set's notification (signed, base64), both
sent by the sandbox through real HTTP to the daemon's receiver.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.integration.world import World, daemon_process, free_port, stop

SCRIPT = str(Path(sys.executable).parent / "mim-connector")
HOOK_SECRET = "acme webhook secret"
SN_SECRET = "servicenow push secret"
T = TypeVar("T")


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[World]:
    """The world with push on both sides; polls every 60 s unless the test asks for another interval."""
    poll = getattr(request, "param", "60s")
    monkeypatch.setenv("MIM_TEST_ACME_HOOK", HOOK_SECRET)
    monkeypatch.setenv("MIM_TEST_SN_PUSH", SN_SECRET)
    port = free_port()
    created = World.create(
        tmp_path,
        overrides={
            "  servicenow_interval: 2s\n  supplier_interval: 2s": (
                f"  servicenow_interval: {poll}\n  supplier_interval: {poll}"
            ),
            "        token: ${MIM_DEMO_ACME_TOKEN}\n": (
                "        token: ${MIM_DEMO_ACME_TOKEN}\n      webhook_secret: ${MIM_TEST_ACME_HOOK}\n"
            ),
            "    password: ${MIM_DEMO_SN_PASSWORD}\n": (
                "    password: ${MIM_DEMO_SN_PASSWORD}\n  push_secret: ${MIM_TEST_SN_PUSH}\n"
            ),
            "\nlogging:": f"\npush:\n  enabled: true\n  port: {port}\n\nlogging:",
        },
    )
    receiver = f"http://127.0.0.1:{port}/push"
    agent = created.agent("acme")
    hook = {
        "name": "mim-connector",
        "url": f"{receiver}/jira/acme",
        "events": ["jira:issue_created", "jira:issue_updated", "comment_created", "comment_updated"],
        "filters": {"issue-related-events-section": "project = ACME"},
        "secret": HOOK_SECRET,
    }
    agent._session.post(f"{agent.server_url}/rest/webhooks/1.0/webhook", json=hook).raise_for_status()
    created.servicenow_control.set_push(url=f"{receiver}/servicenow", secret=SN_SECRET, enabled=True)
    yield created
    created.close()


def until(what: str, check: Callable[[], T | None], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:.0f}s: {what}")


@pytest.fixture
def daemon(world: World) -> Iterator[subprocess.Popen[str]]:
    with daemon_process(SCRIPT, "run", "-c", str(world.config), env=os.environ.copy()) as running:
        # The first polls run at start; after them only push can make anything happen quickly.
        until("the daemon's first cycle", lambda: (world.root / "state.db").exists() or None)
        time.sleep(3)
        yield running
        err = stop(running)
        assert "Traceback" not in err, err


def issues(world: World) -> list[Any]:
    return world.issues("acme", "ACME")


def test_pushed_changes_are_mirrored_without_waiting_for_a_poll(world: World, daemon: Any) -> None:
    created = world.create_incident(assignment_group=world.acme_group(), short_description="Pushed")
    (issue,) = until("the ACME issue", lambda: [i for i in issues(world) if "Pushed" in i.fields.summary])
    world.agent("acme").add_comment(issue.key, "Pushed from Jira: failover under way")
    until(
        "the supplier's comment as a work note",
        lambda: [e for e in world.journal(created["sys_id"]) if "failover under way" in e["value"]],
    )
    deliveries = world.jira_control.push_deliveries()
    assert {d["outcome"] for d in deliveries} == {"delivered"}, deliveries
    assert len(issues(world)) == 1


def test_a_priority_1_that_lasted_a_moment_still_reaches_the_rules(world: World, daemon: Any) -> None:
    payments = world.lookup("cmdb_ci_service", "name=Payments")
    created = world.create_incident(business_service=payments, impact="3", urgency="3")
    sys_id = created["sys_id"]
    time.sleep(3)  # its first version is polled (the push woke the poll) and stored
    world.update_incident(sys_id, impact="1", urgency="1")
    world.update_incident(sys_id, impact="3", urgency="3")
    promoted = until(
        "the promotion of the priority-1 version",
        lambda: world.incident(sys_id) if world.incident(sys_id)["major_incident_state"] else None,
    )
    assert promoted["major_incident_state"] == "accepted"
    assert promoted["priority"] == "5", "the incident itself was back to low priority when polled"


def test_duplicated_and_reordered_deliveries_do_nothing_twice(world: World, daemon: Any) -> None:
    created = world.create_incident(assignment_group=world.acme_group(), short_description="Twice")
    (issue,) = until("the ACME issue", lambda: [i for i in issues(world) if "Twice" in i.fields.summary])
    world.jira_control.push_faults(duplicate=1.0, reorder=0.5)
    agent = world.agent("acme")
    for n in range(3):
        agent.add_comment(issue.key, f"Supplier update {n}")

    def notes() -> list[dict[str, str]]:
        return [e for e in world.journal(created["sys_id"]) if "Supplier update" in e["value"]]

    until("all three updates as work notes", lambda: len(notes()) >= 3 or None)
    time.sleep(2)  # the duplicates have arrived and been answered by now
    assert sorted(e["value"].count("Supplier update") for e in notes()) == [1, 1, 1]
    assert len(notes()) == 3, "each supplier update exactly once"
    copies = [d for d in world.jira_control.push_deliveries() if d.get("duplicate")]
    assert copies, "the sandbox did send duplicates"


@pytest.mark.parametrize("world", ["3s"], indirect=True)
def test_during_a_push_outage_polling_brings_every_change(world: World, daemon: Any) -> None:
    world.jira_control.push_faults(pause=True, drop_while_paused=True)
    world.servicenow_control.push_faults(pause=True, drop_while_paused=True)
    created = world.create_incident(assignment_group=world.acme_group(), short_description="Outage")
    (issue,) = until("the ACME issue", lambda: [i for i in issues(world) if "Outage" in i.fields.summary])
    world.agent("acme").add_comment(issue.key, "Reply while push is down")
    until(
        "the supplier's reply as a work note",
        lambda: [e for e in world.journal(created["sys_id"]) if "push is down" in e["value"]],
    )
    dropped = world.jira_control.push_deliveries() + world.servicenow_control.push_deliveries()
    assert any(d["outcome"] == "dropped" for d in dropped), "push was really down"


def test_a_webhook_ahead_of_the_search_index_is_acted_on_once(world: World, daemon: Any) -> None:
    created = world.create_incident(assignment_group=world.acme_group(), short_description="Lagging")
    (issue,) = until("the ACME issue", lambda: [i for i in issues(world) if "Lagging" in i.fields.summary])
    # Search shows a write only 30 s later; the webhook names the issue, which is read directly.
    world.jira_control.post("sites/acme/settings", {"index_lag_seconds": 30})
    world.agent("acme").add_comment(issue.key, "Ahead of the index")

    def notes() -> list[dict[str, str]]:
        return [e for e in world.journal(created["sys_id"]) if "Ahead of the index" in e["value"]]

    until("the reply as a work note, long before search shows it", notes, timeout=10)
    time.sleep(2)
    assert len(notes()) == 1
