"""Supplier mirroring against the sandbox with the shipped mappings: the MIM fields on the issue,
problem management, shared fields, isolation between suppliers, children implicating suppliers,
multi-hop transitions, and internal notes that never leave ServiceNow."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from connector.runtime.assembly import Runtime
from tests.integration.sync_oracle import FAST, converge
from tests.integration.world import World

CANARY = "CANARY-7f3a internal: contract penalty clause"


def problem(world: World, sys_id: str) -> dict[str, Any]:
    params = {"sysparm_exclude_reference_link": "true"}
    return dict(world.snow().get(world.table("problem", sys_id), params=params, timeout=10).json()["result"])


def problem_notes(world: World, sys_id: str) -> list[str]:
    return [j["value"] for j in world.journal(sys_id) if j["element"] == "work_notes"]


def major_incident_at_three_suppliers(world: World, **fields: str) -> dict[str, str]:
    return world.create_incident(
        assignment_group=world.acme_group(),
        business_service=world.lookup("cmdb_ci_service", "name=Payments"),
        cmdb_ci=world.lookup("cmdb_ci", "name=wan-link-fra"),
        major_incident_state="accepted",
        **fields,
    )


SITES = (("acme", "ACME"), ("globex", "NET"), ("initech", "PAY"))


def test_mim_state_bridge_and_next_update_show_on_the_issue(world: World, runtime: Runtime) -> None:
    incident = world.create_incident(
        assignment_group=world.acme_group(),
        major_incident_state="proposed",
        u_bridge_url="https://meet.example.com/mim-42 (host: jane.roe@corp.example.com)",
        u_next_update="2026-11-22 11:30:00",
    )
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    assert "mim-proposed" in issue.fields.labels
    assert issue.fields.customfield_10080 == "https://meet.example.com/mim-42 (host: [e-mail removed])"
    assert issue.fields.customfield_10081.startswith("2026-11-22T11:30:00")
    world.update_incident(
        incident["sys_id"], major_incident_state="accepted", u_next_update="2026-11-22 12:00:00"
    )
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    assert "mim-accepted" in issue.fields.labels and "mim-proposed" not in issue.fields.labels
    assert issue.fields.customfield_10081.startswith("2026-11-22T12:00:00")
    marks = world.marks()
    for _ in range(3):
        runtime.engine.cycle(sweep=True)
    assert world.writes_since(marks, "mim-connector") == [], (
        "a date-time read back differently is still equal"
    )


def test_a_problem_link_reaches_every_supplier_issue_once(world: World, runtime: Runtime) -> None:
    incident = major_incident_at_three_suppliers(world)
    converge(runtime)
    created = world.snow().post(
        world.table("problem"), json={"short_description": "Recurring payment gateway timeouts"}, timeout=10
    )
    prb = created.json()["result"]
    world.update_incident(incident["sys_id"], problem_id=prb["sys_id"])
    converge(runtime)
    converge(runtime)
    for site, project in SITES:
        (issue,) = world.issues(site, project)
        agent = world.agent(site)
        links = [link.globalId for link in agent.remote_links(issue.key)]
        assert f"servicenow:problem:{prb['sys_id']}" in links, site
        mentions = [c.body for c in agent.comments(issue.key) if prb["number"] in c.body]
        assert len(mentions) == 1, (site, mentions)


def test_a_supplier_root_cause_opens_and_fills_the_problem(world: World, runtime: Runtime) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    agent = world.agent("acme")
    issue.update(fields={"customfield_10070": "Expired TLS certificate on lb-fra-2"})
    converge(runtime)
    current = world.incident(incident["sys_id"])
    assert current["problem_id"], "a problem was opened for the root cause"
    prb = problem(world, current["problem_id"])
    assert prb["cause_notes"] == (
        f"[{issue.key}] ACME Cloud Hosting root cause:\nExpired TLS certificate on lb-fra-2"
    )
    assert prb["first_reported_by_task"] == incident["sys_id"]
    opened = [n for n in problem_notes(world, incident["sys_id"]) if "opened problem" in n]
    assert len(opened) == 1 and prb["number"] in opened[0]
    assert f"servicenow:problem:{prb['sys_id']}" in [link.globalId for link in agent.remote_links(issue.key)]
    issue.update(fields={"customfield_10070": "Expired TLS certificate; renewal job was disabled"})
    converge(runtime)
    assert problem(world, prb["sys_id"])["cause_notes"].endswith("renewal job was disabled")
    problems = world.snow().get(
        world.table("problem"), params={"sysparm_query": "correlation_idSTARTSWITHmim"}
    )
    assert len(problems.json()["result"]) == 1, "never a second problem"


def test_a_root_cause_goes_to_a_work_note_when_the_cause_notes_are_someone_elses(
    world: World, runtime: Runtime
) -> None:
    created = (
        world.snow()
        .post(
            world.table("problem"),
            json={"short_description": "Storage latency", "cause_notes": "Analysis by the problem manager"},
            timeout=10,
        )
        .json()["result"]
    )
    world.create_incident(assignment_group=world.acme_group(), problem_id=created["sys_id"])
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    issue.update(fields={"customfield_10070": "Firmware bug in array controller"})
    converge(runtime)
    converge(runtime)
    assert problem(world, created["sys_id"])["cause_notes"] == "Analysis by the problem manager"
    notes = [n for n in problem_notes(world, created["sys_id"]) if "Firmware bug" in n]
    assert len(notes) == 1 and notes[0].startswith(f"[{issue.key}] ACME Cloud Hosting root cause:")


def test_resolving_a_major_incident_opens_one_rca_problem_linked_to_every_supplier(
    world: World, runtime: Runtime
) -> None:
    incident = major_incident_at_three_suppliers(world)
    converge(runtime)
    world.update_incident(
        incident["sys_id"], state="6", close_code="Solution provided", close_notes="Gateway failed over"
    )
    converge(runtime)
    current = world.incident(incident["sys_id"])
    assert current["problem_id"]
    prb = problem(world, current["problem_id"])
    assert prb["short_description"].startswith(f"Root cause of {incident['number']}")
    for site, project in SITES:
        (issue,) = world.issues(site, project)
        links = [link.globalId for link in world.agent(site).remote_links(issue.key)]
        assert f"servicenow:problem:{prb['sys_id']}" in links, site


def test_a_shared_field_follows_the_last_writer_and_never_ping_pongs(world: World, runtime: Runtime) -> None:
    incident = world.create_incident(
        assignment_group=world.acme_group(), u_workaround="Use the backup gateway"
    )
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.customfield_10062 == "Use the backup gateway"
    issue.update(fields={"customfield_10062": "Route via FRA-2"})
    converge(runtime)
    assert world.incident(incident["sys_id"])["u_workaround"] == "Route via FRA-2"
    world.update_incident(incident["sys_id"], u_workaround="Route via AMS-1")
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.customfield_10062 == "Route via AMS-1"
    conflicts = REGISTRY.get_sample_value("mim_conflicts_total", {"supplier": "acme"}) or 0.0
    world.update_incident(incident["sys_id"], u_workaround="Restart the gateway")
    issue.update(fields={"customfield_10062": "Fail over to the secondary site"})  # the later edit
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.customfield_10062 == "Fail over to the secondary site"
    assert world.incident(incident["sys_id"])["u_workaround"] == "Fail over to the secondary site"
    assert (REGISTRY.get_sample_value("mim_conflicts_total", {"supplier": "acme"}) or 0.0) - conflicts == 1
    marks = world.marks()
    for _ in range(5):
        runtime.engine.cycle(sweep=True)
    assert world.writes_since(marks, "mim-connector") == []
    assert world.writes_since(marks, "svc.mim-connector") == []


def test_one_suppliers_outage_does_not_hold_up_the_others(tmp_path: Path) -> None:
    world = World.create(tmp_path, overrides=FAST)
    try:
        outage_and_recovery(world)
    finally:
        world.close()


def outage_and_recovery(world: World) -> None:
    world.jira_control.add_fault(path=r"^/acme/", status=503)
    major_incident_at_three_suppliers(world)
    runtime = world.runtime()
    try:
        runtime.engine.cycle()
        assert [len(world.issues(site, project)) for site, project in SITES[1:]] == [1, 1]
        marks = world.marks()
        for _ in range(3):
            runtime.engine.cycle(sweep=True)
        acme_calls = [e for e in world.requests_since(marks)[1] if e["path"].startswith("/acme/")]
        assert acme_calls == [], "while acme is down its calls fail at once, costing the others nothing"
        assert [entity.endswith(":acme") for entity in runtime.store.dlq.blocked()] == [True]
    finally:
        runtime.close()
    world.jira_control.clear_faults()
    restarted = world.runtime()  # a fresh process: no memory of the outage but the dead letter
    try:
        for _ in range(40):
            restarted.engine.cycle()
            if world.issues("acme", "ACME"):
                break
            time.sleep(0.5)
    finally:
        restarted.close()
    assert [len(world.issues(site, project)) for site, project in SITES] == [1, 1, 1]


def test_a_child_incident_implicates_its_supplier_in_the_major_incident(
    world: World, runtime: Runtime
) -> None:
    parent = world.create_incident(
        short_description="Data centre power event", major_incident_state="accepted"
    )
    converge(runtime)
    assert world.issues("acme", "ACME") == []
    world.create_incident(
        short_description="VMs down in hall 3",
        assignment_group=world.acme_group(),
        parent_incident=parent["sys_id"],
    )
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.summary == f"[{parent['number']}] Data centre power event"


def test_a_multi_hop_move_never_passes_a_terminal_status(world: World, runtime: Runtime) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    agent = world.agent("acme")
    transitions = {t["name"]: t["id"] for t in agent.transitions(issue.key)}
    agent.transition_issue(issue.key, transitions["Resolve"], fields={"resolution": {"name": "Fixed"}})
    converge(runtime)
    marks = world.marks()
    world.update_incident(incident["sys_id"], state="3", hold_reason="1")  # On Hold -> Waiting for Customer
    converge(runtime)
    moves = [
        e
        for e in world.requests_since(marks)[1]
        if e["method"] == "POST" and e["path"].endswith("/transitions") and e["user"] == "mim-connector"
    ]
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.status.name == "Waiting for Customer"
    assert len(moves) == 2, "Resolved -> In Progress -> Waiting for Customer"
    names = {t["id"]: t["name"] for t in agent.transitions(issue.key)} | transitions
    assert "Close" not in [names.get(str(m["body"]["transition"]["id"])) for m in moves]


def test_a_work_note_canary_never_reaches_any_supplier(world: World, runtime: Runtime) -> None:
    marks = world.marks()
    incident = major_incident_at_three_suppliers(world, work_notes=CANARY)
    converge(runtime)
    world.update_incident(
        incident["sys_id"], work_notes=CANARY + " (again)", comments="Public update for suppliers"
    )
    converge(runtime)
    for site, project in SITES:
        (issue,) = world.issues(site, project)
        assert any("Public update for suppliers" in c.body for c in world.agent(site).comments(issue.key))
    outbound = world.requests_since(marks)[1]
    assert outbound and not any("CANARY-7f3a" in str(entry["body"]) for entry in outbound)


def test_comments_both_ways_arrive_exactly_once_through_errors_timeouts_and_lost_answers(
    tmp_path: Path,
) -> None:
    world = World.create(tmp_path, overrides={**FAST, "  timeout: 10s\n": "  timeout: 2s\n"})
    try:
        incident = world.create_incident(assignment_group=world.acme_group())
        runtime = world.runtime()
        converge(runtime)
        (issue,) = world.issues("acme", "ACME")
        comment_path = rf"^/acme/rest/api/2/issue/{issue.key}/comment$"
        world.update_incident(incident["sys_id"], comments="Service desk: payments restored for 80% of users")
        world.agent("acme").add_comment(issue.key, "ACME: load balancer pool rebuilt")
        jira, snow = world.jira_control, world.servicenow_control
        jira.add_fault(method="POST", path=comment_path, status=503, count=1)
        jira.add_fault(method="POST", path=comment_path, when="after_commit", action="drop", count=1)
        snow.add_fault(method="PATCH", path=r"^/api/now/table/incident/", status=502, count=1)
        snow.add_fault(
            method="PATCH", path=r"^/api/now/table/incident/", when="after_commit", delay_ms=3000, count=1
        )
        try:
            converge(runtime, limit=40)
        finally:
            runtime.close()
        assert [f["fired"] for f in jira.faults() + snow.faults()] == [1, 1, 1, 1]
        bodies = [c.body for c in world.agent("acme").comments(issue.key)]
        assert len([b for b in bodies if "payments restored for 80%" in b]) == 1
        notes = [
            j["value"]
            for j in world.journal(incident["sys_id"])
            if "load balancer pool rebuilt" in j["value"]
        ]
        assert len(notes) == 1
    finally:
        world.close()


def test_replies_that_quote_a_mirrored_text_cross_over_and_our_own_texts_do_not(
    world: World, runtime: Runtime
) -> None:
    """Jira's "reply with quote" and a desk comment quoting a supplier note both carry our marker."""
    incident = major_incident_at_three_suppliers(world)
    converge(runtime)
    world.update_incident(incident["sys_id"], comments="Is the load balancer pool rebuilt?")
    converge(runtime)
    for site, project in SITES:
        (issue,) = world.issues(site, project)
        agent = world.agent(site)
        (ours,) = [c for c in agent.comments(issue.key) if "pool rebuilt?" in c.body]
        agent.add_comment(issue.key, f"{{quote}}{ours.body}{{quote}}\nYes, rebuilt at 10:02 ({site})")
    converge(runtime)
    notes = [j["value"] for j in world.journal(incident["sys_id"]) if "Yes, rebuilt at 10:02" in j["value"]]
    assert len(notes) == len(SITES), notes
    for site, project in SITES:
        (issue,) = world.issues(site, project)
        bodies = [c.body for c in world.agent(site).comments(issue.key)]
        assert len([b for b in bodies if "pool rebuilt?" in b]) == 2, "ours, and the supplier's quote of it"
    (globex_note,) = [n for n in notes if "(globex)" in n]
    world.update_incident(incident["sys_id"], comments=f"Thanks, closing the bridge.\n\n{globex_note}")
    converge(runtime)
    for site, project in SITES:
        (issue,) = world.issues(site, project)
        bodies = [c.body for c in world.agent(site).comments(issue.key)]
        assert len([b for b in bodies if "closing the bridge" in b]) == 1, (site, bodies)
    journal = [j["value"] for j in world.journal(incident["sys_id"])]
    assert len([v for v in journal if "Yes, rebuilt at 10:02" in v]) == len(SITES) + 1, "the desk quoted one"


