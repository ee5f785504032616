"""The sync core end to end: real adapters, real store, the sandbox, the shipped mappings."""

from __future__ import annotations

import io
import json

from connector.commands.sync import sync_once
from connector.runtime.assembly import Runtime
from tests.integration.world import World

INTEGRATION = ("svc.mim-connector", "mim-connector")


def ours(world: World, marks: tuple[int, int]) -> list[tuple[str, str]]:
    return [(e["method"], e["path"]) for e in world.writes_since(marks) if e["user"] in INTEGRATION]


def converge(runtime: Runtime, cycles: int = 3) -> None:
    for _ in range(cycles):
        runtime.engine.cycle()


def test_a_routed_incident_is_mirrored_once_with_identity_on_both_sides(
    world: World, runtime: Runtime
) -> None:
    incident = world.create_incident(
        assignment_group=world.acme_group(), comments="Customer: card payments fail"
    )
    runtime.engine.cycle()
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.summary == f"[{incident['number']}] Checkout fails for all customers"
    assert issue.fields.priority.name == "Highest"
    agent = world.agent("acme")
    assert agent.issue_property(issue.key, "mim-connector").value.incident_sys_id == incident["sys_id"]
    (remote,) = agent.remote_links(issue.key)
    assert remote.globalId == f"servicenow:incident:{incident['sys_id']}"
    (comment,) = agent.comments(issue.key)
    assert "Customer: card payments fail" in comment.body
    assert world.incident(incident["sys_id"])["correlation_display"] == issue.key
    notes = [j["value"] for j in world.journal(incident["sys_id"]) if j["element"] == "work_notes"]
    assert len(notes) == 1 and notes[0].startswith(f"Mirrored to ACME Cloud Hosting as {issue.key}")
    converge(runtime)
    assert len(world.issues("acme", "ACME")) == 1
    assert len(agent.comments(issue.key)) == 1


def test_after_convergence_ten_idle_cycles_write_nothing(world: World, runtime: Runtime) -> None:
    world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    marks = world.marks()
    for _ in range(10):
        runtime.engine.cycle(sweep=False)
    assert ours(world, marks) == []
    servicenow_calls, jira_calls = world.requests_since(marks)
    assert len(servicenow_calls) <= 10 * 3, "idle: at most 3 ServiceNow calls per cycle"
    assert len(jira_calls) <= 10 * 3, "idle: at most one search per supplier (3) per cycle"
    assert all("/search" in entry["path"] for entry in jira_calls)


def test_servicenow_changes_flow_out_and_internal_notes_never_do(world: World, runtime: Runtime) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    marks = world.marks()
    world.update_incident(
        incident["sys_id"],
        short_description="Checkout down",
        work_notes="CANARY-internal: vendor contract dispute",
    )
    world.update_incident(incident["sys_id"], comments="We are working with our hosting provider")
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.summary == f"[{incident['number']}] Checkout down"
    bodies = [c.body for c in world.agent("acme").comments(issue.key)]
    assert any("We are working with our hosting provider" in body for body in bodies)
    outbound = world.jira_control.requests(since=marks[1])
    assert not any("CANARY" in str(entry["body"]) for entry in outbound)


def test_supplier_work_comes_back_once(world: World, runtime: Runtime) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    agent = world.agent("acme")
    agent.add_comment(issue.key, "Disk full on db-cluster-01, expanding the volume")
    transitions = {t["name"]: t["id"] for t in agent.transitions(issue.key)}
    agent.transition_issue(issue.key, transitions["Resolve"], fields={"resolution": {"name": "Fixed"}})
    converge(runtime)
    journal = world.journal(incident["sys_id"])
    supplier_notes = [j["value"] for j in journal if "Disk full" in j["value"]]
    assert len(supplier_notes) == 1
    assert supplier_notes[0].startswith(f"[{issue.key}] Jane Doe (ACME Cloud Hosting):\nDisk full")
    current = world.incident(incident["sys_id"])
    assert (current["state"], current["close_code"]) == ("6", "Solution provided")
    assert current["close_notes"] == f"Resolved by ACME in {issue.key}: Fixed"
    assert current["u_supplier_reference"] == issue.key
    converge(runtime)
    assert len([j for j in world.journal(incident["sys_id"]) if "Disk full" in j["value"]]) == 1


def test_one_incident_three_suppliers_three_issues(world: World, runtime: Runtime) -> None:
    payments = world.lookup("cmdb_ci_service", "name=Payments")
    wan = world.lookup("cmdb_ci", "name=wan-link-fra")
    world.create_incident(
        assignment_group=world.acme_group(),
        business_service=payments,
        cmdb_ci=wan,
        major_incident_state="accepted",
    )
    converge(runtime)
    assert [
        len(world.issues(site, project))
        for site, project in (("acme", "ACME"), ("globex", "NET"), ("initech", "PAY"))
    ] == [1, 1, 1]


def test_resolving_in_servicenow_transitions_each_supplier_issue(world: World, runtime: Runtime) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    world.update_incident(
        incident["sys_id"], state="6", close_code="Solution provided", close_notes="Fixed by a restart"
    )
    converge(runtime)
    (issue,) = world.issues("acme", "ACME")
    assert issue.fields.status.name == "Resolved"
    assert issue.fields.resolution.name == "Done"


