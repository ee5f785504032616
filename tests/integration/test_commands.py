"""The commands admins run, as subprocesses against the sandbox: sync, doctor, state, run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.integration.world import World, daemon_process, free_port, stop

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


def test_doctor_looks_for_each_sites_webhook_when_push_is_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIM_TEST_ACME_HOOK", "acme hook secret")
    text = world.config.read_text().replace(
        "        token: ${MIM_DEMO_ACME_TOKEN}\n",
        "        token: ${MIM_DEMO_ACME_TOKEN}\n      webhook_secret: ${MIM_TEST_ACME_HOOK}\n",
    )
    world.config.write_text(text + "\npush:\n  enabled: true\n  public_url: https://mim.example.com/\n")
    result = run(world, "doctor")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "FAIL acme: no webhook posts to https://mim.example.com/push/jira/acme: changes arrive only by "
        "polling (docs/push.md)"
    ) in result.stdout.splitlines()
    assert not [line for line in result.stdout.splitlines() if "webhook" in line and "globex" in line]
    agent = world.agent("acme")
    hook = {
        "name": "mim-connector",
        "url": "https://mim.example.com/push/jira/acme",
        "events": ["jira:issue_created", "jira:issue_updated", "comment_created"],
        "filters": {"issue-related-events-section": "project = ACME"},
        "secret": "acme hook secret",
        "enabled": False,
    }
    registered = agent._session.post(f"{agent.server_url}/rest/webhooks/1.0/webhook", json=hook)
    assert registered.status_code == 201, registered.text
    assert (
        "FAIL acme: webhook 'mim-connector' posts to https://mim.example.com/push/jira/acme but is disabled"
        in (run(world, "doctor").stdout.splitlines())
    )
    agent._session.put(registered.json()["self"], json={**hook, "enabled": True}).raise_for_status()
    result = run(world, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   acme: webhook 'mim-connector' posts to https://mim.example.com/push/jira/acme" in (
        result.stdout.splitlines()
    )


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


# --- one path for every live command: a running sandbox lends its credentials ----------------------------


def without_credentials(world: World) -> dict[str, str]:
    """The environment with none of the credentials the world's sandbox generated."""
    return {name: value for name, value in os.environ.items() if name not in world.environ}


def test_every_live_command_borrows_the_credentials_of_a_running_sandbox(world: World) -> None:
    env = without_credentials(world)
    config = ["-c", str(world.config)]

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SCRIPT, *args, *config], capture_output=True, text=True, timeout=120, env=env)

    first = world.create_incident(assignment_group=world.acme_group())
    doctor = command("doctor")
    assert (doctor.returncode, doctor.stdout.splitlines()[-1]) == (0, "all checks passed"), doctor.stderr
    explained = command("rules", "test", first["number"])
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout.startswith(f"{first['number']} (priority 1, state 1, major_incident_state -)")
    backtest = command("rules", "backtest", "--since", "1d")
    assert backtest.returncode == 0, backtest.stderr
    assert backtest.stdout.startswith(f"Back-test of 5 promotion rules over {world.sandbox.servicenow_url}")
    with daemon_process(SCRIPT, "run", *config, env=env) as daemon:
        deadline = time.monotonic() + 30
        while not world.issues("acme", "ACME") and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.3)
        err = stop(daemon)
    assert daemon.returncode == 0, err
    assert len(world.issues("acme", "ACME")) == 1
    world.create_incident(assignment_group=world.acme_group())
    synced = command("sync", "--once")
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.startswith("synced: 1 new incident versions")
    assert len(world.issues("acme", "ACME")) == 2