def test_a_linked_cause_issue_becomes_the_root_cause_on_the_rca_problem(
    world: World, runtime: Runtime
) -> None:
    incident = world.create_incident(
        cmdb_ci=world.lookup("cmdb_ci", "name=wan-link-fra"), major_incident_state="accepted"
    )
    converge(runtime)
    (fault,) = world.issues("globex", "NET")
    agent = world.agent("globex")
    cause = agent.create_issue(
        project="NET", issuetype={"name": "Task"}, summary="Fibre cut between FRA-1 and FRA-2"
    )
    agent.create_issue_link("Problem/Incident", inwardIssue=cause.key, outwardIssue=fault.key)
    converge(runtime)
    assert world.incident(incident["sys_id"])["problem_id"] == "", "globex opens problems on resolution only"
    world.update_incident(
        incident["sys_id"], state="6", close_code="Workaround provided", close_notes="Rerouted"
    )
    converge(runtime)
    converge(runtime)
    prb = world.incident(incident["sys_id"])["problem_id"]
    notes = [n for n in problem_notes(world, prb) if "root cause" in n]
    assert len(notes) == 1
    assert notes[0].startswith(
        f"[{fault.key}] Globex Networks root cause:\n{cause.key}: Fibre cut between FRA-1 and FRA-2"
    )


