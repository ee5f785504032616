"""Failures the sync core must survive, injected through the sandbox: crashes at each side-effect
boundary (the daemon is SIGKILLed while a write is in flight, before or after it was applied), lost
answers, and throttling. After each, the state converges with nothing duplicated and nothing lost."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from tests.integration.sync_oracle import FAST, PHASES, act, check, converge, quiet_writes
from tests.integration.world import World

SCRIPT = str(Path(sys.executable).parent / "mim-connector")
ISSUE = r"^/acme/rest/api/2/issue$"
ON_ISSUE = r"^/acme/rest/api/2/issue/[^/]+"
INCIDENT = r"^/api/now/table/incident/"

# (phase, system, method, path): every kind of write the connector makes in that phase.
BOUNDARIES = [
    ("create", "jira", "POST", ISSUE),
    ("create", "jira", "POST", ON_ISSUE + "/remotelink$"),
    ("create", "jira", "POST", ON_ISSUE + "/comment$"),
    ("create", "servicenow", "PATCH", INCIDENT),
    ("update", "jira", "PUT", ON_ISSUE + "$"),
    ("update", "jira", "POST", ON_ISSUE + "/comment$"),
    ("inbound", "servicenow", "PATCH", INCIDENT),
    ("close", "jira", "POST", ON_ISSUE + "/transitions$"),
]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World.create(tmp_path, overrides=FAST)
    yield created
    created.close()


def prepare(world: World, phase: str) -> dict[str, str]:
    """Run the phases before ``phase`` to convergence, then do ``phase``'s human actions."""
    incident = None
    runtime = world.runtime()
    try:
        for earlier in PHASES[: PHASES.index(phase)]:
            incident = act(world, earlier, incident)
            converge(runtime)
    finally:
        runtime.close()
    return act(world, phase, incident)


@pytest.mark.parametrize("when", ["before", "after_commit"])
@pytest.mark.parametrize(
    ("phase", "system", "method", "path"), BOUNDARIES, ids=lambda v: str(v).strip("^$").replace("/", "_")
)
def test_killed_mid_write_then_restarted_converges_without_duplicates(
    world: World, phase: str, system: str, method: str, path: str, when: str
) -> None:
    incident = prepare(world, phase)
    control = world.servicenow_control if system == "servicenow" else world.jira_control
    control.add_fault(method=method, path=path, when=when, delay_ms=30_000, status=503, count=1)
    daemon = subprocess.Popen(
        [SCRIPT, "run", "-c", str(world.config)], stderr=subprocess.DEVNULL, env=os.environ.copy()
    )
    try:
        deadline = time.monotonic() + 30
        while control.faults()[0]["fired"] == 0:
            assert time.monotonic() < deadline, "the daemon never reached the boundary"
            assert daemon.poll() is None, "the daemon died on its own"
            time.sleep(0.05)
        time.sleep(0.3)  # after_commit: the write has landed, its answer is held back
    finally:
        daemon.kill()
        daemon.wait(timeout=10)
    control.clear_faults()
    runtime = world.runtime()
    try:
        converge(runtime)
        check(world, incident, PHASES.index(phase) + 1)
        marks = world.marks()
        for _ in range(3):
            runtime.engine.cycle(sweep=True)
        assert quiet_writes(world, marks) == [], "converged means quiet"
    finally:
        runtime.close()


@pytest.mark.parametrize(
    ("system", "method", "path"),
    [("jira", "POST", ISSUE), ("jira", "POST", ON_ISSUE + "/comment$"), ("servicenow", "PATCH", INCIDENT)],
)
@pytest.mark.parametrize("action", ["drop", "reset"])
def test_a_lost_answer_is_reconciled_never_blindly_repeated(
    world: World, system: str, method: str, path: str, action: str
) -> None:
    incident = act(world, "create", None)
    control = world.servicenow_control if system == "servicenow" else world.jira_control
    control.add_fault(method=method, path=path, when="after_commit", action=action, count=1)
    runtime = world.runtime()
    try:
        first = runtime.engine.cycle()
        assert first.failed, "the lost answer surfaces as a failure of that entity"
        converge(runtime)
        check(world, incident, 1)
    finally:
        runtime.close()


def _throttled_then_next(world: World, method: str, path_fragment: str) -> tuple[datetime, datetime]:
    entries = [
        e for e in world.jira_control.requests() if e["method"] == method and path_fragment in e["path"]
    ]
    refused = next(e for e in entries if e["status"] == 429)
    after = next(e for e in entries if e["seq"] > refused["seq"])
    return datetime.fromisoformat(refused["time"]), datetime.fromisoformat(after["time"])


@pytest.mark.parametrize(
    "retry_after", ["3", "http-date", None], ids=["seconds", "http-date", "no-retry-after"]
)
def test_no_request_to_a_throttled_scope_before_retry_after(world: World, retry_after: str | None) -> None:
    incident = act(world, "create", None)
    runtime = world.runtime()
    try:
        converge(runtime)
        world.update_incident(incident["sys_id"], short_description="Checkout down everywhere")
        headers = {"RateLimit-Reason": "jira-per-issue-on-write"}
        if retry_after == "http-date":
            headers["Retry-After"] = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
        elif retry_after is not None:
            headers["Retry-After"] = retry_after
        world.jira_control.add_fault(method="PUT", path=ON_ISSUE + "$", status=429, headers=headers, count=1)
        converge(runtime)
        check(world, incident, 2)
    finally:
        runtime.close()
    refused_at, next_at = _throttled_then_next(world, "PUT", "/rest/api/2/issue/")
    floor = 5.0 if retry_after is None else 2.0  # HTTP-date has second precision
    assert (next_at - refused_at).total_seconds() >= floor