def test_doctor_checks_every_system_and_says_what_kind_of_failure(world: World) -> None:
    closed = free_port()
    sn_url = world.sandbox.servicenow_url
    jira_port = world.sandbox.jira_url.rsplit(":", 1)[1]
    text = world.config.read_text()
    text = text.replace(f"instance_url: {sn_url}", f"instance_url: {sn_url.replace('http:', 'https:')}")
    text = text.replace(f"127.0.0.1:{jira_port}/acme", f"127.0.0.1:{closed}/acme")
    text = text.replace(f"127.0.0.1:{jira_port}/globex", f"nosuchhost.invalid:{jira_port}/globex")
    world.config.write_text(text)
    env = {**os.environ, "MIM_DEMO_INITECH_TOKEN": "not-the-token"}
    result = subprocess.run(
        [SCRIPT, "doctor", "-c", str(world.config)], capture_output=True, text=True, timeout=120, env=env
    )
    assert (result.returncode, result.stderr) == (1, "")
    https = sn_url.replace("http:", "https:")
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        f"FAIL ServiceNow {https}: TLS: servicenow: GET incident: no answer: TLS: [SSL: "
    )
    assert lines[1:] == [
        f"FAIL acme http://127.0.0.1:{closed}/acme: refused: jira:acme: GET serverInfo: could not connect: "
        f"127.0.0.1:{closed} refused the connection",
        f"FAIL globex http://nosuchhost.invalid:{jira_port}/globex: DNS: jira:globex: GET serverInfo: "
        "could not connect: DNS cannot resolve nosuchhost.invalid",
        f"FAIL initech http://127.0.0.1:{jira_port}/initech: auth: jira:initech: GET myself -> 401 "
        "Client must be authenticated to access this resource.",
        "some checks failed",
    ]
    proxy = f"http://127.0.0.1:{closed}"
    behind = subprocess.run(
        [SCRIPT, "doctor", "-c", str(world.config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "NO_PROXY": "nosuchhost.invalid"},
    )
    kinds = [line.split(": ", 2)[1] for line in behind.stdout.splitlines()[:-1]]
    assert (behind.returncode, kinds) == (1, ["proxy", "proxy", "DNS", "proxy"]), behind.stdout


# --- state show INC…: one incident as the store knows it -------------------------------------------------


def state(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, "state", *args, "-c", str(world.config)], capture_output=True, text=True, timeout=60
    )


def test_state_show_of_one_incident_shows_a_failed_create_as_not_created(world: World) -> None:
    incident = world.create_incident(
        assignment_group=world.acme_group(),
        category="network",
        cmdb_ci=world.lookup("cmdb_ci", "name=web-lb-01"),
    )
    number, sys_id = incident["number"], incident["sys_id"]
    assert run(world, "sync", "--once").returncode == 0, "linked at acme, proposed by a rule"
    world.jira_control.add_fault(method="POST", path="^/globex/rest/api/2/issue$", status=400, count=1)
    world.update_incident(sys_id, major_incident_state="accepted")
    assert run(world, "sync", "--once").returncode == 1, "globex engaged, its create fails"
    (issue,) = world.issues("acme", "ACME")
    shown = state(world, "show", number)
    assert shown.returncode == 0, shown.stderr
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
    expected = [
        rf"{number} \(sys_id {sys_id}\): version \d+ of [\d: -]+ UTC; state 1 \(New\), priority 1, "
        "major incident state accepted",
        "links:",
        rf"  acme    {issue.key} {re.escape(world.sandbox.site_url('acme'))}/browse/{issue.key} - linked; "
        rf"last sync {when}; supplier status Open \(seen {when}\)",
        rf"  globex  not created: its create has not succeeded \(tried since {when}\); not counted as linked",
        "open intents: none",
        "dead letters:",
        rf"  #\d+ globex \[queued\] attempts=1 held=0 first={when} last={when} next={when}",
        r"      InvalidRequest: jira:globex: POST issue -> 400 Injected fault: sandbox fault rule 1",
        "decisions:",
        rf"  {when} rule critical-ci-p1: propose \(promote-in-place\) -> proposed",
        "totals: 1 linked (acme), 1 not created (globex), 0 open intents, 1 queued dead letter, 1 decision",
    ]
    lines = shown.stdout.splitlines()
    assert len(lines) == len(expected), shown.stdout
    for line, pattern in zip(lines, expected, strict=True):
        assert line == pattern or re.fullmatch(pattern, line), f"{line!r} !~ {pattern!r}"
    assert state(world, "show", sys_id).stdout == shown.stdout, "by sys_id too"
    before = subprocess.run(
        [SCRIPT, "state", "-c", str(world.config), "show", number], capture_output=True, text=True, timeout=60
    )
    assert before.stdout == shown.stdout, "-c before the sub-command too"
    data = json.loads(state(world, "show", number, "--json").stdout)
    assert [(s["supplier"], s["state"], s["jira_key"]) for s in data["suppliers"]] == [
        ("acme", "linked", issue.key),
        ("globex", "not_created", None),
    ]
    assert data["suppliers"][0]["supplier_status"] == "Open"
    assert data["totals"] == {
        "linked": ["acme"],
        "not_created": ["globex"],
        "unlinked": [],
        "open_intents": 0,
        "dead_letters_queued": 1,
        "decisions": 1,
    }
    totals = state(world, "show").stdout.splitlines()
    assert "links acme: 1" in totals
    assert "links globex: 0 (1 not created)" in totals, "a create that never succeeded is not a link"
    (intents,) = [line for line in totals if line.startswith("intents:")]
    assert re.fullmatch(r"intents: 1 failed, \d+ done", intents), intents
    assert "dead letters queued: 1" in totals