def test_many_incidents_are_worked_on_in_parallel_and_mirrored_once_each(
    world: World, runtime: Runtime
) -> None:
    assert runtime.engine.workers > 1
    created = [major_incident_at_three_suppliers(world, short_description=f"Outage {n}") for n in range(24)]
    report = runtime.engine.cycle()
    assert report.failed == {} and report.entities >= 72
    converge(runtime)
    for site, project in SITES:
        summaries = sorted(issue.fields.summary for issue in world.issues(site, project))
        assert len(summaries) == len(set(summaries)) == len(created), site
    keys = [world.incident(i["sys_id"])["correlation_display"] for i in created]
    assert all(len(k.split(", ")) == 3 for k in keys), keys


def test_an_issue_that_moved_while_we_moved_it_is_read_again_not_dead_lettered(
    world: World, runtime: Runtime
) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    # As if the supplier had moved it between our read and our transition: no way on from here.
    world.jira_control.add_fault(
        method="GET",
        path=rf"^/acme/rest/api/2/issue/{issue.key}/transitions$",
        status=200,
        body={"expand": "transitions", "transitions": []},
        count=1,
    )
    world.update_incident(
        incident["sys_id"], state="6", close_code="Solution provided", close_notes="Restarted"
    )
    report = runtime.engine.cycle()
    assert [f["fired"] for f in world.jira_control.faults()] == [1]
    assert report.failed == {} and runtime.store.dlq.blocked() == set()
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.status.name == "Resolved"


