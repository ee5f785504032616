"""Promotion rules in the daemon, against the sandbox: propose once and explain, clusters, rejection,
caps, dry run, create-parent, engaged suppliers, idempotence across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from tests.integration.sync_oracle import converge
from tests.integration.world import World


def rules(world: World, text: str) -> None:
    (world.root / "mappings" / "rules.yaml").write_text(text)


def settle(world: World) -> None:
    """Run the daemon's cycles on a fresh runtime (as after a restart) until nothing is left to do."""
    runtime = world.runtime()
    try:
        converge(runtime)
    finally:
        runtime.close()


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def notes(world: World, sys_id: str, needle: str) -> list[str]:
    return [
        j["value"] for j in world.journal(sys_id) if j["element"] == "work_notes" and needle in j["value"]
    ]


def test_a_p1_on_a_critical_ci_is_proposed_once_with_one_explaining_note(world: World) -> None:
    ci = world.lookup("cmdb_ci", "name=web-lb-01")
    incident = world.create_incident(cmdb_ci=ci)
    settle(world)
    current = world.incident(incident["sys_id"])
    assert current["major_incident_state"] == "proposed"
    assert current["business_impact"] == "P1 on web-lb-01 (1 - most critical)"
    (note,) = notes(world, incident["sys_id"], "rule 'critical-ci-p1'")
    assert "- priority equals 1: '1'" in note
    assert (
        "- cmdb_ci.business_criticality in [1 - most critical, 2 - somewhat critical]: '1 - most critical'"
        in note
    )
    settle(world)
    assert len(notes(world, incident["sys_id"], "rule 'critical-ci-p1'")) == 1, "idempotent across restarts"


def test_a_proposal_whose_answer_was_lost_is_settled_by_its_note_and_never_written_twice(
    world: World,
) -> None:
    """The rules' writes follow the one write protocol: a lost answer leaves the intent open, and
    the next cycle settles it (and the decision) by finding the work note's marker."""
    ci = world.lookup("cmdb_ci", "name=web-lb-01")
    incident = world.create_incident(cmdb_ci=ci)
    sys_id = incident["sys_id"]
    world.servicenow_control.add_fault(
        method="PATCH", path=r"^/api/now/table/incident/", when="after_commit", action="drop", count=1
    )
    runtime = world.runtime()
    try:
        report = runtime.engine.cycle()
        assert f"{incident['number']} @ rules" in report.failed, "the lost answer fails the promotion"
        store = runtime.store
        (lost,) = [i for i in store.intents.unfinished_of_incident(sys_id) if i.entity == f"{sys_id}:rules"]
        assert (lost.operation, lost.state) == ("propose", "uncertain")
        assert world.incident(sys_id)["major_incident_state"] == "proposed", "the write landed"
        converge(runtime)
        assert store.intents.unfinished_of_incident(sys_id) == []
        decided = store.decisions.latest(sys_id)
        assert decided is not None and decided.state == "proposed", "settled by the note's marker"
    finally:
        runtime.close()
    assert len(notes(world, sys_id, "rule 'critical-ci-p1'")) == 1, "written once"


def test_five_incidents_on_one_ci_make_one_major_incident_and_four_children(world: World) -> None:
    ci = world.lookup("cmdb_ci", "name=storage-array-02")
    created = [
        world.create_incident(cmdb_ci=ci, impact="3", urgency="3", short_description=f"Slow storage {n}")
        for n in range(5)
    ]
    settle(world)
    states = [world.incident(i["sys_id"]) for i in created]
    majors = [s for s in states if s["major_incident_state"] == "proposed"]
    assert [m["number"] for m in majors] == [created[0]["number"]]
    children = [s for s in states if s["parent_incident"] == created[0]["sys_id"]]
    assert len(children) == 4
    assert all(len(notes(world, c["sys_id"], "linked this incident as a child")) == 1 for c in children)


def test_a_sixth_incident_joins_the_existing_cluster(world: World) -> None:
    ci = world.lookup("cmdb_ci", "name=storage-array-02")
    first = [world.create_incident(cmdb_ci=ci, impact="3", urgency="3") for _ in range(5)]
    runtime = world.runtime()
    try:
        converge(runtime)
        late = world.create_incident(cmdb_ci=ci, impact="3", urgency="3")
        converge(runtime)
    finally:
        runtime.close()
    assert world.incident(late["sys_id"])["parent_incident"] == first[0]["sys_id"]
    assert sum(world.incident(i["sys_id"])["major_incident_state"] == "proposed" for i in [*first, late]) == 1


