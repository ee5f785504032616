"""The demo story, shortened: the daemon against a sandbox replaying a cast slice of the log, with agents.

The numbers of the final summary are checked against what the sandbox itself holds: incidents,
major-incident states and journals in ServiceNow, issues and comments at every Jira site, and
the request journal (the internal work note never reaches a supplier).
"""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from connector.runtime.daemon import Daemon
from connector.runtime.live_view import PlainView
from connector.sandbox.agents import Timing, supplier_agents
from connector.sandbox.embedded import start_story
from connector.sandbox.servicedesk import CUSTOMER_UPDATE, INTERNAL_MARK, ServiceDesk
from tests.integration.sync_oracle import FAST, converge
from tests.integration.world import World, daemon_process, stop, write_config

SCRIPT = str(Path(sys.executable).parent / "mim-connector")
SITES = {"acme": "ACME", "globex": "NET", "initech": "PAY"}
DISPLAY = {"acme": "ACME Cloud Hosting", "globex": "Globex Networks", "initech": "Initech Payments"}
BUDGET = "rate_budget: {requests_per_second: 500, burst: 500}\n"
STORY = {
    **FAST,
    "  replay_speed: 3000": "  replay_limit: 36\n  replay_speed: 20000",
    "  replay_max_gap: 0.2s": "  replay_max_gap: 0.05s",
    "acknowledge_after: 4s": "acknowledge_after: 1s\n    poll_interval: 0.3s\n    service_desk_after: 1s",
    "resolve_after: 25s": "resolve_after: 4s",
    "  stop_when_idle: 10s": "  stop_when_idle: 3s",
    "  servicenow_interval: 2s\n  supplier_interval: 2s": "  servicenow_interval: 0.5s\n  supplier_interval: 0.5s",
    "      timeout: 10s\n": "      timeout: 10s\n      " + BUDGET,
    "  timeout: 10s\n\nsuppliers:": "  timeout: 10s\n  " + BUDGET + "\nsuppliers:",
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World.create(tmp_path, overrides=STORY)
    yield created
    created.close()


def summary_figures(text: str) -> dict[str, str]:
    """``label: value`` lines of the summary."""
    return dict(re.findall(r"^  ([a-z ]+):\s+(.*)$", text, flags=re.MULTILINE))


def major_block(text: str) -> dict[str, tuple[str, set[str]]]:
    """Number -> (its heading line, the issue keys listed for it and its children) of the summary's block."""
    block = text[text.index("\nMajor incidents: ") :].splitlines()[2:]
    found: dict[str, tuple[str, set[str]]] = {}
    number = ""
    for line in block:
        if line.startswith("  INC"):
            number = line.split()[0]
            found[number] = (line, set())
        elif line.startswith(("    issues: ", "    children's issues: ")):
            found[number][1].update(re.findall(r"\b([A-Z]+-\d+) \(", line))
    return found


def incidents(world: World, query: str = "") -> list[dict[str, Any]]:
    params = {
        "sysparm_query": query,
        "sysparm_fields": "sys_id,number,major_incident_state,parent_incident",
        # A reference as its sys_id, not {"link": …, "value": …}: children are matched by it.
        "sysparm_exclude_reference_link": "true",
    }
    response = world.snow().get(world.table("incident"), params=params, timeout=10)
    return list(response.json()["result"])


def test_the_story_mirrors_promotes_and_brings_replies_back_once(world: World) -> None:
    start_story(world.sandbox, world.loaded)
    out = io.StringIO()
    daemon = Daemon(world.config, sandbox=world.sandbox, observer=PlainView(out))
    watchdog = threading.Timer(90, lambda: os.kill(os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        assert daemon.run() == 0
    finally:
        watchdog.cancel()
    assert not daemon.stop.is_set(), "the story must end by itself, not by the watchdog's signal"
    figures = summary_figures(out.getvalue())

    issues = {site: world.issues(site, project) for site, project in SITES.items()}
    assert sum(1 for found in issues.values() if found) >= 2, "mirrored to at least two suppliers"
    counts = ", ".join(f"{site} {len(found)}" for site, found in issues.items() if found)
    assert figures["issues created"] == f"{counts} ({sum(len(f) for f in issues.values())} in all)"

    every = incidents(world)
    assert figures["incidents seen"] == str(len(every))
    proposed = [i for i in every if i["major_incident_state"] == "proposed"]
    promoted = [i for i in every if i["major_incident_state"] == "accepted"]
    children = [i for i in every if i["parent_incident"]]
    assert proposed or promoted, "a rule proposed or promoted an incident"
    assert figures["rule decisions"] == (
        f"{len(proposed)} proposed, {len(promoted)} promoted, {len(children)} children"
    )

    replies = 0
    status_notes = 0
    customer_updates = 0
    keys_of: dict[str, set[str]] = {}
    for site, found in issues.items():
        agent = world.agent(site)
        for issue in found:
            sys_id = agent.issue_property(issue.key, "mim-connector").value.incident_sys_id
            keys_of.setdefault(sys_id, set()).add(issue.key)
            notes = [j["value"] for j in world.journal(sys_id) if j["element"] == "work_notes"]
            header = f"[{issue.key}] Jane Doe ({DISPLAY[site]}):\n"
            for comment in agent.comments(issue.key):
                if comment.author.displayName == "Jane Doe":
                    replies += 1
                    landed = [n for n in notes if n.startswith(header + comment.body)]
                    assert len(landed) == 1, (
                        f"{issue.key}: '{comment.body}' (comment {comment.id}) came back {len(landed)} times: "
                        f"{[n.rsplit(chr(10), 1)[-1] for n in landed]}; Jane's: "
                        f"{[(c.id, c.body) for c in agent.comments(issue.key) if c.author.displayName == 'Jane Doe']}"
                    )
                elif CUSTOMER_UPDATE in comment.body:
                    customer_updates += 1
            status_notes += sum(
                n.startswith(f"[{issue.key}] ") and f"({DISPLAY[site]}) moved the issue from" in n
                for n in notes
            )
    assert replies > 0 and customer_updates > 0
    assert figures["comments"] == f"{customer_updates} out to suppliers, {replies} in from suppliers"
    assert figures["status changes"] == f"{status_notes} supplier status changes written back"

    listed = major_block(out.getvalue())
    assert set(listed) == {i["number"] for i in proposed + promoted}
    for major in proposed + promoted:
        heading, keys = listed[major["number"]]
        action = "proposed" if major in proposed else "promoted"
        assert heading.startswith(f"  {major['number']} {action} by rule "), heading
        mine = [i for i in every if i["parent_incident"] == major["sys_id"]]
        assert (f", {len(mine)} child" in heading) == bool(mine), heading
        expected = set().union(*(keys_of.get(i["sys_id"], set()) for i in [major, *mine]))
        assert keys == expected, f"{major['number']}: every supplier issue key, its children's too"

    internal = [
        j
        for i in every
        for j in world.journal(i["sys_id"])
        if j["element"] == "work_notes" and INTERNAL_MARK in j["value"]
    ]
    assert internal, "the service desk wrote internal work notes"
    to_jira = world.jira_control.requests(since=0)
    assert to_jira and not any(INTERNAL_MARK in json.dumps(entry) for entry in to_jira)


def test_sigterm_ends_the_run_early_with_the_summary(world: World) -> None:
    """``run`` on the demo config attaches to a running sandbox (no story): it runs until told to stop."""
    config = world.config
    config.write_text(config.read_text().replace("  embedded: false", "  embedded: true"))
    world.create_incident(assignment_group=world.acme_group())
    daemon = subprocess.Popen(
        [SCRIPT, "run", "-c", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while not world.issues("acme", "ACME") and time.monotonic() < deadline:
            time.sleep(0.3)
        daemon.send_signal(signal.SIGTERM)
        out, err = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, err
    assert out.startswith("Summary of mim-connector-demo: ran ")
    figures = summary_figures(out)
    assert figures["incidents seen"] == "1"
    assert figures["issues created"] == "acme 1 (1 in all)"
    assert figures["dead letters"] == "0"
    assert "Traceback" not in err


def test_agents_work_each_issue_through_its_suppliers_workflow(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="sandbox.people")
    runtime = world.runtime()
    incident = world.create_incident(
        assignment_group=world.acme_group(),
        business_service=world.lookup("cmdb_ci_service", "name=Payments"),
        cmdb_ci=world.lookup("cmdb_ci", "name=wan-link-fra"),
        major_incident_state="accepted",
    )
    converge(runtime)
    at_once = Timing(poll=0, acknowledge=0, resolve=0, spread=0, service_desk=0)
    agents = supplier_agents(world.loaded, world.sandbox.describe(), at_once)
    admin = world.sandbox.admin()
    desk = ServiceDesk(world.sandbox.servicenow_url, (admin.user_name, admin.password), at_once)
    assert sorted(agent.supplier for agent in agents) == ["acme", "globex", "initech"]
    for actor in [*agents, desk]:
        actor.step()
    assert not desk.busy() and all(agent.busy() for agent in agents)
    converge(runtime)
    working = {site: world.issues(site, project)[0] for site, project in SITES.items()}
    assert {site: i.fields.status.name for site, i in working.items()} == {
        "acme": "In Progress",
        "globex": "Investigating",
        "initech": "In Progress",
    }
    eta = working["acme"].fields.customfield_10061
    assert eta.endswith(" UTC") and world.incident(incident["sys_id"])["u_supplier_eta"] == eta
    for site, issue in working.items():
        bodies = [c.body for c in world.agent(site).comments(issue.key)]
        assert sum(CUSTOMER_UPDATE in body for body in bodies) == 1, site
        assert not any(INTERNAL_MARK in body for body in bodies)

    people = {r.name for r in caplog.records if r.getMessage().startswith(("acknowledged", "posted"))}
    assert people == {
        "sandbox.people.acme",
        "sandbox.people.globex",
        "sandbox.people.initech",
        "sandbox.people.service-desk",
    }, "each simulated person logs under sandbox.people, apart from the connector"
    for agent in agents:
        agent.step()
    assert not any(agent.busy() for agent in agents)
    converge(runtime)
    done = {site: world.issues(site, project)[0] for site, project in SITES.items()}
    assert {site: i.fields.status.name for site, i in done.items()} == {
        "acme": "Resolved",
        "globex": "Restored",
        "initech": "Done",
    }
    acme = done["acme"]
    assert acme.fields.resolution.name == "Fixed" and acme.fields.customfield_10070
    current = world.incident(incident["sys_id"])
    assert current["state"] == "6"
    notes = [j["value"] for j in world.journal(incident["sys_id"]) if j["element"] == "work_notes"]
    for site, issue in done.items():
        replies = [n for n in notes if n.startswith(f"[{issue.key}] Jane Doe ({DISPLAY[site]}):")]
        assert len(replies) == 2, f"{site}: acknowledgement and resolution, once each"
    runtime.close()


def test_simulated_people_are_quiet_unless_asked(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # the connector's own level, as in the demo
    people = logging.getLogger("sandbox.people")
    try:
        start_story(world.sandbox, world.loaded)
        acme = logging.getLogger("sandbox.people.acme")
        assert not acme.isEnabledFor(logging.INFO) and acme.isEnabledFor(logging.WARNING)
        assert logging.getLogger("connector.sync.engine").isEnabledFor(logging.INFO)
        config = world.config
        config.write_text(
            config.read_text().replace("    enabled: true\n", "    enabled: true\n    log_level: INFO\n", 1)
        )
        start_story(world.sandbox, world.loaded)
        assert acme.isEnabledFor(logging.INFO)
    finally:
        people.setLevel(logging.NOTSET)


def test_keep_serving_leaves_the_simulators_up_after_the_story_until_sigterm(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        embedded=True,
        overrides={
            "  stop_when_idle: 10s": "  stop_when_idle: 1s",
            "  replay: builtin ": "  replay: null ",
        },
    )
    assert "  keep_serving: true" in config.read_text(), "the demo keeps serving"
    with daemon_process(SCRIPT, "run", "-c", str(config)) as daemon:
        lines: queue.Queue[str] = queue.Queue()
        assert daemon.stdout is not None
        threading.Thread(
            target=lambda: [lines.put(line) for line in daemon.stdout or ()], daemon=True
        ).start()
        printed: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("  Every user and credential:") for line in printed):
            try:
                printed.append(lines.get(timeout=1))
            except queue.Empty:
                assert daemon.poll() is None, "the run ended with the story:\n" + "".join(printed)
                assert time.monotonic() < deadline
        text = "".join(printed)
        assert text.startswith("Summary of mim-connector-demo: ran ") and "\nMajor incidents: none\n" in text
        assert "The simulators keep serving until Ctrl-C" in text
        time.sleep(1.5)
        assert daemon.poll() is None, "the story is over, the simulators still serve"
        curls = [shlex.split(line) for line in printed if line.strip().startswith("curl ")]
        servicenow, acme = curls[0], curls[1]
        user, password = servicenow[3].split(":", 1)
        answer = requests.get(servicenow[-1], auth=(user, password), timeout=10)
        assert answer.status_code == 200 and answer.json()["result"] == []
        email, token = acme[3].split(":", 1)
        answer = requests.get(acme[-1], auth=(email, token), timeout=10)
        assert answer.status_code == 200 and answer.json()["issues"] == []
        err = stop(daemon)
    assert daemon.returncode == 0, err
    assert "Traceback" not in err and "simulators stopped" in err
    with pytest.raises(requests.ConnectionError):
        requests.get(servicenow[-1], auth=(user, password), timeout=5)


def test_an_engineer_whose_acknowledgement_fails_halfway_comments_once(world: World) -> None:
    """The ETA edit after the acknowledgement's comment fails once: the retried step must not comment
    again (a second, identical reply would be mirrored as a second note, rightly)."""
    world.create_incident(assignment_group=world.acme_group())
    runtime = world.runtime()
    try:
        converge(runtime)
    finally:
        runtime.close()
    (issue,) = world.issues("acme", "ACME")
    timing = Timing(poll=0.0, acknowledge=0.0, spread=0.0)
    (agent,) = [
        a for a in supplier_agents(world.loaded, world.sandbox.describe(), timing) if a.supplier == "acme"
    ]
    world.jira_control.add_fault(method="PUT", path=r"^/acme/rest/api/2/issue/[^/]+$", status=500, count=1)
    agent.step()
    agent.step()
    assert [f["fired"] for f in world.jira_control.faults()] == [1]
    replies = [c.body for c in world.agent("acme").comments(issue.key) if c.author.displayName == "Jane Doe"]
    assert len(replies) == 1, replies
    assert world.agent("acme").issue(issue.key).fields.status.name == "In Progress"
