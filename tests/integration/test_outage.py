"""The operator in the middle of an outage: one supplier endpoint answers 503 to every try, or a site
refuses the connector's credentials. Against the sandbox, its faults injected through the control API.

What must hold: the failing endpoint alone is left alone (polling, other issues and other suppliers go
on); an operator's ``state dlq retry`` sends a real request even during the cool-down; the incident
is told once that its mirror is stuck and once that it recovered; log lines, metrics and ``/readyz``
name the incident and the supplier; refused credentials are not tried on every poll.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import REGISTRY

from connector.runtime.assembly import Runtime
from connector.telemetry.log import JsonFormatter
from tests.integration.world import World, free_port

SCRIPT = str(Path(sys.executable).parent / "mim-connector")
CREATE = r"^/acme/rest/api/2/issue$"
NOTE_STUCK = "The mirror of {number} to ACME Cloud Hosting is stuck"
NOTE_RECOVERED = "The mirror of {number} to ACME Cloud Hosting works again"


def settings(*, dead_letter_retry: str, cooldown: str = "10m") -> dict[str, str]:
    """Few, quick retries; a cool-down and a dead-letter schedule the test chooses."""
    return {
        "polling:\n  servicenow_interval": (
            f"retry:\n  attempts: 2\n  initial_backoff: 50ms\n  cooldown: {cooldown}\n"
            "polling:\n  servicenow_interval"
        ),
        "  overlap: 30s\n": f"  overlap: 30s\n  dead_letter_retry: {dead_letter_retry}\n  search_lag: 2s\n",
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World.create(tmp_path, overrides=settings(dead_letter_retry="10m"))
    yield created
    created.close()


def requests_to(world: World, marks: tuple[int, int], method: str, path: str) -> list[dict[str, Any]]:
    _, jira = world.requests_since(marks)
    return [e for e in jira if e["method"] == method and e["path"] == path]


def sample(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_failing_create_endpoint_stops_only_itself_and_an_operator_retry_is_sent(
    world: World, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    payments = world.lookup("cmdb_ci_service", "name=Payments")
    linked = world.create_incident(assignment_group=world.acme_group())
    runtime.engine.cycle()
    (acme_issue,) = world.issues("acme", "ACME")
    world.jira_control.add_fault(method="POST", path=CREATE, status=503)

    stuck = world.create_incident(assignment_group=world.acme_group(), business_service=payments)
    first = runtime.engine.cycle()
    entity = f"{stuck['sys_id']}:acme"
    assert list(first.failed) == [entity]
    assert first.failed[entity].startswith("Unavailable: jira:acme: POST issue -> 503")
    assert len(world.issues("initech", "PAY")) == 1, "the other supplier got its issue"

    # The dead-letter log line names the incident, with its context fields.
    (line,) = [r for r in caplog.records if "dead-letter queue" in r.getMessage()]
    assert line.getMessage().startswith(f"{stuck['number']} @ acme held in the dead-letter queue (attempt 1")
    shown = json.loads(JsonFormatter().format(line))
    assert (shown["incident"], shown["incident_sys_id"], shown["supplier"]) == (
        stuck["number"],
        stuck["sys_id"],
        "acme",
    )
    assert sample("mim_dead_letters", supplier="acme") == 1
    assert sample("mim_dead_letters", supplier="initech") == 0
    assert sample("mim_site_up", system="jira:acme") == 0
    assert sample("mim_site_up", system="jira:initech") == 1
    assert (sample("mim_watermark_lag_seconds", source="jira:acme") or 0) >= 0
    assert runtime.problems()["acme"][0].startswith("POST issue failing for ")

    # Polling, the other issues of that site and further incidents carry on during the cool-down.
    marks = world.marks()
    world.update_incident(linked["sys_id"], short_description="Checkout down everywhere")
    world.agent("acme").add_comment(acme_issue.key, "Storage array replaced, monitoring")
    another = world.create_incident(assignment_group=world.acme_group(), short_description="Another")
    second = runtime.engine.cycle()
    assert requests_to(world, marks, "GET", "/acme/rest/api/2/search/jql"), "acme is still polled"
    assert second.issues_seen >= 1
    assert world.agent("acme").issue(acme_issue.key).fields.summary.endswith("Checkout down everywhere")
    assert any("Storage array replaced" in j["value"] for j in world.journal(linked["sys_id"]))
    assert list(second.failed) == [f"{another['sys_id']}:acme"]
    assert "not sent: POST issue failed every try" in second.failed[f"{another['sys_id']}:acme"]
    assert requests_to(world, marks, "POST", "/acme/rest/api/2/issue") == [], "the endpoint is left alone"

    # The operator's retry reaches the site though the cool-down runs; failing, it keeps the schedule.
    letter = runtime.store.dlq.queued(entity)
    assert letter is not None
    assert runtime.store.dlq.retry_now(letter.letter_id)
    marks = world.marks()
    runtime.engine.cycle()
    assert len(requests_to(world, marks, "POST", "/acme/rest/api/2/issue")) == 2, "a real request, retried"
    after = runtime.store.dlq.queued(entity)
    assert after is not None
    assert (after.attempts, after.next_attempt_at, after.manual) == (1, letter.next_attempt_at, False)

    world.jira_control.clear_faults()
    assert runtime.store.dlq.retry_now(letter.letter_id)
    runtime.engine.cycle()
    assert runtime.store.dlq.queued(entity) is None
    assert len(world.issues("acme", "ACME")) == 2
    assert runtime.problems() == {} and sample("mim_site_up", system="jira:acme") == 1


def test_the_incident_is_told_once_that_its_mirror_is_stuck_and_once_that_it_recovered(
    tmp_path: Path,
) -> None:
    world = World.create(tmp_path / "w", overrides=settings(dead_letter_retry="1s", cooldown="1s"))
    runtime = world.runtime()
    try:
        world.jira_control.add_fault(method="POST", path=CREATE, status=503)
        incident = world.create_incident(assignment_group=world.acme_group())
        entity = f"{incident['sys_id']}:acme"
        for _ in range(30):
            runtime.engine.cycle(sweep=False)
            letter = runtime.store.dlq.queued(entity)
            if letter is not None and letter.attempts >= 4:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the entity was not retried")
        notes = [j["value"] for j in world.journal(incident["sys_id"]) if j["element"] == "work_notes"]
        stuck = [n for n in notes if n.startswith(NOTE_STUCK.format(number=incident["number"]))]
        assert len(stuck) == 1, notes
        assert "attempts failed (a system is unavailable)" in stuck[0]
        assert "Last error: Unavailable: jira:acme: POST issue -> 503" in stuck[0]
        assert "The connector keeps retrying on its own (next about " in stuck[0]
        assert "[mim-connector ref:x" in stuck[0]

        world.jira_control.clear_faults()
        for _ in range(20):
            runtime.engine.cycle(sweep=False)
            if runtime.store.dlq.queued(entity) is None:
                break
            time.sleep(0.5)
        runtime.engine.cycle()
        notes = [j["value"] for j in world.journal(incident["sys_id"]) if j["element"] == "work_notes"]
        recovered = [n for n in notes if n.startswith(NOTE_RECOVERED.format(number=incident["number"]))]
        assert len(recovered) == 1, notes
        assert len([n for n in notes if "is stuck" in n]) == 1, "never written twice"
        (issue,) = world.issues("acme", "ACME")
        comments = [c.body for c in world.agent("acme").comments(issue.key)]
        assert not any("is stuck" in body or "works again" in body for body in comments), "never mirrored out"
    finally:
        runtime.close()
        world.close()


def test_refused_credentials_are_not_tried_on_every_poll(world: World) -> None:
    world.create_incident(assignment_group=world.acme_group())
    os.environ["MIM_DEMO_ACME_TOKEN"] = "revoked-token"
    runtime = world.runtime()
    try:
        marks = world.marks()
        failures: list[str] = []
        for _ in range(6):
            failures += runtime.engine.cycle().failed.values()
            time.sleep(0.2)
        _, jira = world.requests_since(marks)
        refused = [e for e in jira if e["path"].startswith("/acme/") and e["status"] == 401]
        assert len(refused) == 1, [(e["method"], e["path"]) for e in refused]
        assert failures and all("CredentialsRefused" in error for error in failures)
        assert runtime.problems()["acme"][0].startswith("credentials refused for ")
        assert sample("mim_auth_backoff_seconds", system="jira:acme") == 60
        assert "globex" not in runtime.problems() and "initech" not in runtime.problems()
    finally:
        runtime.close()


def test_readyz_names_the_blacked_out_supplier_until_an_operator_retry_gets_through(world: World) -> None:
    port = free_port()
    config = world.config
    config.write_text(
        config.read_text().replace("metrics:\n  enabled: false", f"metrics:\n  enabled: true\n  port: {port}")
    )
    world.jira_control.add_fault(method="POST", path=CREATE, status=503)
    incident = world.create_incident(assignment_group=world.acme_group())
    base = f"http://127.0.0.1:{port}"
    daemon = subprocess.Popen(
        [SCRIPT, "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    try:
        ready = _wait_for(
            base, lambda r: r is not None and r.status_code == 503 and "acme" in r.json()["failing"]
        )
        body = ready.json()
        assert body["status"] == "failing"
        assert body["failing"]["acme"][0].startswith("POST issue failing for ")
        assert "503" in body["reason"] and body["reason"].startswith("acme: POST issue failing")
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200, "liveness is not readiness"
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert 'mim_dead_letters{supplier="acme"} 1.0' in metrics
        assert 'mim_site_up{system="jira:acme"} 0.0' in metrics

        world.jira_control.clear_faults()
        retried = subprocess.run(
            [SCRIPT, "state", "-c", str(config), "dlq", "retry", "1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert retried.returncode == 0, retried.stdout + retried.stderr
        _wait_for(base, lambda r: r is not None and r.status_code == 200)
        (issue,) = world.issues("acme", "ACME")
        assert issue.fields.summary.startswith(f"[{incident['number']}]")
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


def _wait_for(base: str, wanted: Any, seconds: float = 40) -> requests.Response:
    deadline = time.monotonic() + seconds
    answer: requests.Response | None = None
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"{base}/readyz", timeout=5)
        except requests.ConnectionError:
            answer = None
        if wanted(answer):
            assert answer is not None
            return answer
        time.sleep(0.3)
    raise AssertionError(f"/readyz never as wanted; last: {answer and answer.text}")


def test_a_site_whose_polls_fail_falls_behind_in_the_lag_metric_and_readiness(
    world: World, runtime: Runtime
) -> None:
    runtime.engine.cycle()
    world.jira_control.add_fault(method="GET", path=r"^/acme/rest/api/2/search", status=503)
    lags = []
    for _ in range(3):
        time.sleep(1.2)
        runtime.engine.cycle()
        lags.append(sample("mim_watermark_lag_seconds", source="jira:acme") or 0.0)
    assert lags[0] < lags[1] < lags[2], "the failing site's watermark falls behind"
    assert (sample("mim_watermark_lag_seconds", source="jira:initech") or 0.0) < lags[2]
    assert (sample("mim_watermark_lag_seconds", source="servicenow:incident") or 0.0) < lags[2]
    assert runtime.problems()["acme"][-1].startswith("its last 3 polls failed: ")
    world.jira_control.clear_faults()