def test_servicenow_rate_limit_rule_is_respected(world: World) -> None:
    world.servicenow_control.post(
        "ratelimits",
        [
            {
                "user": "svc.mim-connector",
                "method": "PATCH",
                "path": "^/api/now/table/incident",
                "limit": 1,
                "window_seconds": 3,
            }
        ],
    )
    incident = act(world, "create", None)
    runtime = world.runtime()
    try:
        converge(runtime)
        check(world, incident, 1)
    finally:
        runtime.close()
    patches = [
        e
        for e in world.servicenow_control.requests()
        if e["method"] == "PATCH" and e["user"] == "svc.mim-connector"
    ]
    for refused, following in itertools.pairwise(patches):
        if refused["status"] == 429:
            gap = datetime.fromisoformat(following["time"]) - datetime.fromisoformat(refused["time"])
            assert gap.total_seconds() >= 1.0


@pytest.mark.parametrize("skew", [90, -90])
def test_server_clock_skew_loses_no_change(world: World, skew: int) -> None:
    runtime = world.runtime()
    try:
        first = act(world, "create", None)
        converge(runtime)
        world.servicenow_control.set_clock(skew)
        world.jira_control.set_clock(-skew)
        act(world, "update", first)
        converge(runtime)
        check(world, first, 2)
    finally:
        runtime.close()


def test_a_human_edit_racing_our_write_is_still_processed(world: World) -> None:
    """Our PATCH answer says sys_mod_count; only an exact +1 lets us skip re-reading our own echo."""
    import threading

    incident = act(world, "create", None)
    runtime = world.runtime()
    try:
        converge(runtime)
        (issue,) = world.issues("acme", "ACME")
        world.agent("acme").add_comment(issue.key, "Supplier update while the desk edits")
        # Hold our PATCH before ServiceNow applies it; the desk's edit lands first.
        world.servicenow_control.add_fault(
            method="PATCH", path=INCIDENT, when="before", action="pass", delay_ms=1500, count=1
        )
        cycle = threading.Thread(target=runtime.engine.cycle)
        cycle.start()
        deadline = time.monotonic() + 20
        while world.servicenow_control.faults()[0]["fired"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        world.update_incident(incident["sys_id"], short_description="Checkout down everywhere")
        cycle.join(timeout=30)
        world.servicenow_control.clear_faults()
        converge(runtime, sweep=False)
        (issue,) = world.issues("acme", "ACME")
        assert issue.fields.summary == f"[{incident['number']}] Checkout down everywhere"
    finally:
        runtime.close()


def test_servicenow_changing_back_after_a_lost_answer_undoes_our_landed_write(world: World) -> None:
    """Our PUT landed but its answer was lost; ServiceNow then went back: the issue must follow,
    not keep our stray value as if a supplier had set it."""
    incident = act(world, "create", None)
    runtime = world.runtime()
    try:
        converge(runtime)
        (issue,) = world.issues("acme", "ACME")
        synced = issue.fields.summary
        world.update_incident(incident["sys_id"], short_description="Checkout down everywhere")
        world.jira_control.add_fault(
            method="PUT", path=ON_ISSUE + "$", when="after_commit", action="drop", count=1
        )
        assert runtime.engine.cycle().failed, "the lost answer surfaces as a failure of that entity"
        (issue,) = world.issues("acme", "ACME")
        assert issue.fields.summary == f"[{incident['number']}] Checkout down everywhere", "the write landed"
        world.update_incident(incident["sys_id"], short_description=incident["short_description"])
        converge(runtime)
        (issue,) = world.issues("acme", "ACME")
        assert issue.fields.summary == synced
    finally:
        runtime.close()


def test_a_failed_write_leaves_the_plans_earlier_writes_recorded(world: World) -> None:
    """A plan's writes before the one that fails keep their outcome, audit entry, ledger entry and link."""
    incident = act(world, "create", None)
    world.servicenow_control.add_fault(method="PATCH", path=INCIDENT, status=400, count=1)
    runtime = world.runtime()
    try:
        report = runtime.engine.cycle()
        assert report.failed, "the refused link note fails the entity"
        store = runtime.store
        (link,) = store.links.for_incident(incident["sys_id"])
        assert link.state == "linked" and link.jira_key == world.issues("acme", "ACME")[0].key
        audited = {(e.operation, e.outcome) for e in store.audit.entries(limit=50)}
        assert {("create_issue", "done"), ("remote_link", "done"), ("add_comment", "done")} <= audited
        assert ("add_journal", "failed") in audited
        assert store.intents.counts() == {"done": 3, "failed": 1}
        assert store.comments.settled_both(link.link_id)["out"], "the mirrored comment is settled"
        assert store.intents.unfinished() == [] and store.comments.unfinished() == []
        converge(runtime)
        check(world, incident, 1)
    finally:
        runtime.close()