def test_a_rejected_candidate_is_not_re_proposed_until_something_material_changes(world: World) -> None:
    rules(
        world,
        (world.root / "mappings" / "rules.yaml")
        .read_text()
        .replace(
            "  - name: critical-ci-p1\n    description: Priority 1 on a most-critical configuration item\n",
            "  - name: critical-ci-p1\n    description: Priority 1 on a most-critical configuration item\n    reconsider_rejected: true\n",
        ),
    )
    ci = world.lookup("cmdb_ci", "name=web-lb-01")
    incident = world.create_incident(cmdb_ci=ci, impact="1", urgency="2")
    runtime = world.runtime()
    try:
        converge(runtime)
        assert world.incident(incident["sys_id"])["major_incident_state"] == ""
        world.update_incident(incident["sys_id"], urgency="1")
        converge(runtime)
        assert world.incident(incident["sys_id"])["major_incident_state"] == "proposed"
        world.update_incident(incident["sys_id"], major_incident_state="rejected")
        world.update_incident(incident["sys_id"], short_description="still broken, but not major")
        converge(runtime)
        assert world.incident(incident["sys_id"])["major_incident_state"] == "rejected", "no flapping"
        world.update_incident(incident["sys_id"], cmdb_ci=world.lookup("cmdb_ci", "name=db-cluster-01"))
        converge(runtime)
        assert world.incident(incident["sys_id"])["major_incident_state"] == "proposed", (
            "reconsidered after a material change"
        )
    finally:
        runtime.close()


def test_the_cap_stops_a_runaway_rule(world: World) -> None:
    rules(
        world,
        """version: 1
settings:
  max_proposals_per_hour: 3
rules:
  - name: everything-is-major
    description: A rule gone wrong
    when: {field: active, equals: true}
    then: {action: propose}
""",
    )
    created = [world.create_incident(impact="3", urgency="3") for _ in range(6)]
    alerts = counted("mim_rule_capped_total", rule="everything-is-major")
    runtime = world.runtime()
    try:
        converge(runtime)
        converge(runtime)
        report_states = [world.incident(i["sys_id"])["major_incident_state"] for i in created]
        capped = [
            d
            for d in (runtime.store.decisions.latest(i["sys_id"]) for i in created)
            if d and d.state == "capped"
        ]
    finally:
        runtime.close()
    assert report_states.count("proposed") == 3
    assert len(capped) == 3
    assert counted("mim_rule_capped_total", rule="everything-is-major") - alerts == 3, "once per incident"


def test_dry_run_rules_decide_and_count_but_write_nothing(world: World) -> None:
    text = (world.root / "mappings" / "rules.yaml").read_text().replace("  dry_run: false", "  dry_run: true")
    rules(world, text)
    ci = world.lookup("cmdb_ci", "name=web-lb-01")
    incident = world.create_incident(cmdb_ci=ci)
    labels = {"rule": "critical-ci-p1", "action": "propose"}
    before = counted("mim_rule_dry_run_decisions_total", **labels)
    runtime = world.runtime()
    try:
        report = runtime.engine.cycle()
        runtime.engine.cycle()
        decision = runtime.store.decisions.latest(incident["sys_id"])
    finally:
        runtime.close()
    assert report.decisions[incident["number"]] == "dry run: proposed by rule critical-ci-p1"
    assert decision is not None and decision.state == "dry_run"
    assert counted("mim_rule_dry_run_decisions_total", **labels) - before == 1
    assert world.incident(incident["sys_id"])["major_incident_state"] == ""


def test_create_parent_mode_makes_a_new_major_incident_with_the_original_as_child(world: World) -> None:
    text = (
        (world.root / "mappings" / "rules.yaml")
        .read_text()
        .replace("  mode: promote-in-place", "  mode: create-parent")
    )
    rules(world, text)
    ci = world.lookup("cmdb_ci", "name=web-lb-01")
    incident = world.create_incident(cmdb_ci=ci)
    settle(world)
    child = world.incident(incident["sys_id"])
    parent = world.incident(child["parent_incident"])
    assert (parent["major_incident_state"], child["major_incident_state"]) == ("proposed", "")
    assert parent["short_description"] == "Major incident: Checkout fails for all customers"
    assert parent["correlation_id"].startswith("mim-connector:parent:")
    assert len(notes(world, incident["sys_id"], "linked this incident as a child")) == 1


def test_a_promoting_rule_engages_its_supplier(world: World) -> None:
    payments = world.lookup("cmdb_ci_service", "name=Payments")
    incident = world.create_incident(business_service=payments, impact="1", urgency="2")
    settle(world)
    assert world.incident(incident["sys_id"])["major_incident_state"] == "accepted"
    assert len(world.issues("initech", "PAY")) == 1