def test_dry_run_plans_and_writes_nothing(world: World) -> None:
    world.create_incident(assignment_group=world.acme_group())
    marks = world.marks()
    runtime = world.runtime(dry_run=True)
    try:
        report = runtime.engine.cycle()
    finally:
        runtime.close()
    assert world.writes_since(marks, user="svc.mim-connector") == []
    assert world.writes_since(marks, user="mim-connector") == []
    ((entity, preview),) = report.plans.items()
    assert entity.endswith("@ acme")
    assert preview.lines()[0] == "+ create issue in ACME (Incident)"


def test_dry_run_prints_the_values_it_would_write(world: World) -> None:
    """Like ``terraform plan``: per entity, each change, its reason and its values (text and JSON)."""
    incident = world.create_incident(assignment_group=world.acme_group())
    out = io.StringIO()
    assert sync_once(world.config, dry_run=True, out=out, progress=False) == 0
    number = incident["number"]
    lines = out.getvalue().splitlines()
    assert lines[:5] == [
        "dry run: 1 entities planned, nothing written",
        f"{number} @ acme",
        "  + create issue in ACME (Incident)",
        f"      # {number} is routed to ACME Cloud Hosting and has no issue there yet",
        f'      summary:           "[{number}] Checkout fails for all customers"',
    ]
    assert lines[5].startswith(
        f'      description:       "Incident {number} at priority 1.\\n\\nPayment page times out\\n\\n'
    ), "no CI: the optional clause is left out"
    assert lines[6:10] == [
        '      priority:          "Highest"',
        f'      customfield_10050: "{number}"',
        '      customfield_10080: ""',
        '      labels:            "mim-connector servicenow"',
    ]
    assert lines[10:13] == [
        "  + remote link on issue (the new issue)",
        "      # link the issue back to its ServiceNow incident",
        f'      title: "ServiceNow {number}"',
    ]
    assert lines[-1] == "Plan: 2 to add, 0 to change, 0 blocked."

    out = io.StringIO()
    assert sync_once(world.config, dry_run=True, out=out, progress=False, as_json=True) == 0
    document = json.loads(out.getvalue())
    (plan,) = document["plans"].values()
    create = plan["changes"][0]
    assert (create["symbol"], create["action"]) == ("+", "create issue in ACME (Incident)")
    assert {"name": "priority", "new": "Highest", "old": None} in create["values"]


def test_a_poisoned_entity_waits_in_the_dead_letter_queue_and_others_carry_on(
    world: World, runtime: Runtime
) -> None:
    world.jira_control.add_fault(
        method="POST",
        path="^/acme/rest/api/2/issue$",
        status=400,
        body={"errorMessages": ["Field 'summary' too long"], "errors": {}},
    )
    payments = world.lookup("cmdb_ci_service", "name=Payments")
    incident = world.create_incident(assignment_group=world.acme_group(), business_service=payments)
    report = runtime.engine.cycle()
    assert list(report.failed) == [f"{incident['sys_id']}:acme"]
    assert len(world.issues("initech", "PAY")) == 1, "the other supplier was not delayed"
    world.update_incident(incident["sys_id"], comments="more news")
    assert runtime.engine.cycle().held == 1
    (letter,) = runtime.store.dlq.list()
    assert (letter.attempts, letter.held_events, letter.error_type) == (1, 1, "InvalidRequest")
    world.jira_control.clear_faults()
    assert runtime.store.dlq.retry_now(letter.letter_id)
    converge(runtime)
    assert len(world.issues("acme", "ACME")) == 1
    assert runtime.store.dlq.list() == []


def test_the_sweep_catches_what_search_never_showed(world: World, runtime: Runtime) -> None:
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    world.jira_control.post("sites/acme/settings", {"index_lag_seconds": 3600})
    (issue,) = world.issues("acme", "ACME")
    world.agent("acme").add_comment(issue.key, "Seen only by a direct read")
    for _ in range(3):
        runtime.engine.cycle(sweep=False)
    assert not any("Seen only by a direct read" in j["value"] for j in world.journal(incident["sys_id"]))
    runtime.engine.cycle(sweep=True)
    assert sum("Seen only by a direct read" in j["value"] for j in world.journal(incident["sys_id"])) == 1


def test_calls_per_synced_update_stay_within_budget(world: World, runtime: Runtime) -> None:
    """R6: a ServiceNow field change costs at most 4 Jira calls and 1 ServiceNow call beyond the polls."""
    incident = world.create_incident(assignment_group=world.acme_group())
    converge(runtime)
    marks = world.marks()
    world.update_incident(incident["sys_id"], short_description="Checkout down")
    cycles = 0
    while True:
        cycles += 1
        report = runtime.engine.cycle(sweep=False)
        if not report.writes and not report.failed:
            break
    servicenow_calls, jira_calls = world.requests_since(marks)
    polls = {"/api/now/table/incident", "/api/now/table/sys_journal_field"}
    servicenow_extra = [
        e for e in servicenow_calls if e["user"] == "svc.mim-connector" and e["path"] not in polls
    ]
    jira_extra = [e for e in jira_calls if e["user"] == "mim-connector" and "/search" not in e["path"]]
    assert len(jira_extra) <= 4, [(e["method"], e["path"]) for e in jira_extra]
    assert len(servicenow_extra) <= 1, [(e["method"], e["path"]) for e in servicenow_extra]
    assert len([e for e in jira_calls if "/search" in e["path"]]) <= 3 * cycles
