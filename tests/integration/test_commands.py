"""The commands admins run, as subprocesses against the sandbox: sync, doctor, state, run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.integration.world import World, free_port

SCRIPT = str(Path(sys.executable).parent / "mim-connector")


def run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args, "-c", str(world.config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def test_sync_dry_run_prints_the_plan_and_makes_no_write_call(world: World) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    marks = world.marks()
    result = run(world, "sync", "--once", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert (
        f"{incident['number']} @ acme\n  + create issue in ACME (Incident)\n"
        f"      # {incident['number']} is routed to ACME Cloud Hosting"
    ) in result.stdout
    assert result.stdout.endswith("Plan: 2 to add, 0 to change, 0 blocked.\n")
    assert [e for e in world.writes_since(marks) if e["user"] in ("svc.mim-connector", "mim-connector")] == []


def test_sync_dry_run_says_what_the_rules_would_decide_and_remembers_nothing(world: World) -> None:
    ci = world.lookup("cmdb_ci", "name=web-lb-01")
    incident = world.create_incident(cmdb_ci=ci)
    expected = f"rules {incident['number']}: dry run: proposed by rule critical-ci-p1"
    for _ in range(2):
        result = run(world, "sync", "--once", "--dry-run")
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
    assert world.incident(incident["sys_id"])["major_incident_state"] == ""
    assert run(world, "sync", "--once").returncode == 0
    assert world.incident(incident["sys_id"])["major_incident_state"] == "proposed"


def test_sync_once_then_state_show(world: World) -> None:
    world.create_incident(assignment_group=world.acme_group())
    result = run(world, "sync", "--once")
    assert result.returncode == 0, result.stderr
    assert "synced: 1 new incident versions" in result.stdout
    assert len(world.issues("acme", "ACME")) == 1
    shown = subprocess.run(
        [SCRIPT, "state", "-c", str(world.config), "show"], capture_output=True, text=True, timeout=60
    )
    assert "links acme: 1" in shown.stdout and "watermark servicenow:incident" in shown.stdout


def test_dead_letters_listed_retried_and_dropped(world: World) -> None:
    world.jira_control.add_fault(method="POST", path="^/acme/rest/api/2/issue$", status=400, count=1)
    incident = world.create_incident(assignment_group=world.acme_group())
    assert run(world, "sync", "--once").returncode == 1
    state = [SCRIPT, "state", "-c", str(world.config), "dlq"]
    listing = subprocess.run([*state, "list"], capture_output=True, text=True, timeout=60).stdout
    assert listing.startswith(f"#1 {incident['number']} @ acme [queued] attempts=1")
    assert "InvalidRequest" in listing
    assert subprocess.run([*state, "retry", "1"], capture_output=True, text=True, timeout=60).returncode == 0
    assert run(world, "sync", "--once").returncode == 0
    assert len(world.issues("acme", "ACME")) == 1
    assert (
        subprocess.run([*state, "drop", "1"], capture_output=True, text=True, timeout=60).returncode == 1
    ), "already resolved"


def test_doctor_passes_on_a_matching_world_and_names_what_is_missing(world: World) -> None:
    world.create_incident()
    result = run(world, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   acme (cloud): logged in as MIM Connector, JQL dates in Europe/Berlin" in result.stdout
    mapping = world.root / "mappings" / "suppliers" / "acme.yaml"
    text = mapping.read_text().replace(
        "      Closed: {category: done, terminal: true}",
        "      Closed: {category: done, terminal: true}\n      Escalated: {category: in_progress}",
    )
    mapping.write_text(
        text.replace(
            '    customfield_10050: "{number}"',
            '    customfield_10050: "{number}"\n    customfield_19999: "{number}"',
        )
    )
    result = run(world, "doctor")
    assert result.returncode == 1
    assert "FAIL acme: statuses missing on the site: Escalated" in result.stdout
    assert "FAIL acme: custom fields missing on the site: customfield_19999" in result.stdout


def test_daemon_serves_health_reloads_safely_and_stops_on_sigterm(world: World) -> None:
    port = free_port()
    config = world.config
    config.write_text(
        config.read_text().replace("metrics:\n  enabled: false", f"metrics:\n  enabled: true\n  port: {port}")
    )
    world.create_incident(assignment_group=world.acme_group())
    daemon = subprocess.Popen(
        [SCRIPT, "run", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not world.issues("acme", "ACME") and time.monotonic() < deadline:
            time.sleep(0.3)
        assert len(world.issues("acme", "ACME")) == 1
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"
        # Ready once a whole cycle has finished: the issue appears in the middle of the first one.
        ready, deadline = requests.get(f"{base}/readyz", timeout=5), time.monotonic() + 30
        while ready.status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            ready = requests.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert "mim_requests_total" in requests.get(f"{base}/metrics", timeout=5).text
        good = config.read_text()
        config.write_text(good.replace("deployment: cloud", "deployment: clod", 1))
        daemon.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert daemon.poll() is None, "a broken reload must not stop the daemon"
        config.write_text(good)
        daemon.send_signal(signal.SIGTERM)
        _out, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate(timeout=30)  # closes its pipes: a failure here must not leak into later tests
    assert daemon.returncode == 0, err
    assert "reload refused, keeping the running configuration" in err
    assert "'clod' is not one of: cloud, datacenter" in err
    assert "stopped after" in err