def test_rules_test_explains_live_and_from_a_file(world: World, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    script = str(Path(sys.executable).parent / "mim-connector")
    ci = world.lookup("cmdb_ci", "name=mail-01")
    incident = world.create_incident(cmdb_ci=ci, impact="1", urgency="1")
    live = subprocess.run(
        [script, "rules", "test", incident["number"], "-c", str(world.config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert live.returncode == 0, live.stderr
    lines = live.stdout.splitlines()
    assert lines[0] == f"{incident['number']} (priority 1, state 1, major_incident_state -): eligible"
    assert "2. critical-ci-p1: no match - Priority 1 on a most-critical configuration item" in lines
    assert (
        "     ✗ cmdb_ci.business_criticality in [1 - most critical, 2 - somewhat critical] — actual '3 - less critical'"
        in lines
    )
    assert lines[-1] == "Decision: no rule matched"
    record = tmp_path / "incident.json"
    record.write_text(
        json.dumps(
            {
                "result": {
                    "number": "INC9",
                    "priority": "1",
                    "state": "2",
                    "cmdb_ci.business_criticality": "1 - most critical",
                }
            }
        )
    )
    from_file = subprocess.run(
        [script, "rules", "test", "--file", str(record), "-c", str(world.config), "--tree"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    decision = from_file.stdout.splitlines()[-1]
    assert decision.startswith("Decision: propose by rule critical-ci-p1 (promote-in-place), made without ")
    assert "business_service.name, assigned_to, opened_at" in decision, (
        "a bare file lacks what the rules read"
    )
    assert "4. ci-cluster: no match" in from_file.stdout, "--tree shows the rules after the match too"
    missing = subprocess.run(
        [script, "rules", "test", "INC0000000", "-c", str(world.config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert (missing.returncode, missing.stdout.strip()) == (2, "INC0000000: no such incident")


def _nested(record: dict[str, Any]) -> dict[str, Any]:
    """A flat answer with dot-walks turned into the nested objects an admin writes by hand."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        column, _, rest = key.partition(".")
        if rest:
            out.setdefault(column, {})
            if not isinstance(out[column], dict):
                out[column] = {"sys_id": out[column]}
            out[column][rest] = value
        elif isinstance(out.get(column), dict):
            out[column]["sys_id"] = value["value"] if isinstance(value, dict) else value
        else:
            out[column] = value["value"] if isinstance(value, dict) else value
    return out


def test_rules_test_decides_on_every_form_of_a_pasted_answer_as_it_does_live(
    world: World, tmp_path: Path
) -> None:
    import io
    import json

    from connector.commands.explain import rules_test
    from connector.sync.fields import incident_fields

    fields = ",".join(incident_fields(world.loaded))
    payments = world.lookup("cmdb_ci_service", "name=Payments")
    critical = world.lookup("cmdb_ci", "name=web-lb-01")
    for incident, decision in (
        (world.create_incident(business_service=payments, impact="1", urgency="2"), "payments-outage"),
        (world.create_incident(cmdb_ci=critical), "critical-ci-p1"),
    ):
        live = io.StringIO()
        assert rules_test(world.config, incident["number"], None, tree=False, out=live) == 0
        expected = live.getvalue().splitlines()
        assert expected[-1].startswith("Decision: ") and f"by rule {decision} " in expected[-1]

        def answer(display: str, sys_id: str = incident["sys_id"], **params: str) -> Any:
            params |= {"sysparm_display_value": display}
            url = world.table("incident", sys_id)
            return world.snow().get(url, params=params, timeout=10).json()

        forms = {
            "false": answer("false", sysparm_fields=fields),
            "all": answer("all", sysparm_fields=fields),
            "true": answer("true", sysparm_fields=fields),
            "nested": _nested(answer("false", sysparm_fields=fields)["result"]),
        }
        for form, data in forms.items():
            path = tmp_path / f"{incident['number']}-{form}.json"
            path.write_text(json.dumps(data))
            out = io.StringIO()
            assert rules_test(world.config, None, path, tree=False, out=out) == 0
            lines = out.getvalue().splitlines()
            assert not [line for line in lines if line.startswith("warning:")], (form, lines)
            assert [line for line in lines if not line.startswith("note:")] == expected, form
        whole = answer("all")  # every column, no dot-walk: business_service.name from its display value
        path = tmp_path / f"{incident['number']}-whole.json"
        path.write_text(json.dumps(whole))
        out = io.StringIO()
        assert rules_test(world.config, None, path, tree=False, out=out) == 0
        lines = out.getvalue().splitlines()
        if decision == "payments-outage":
            assert lines[-1] == expected[-1]
        else:  # the criticality is a dot-walk no display value carries: said, not guessed
            assert (
                "warning: the file lacks 1 field the rules read, taken as empty: cmdb_ci.business_criticality"
                in lines
            )
            assert lines[-1].endswith(", made without cmdb_ci.business_criticality")