def test_a_transition_refused_because_the_supplier_moved_first_is_not_an_error(
    world: World, runtime: Runtime
) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    agent = world.agent("acme")
    resolve = {t["name"]: t["id"] for t in agent.transitions(issue.key)}["Resolve"]
    world.jira_control.add_fault(
        method="POST",
        path=rf"^/acme/rest/api/2/issue/{issue.key}/transitions$",
        action="pass",
        delay_ms=1500,
        count=1,
    )
    world.update_incident(
        incident["sys_id"], state="6", close_code="Solution provided", close_notes="Restarted"
    )
    supplier = threading.Timer(
        0.7, lambda: agent.transition_issue(issue.key, resolve, fields={"resolution": {"name": "Fixed"}})
    )
    supplier.start()
    try:
        report = runtime.engine.cycle()
    finally:
        supplier.join()
    assert [f["fired"] for f in world.jira_control.faults()] == [1]
    refused = [
        e["status"]
        for e in world.jira_control.requests()
        if e["method"] == "POST" and e["path"].endswith("/transitions") and e["user"] == "mim-connector"
    ]
    assert refused == [400], "ours arrived after the supplier's and was refused"
    assert report.failed == {} and runtime.store.dlq.blocked() == set()
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.status.name == "Resolved"


def test_a_resolution_by_one_supplier_reaches_an_issue_reopened_while_its_link_lagged(tmp_path: Path) -> None:
    """Resolved (PAY Done), reopened while Initech could not be reached, Initech went back to work,
    ACME resolved again: the state is Resolved as before, but it is a new resolution for PAY."""
    world = World.create(tmp_path, overrides=FAST)
    try:
        incident = world.create_incident(
            assignment_group=world.acme_group(),
            business_service=world.lookup("cmdb_ci_service", "name=Payments"),
        )
        with _running(world) as runtime:
            converge(runtime)
            world.update_incident(
                incident["sys_id"], state="6", close_code="Solution provided", close_notes="Fixed"
            )
            converge(runtime)
            (acme,) = world.issues("acme", "ACME")
            (pay,) = world.issues("initech", "PAY")
            assert (acme.fields.status.name, pay.fields.status.name) == ("Resolved", "Done")
            world.jira_control.add_fault(path=r"^/initech/", status=503)
            world.update_incident(incident["sys_id"], state="2")
            runtime.engine.cycle()  # ACME follows the reopen; PAY (Done, final for us) is not reached
        world.jira_control.clear_faults()
        initech, engineer = world.agent("initech"), world.agent("acme")
        initech.transition_issue(
            pay.key, {t["name"]: t["id"] for t in initech.transitions(pay.key)}["Back to work"]
        )
        resolve = {t["name"]: t["id"] for t in engineer.transitions(acme.key)}["Resolve"]
        engineer.transition_issue(acme.key, resolve, fields={"resolution": {"name": "Fixed"}})
        world.jira_control.add_fault(path=r"^/initech/", status=503)
        with _running(world) as runtime:
            runtime.engine.cycle()  # ACME's resolution sets the incident Resolved again; PAY still lags
        assert world.incident(incident["sys_id"])["state"] == "6"
        world.jira_control.clear_faults()
        with _running(world) as runtime:  # a fresh process: Initech's outage is not remembered
            converge(runtime)
        (pay,) = world.issues("initech", "PAY")
        assert pay.fields.status.name == "Done"
    finally:
        world.close()


@contextlib.contextmanager
def _running(world: World) -> Iterator[Runtime]:
    runtime = world.runtime()
    try:
        yield runtime
    finally:
        runtime.close()
