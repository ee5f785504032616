"""Identity survives the store: a restored, an emptied and another environment's store, end to end.

The store is not the only copy of what was mirrored: each issue carries our stamp, each incident
lists its issues' keys, each comment and note we wrote ends with a marker. Whatever store the
connector is started with, it must create no second issue, comment or note anywhere.
"""

from __future__ import annotations

import difflib
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connector.config import load_config
from connector.runtime.assembly import build
from tests.integration.sync_oracle import FAST, check, converge, quiet_writes
from tests.integration.world import World

SITES = (("acme", "ACME"), ("initech", "PAY"))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World.create(tmp_path, overrides=FAST)
    yield created
    created.close()


def incident_for_two(world: World, text: str) -> dict[str, str]:
    """An incident routed to ACME (assignment group) and Initech (the Payments service), with a comment."""
    return world.create_incident(
        assignment_group=world.acme_group(),
        business_service=world.lookup("cmdb_ci_service", "name=Payments"),
        short_description=text,
        comments=f"Customer impact: {text}",
    )


def store_path(world: World) -> Path:
    return world.root / "state.db"


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite store (its WAL included), as a backup tool would take it."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def run(world: World, config: Path | None = None) -> None:
    """Start the connector on ``config`` (the world's by default), converge, stop it."""
    runtime = world.runtime() if config is None else build(load_config(config))
    try:
        converge(runtime)
    finally:
        runtime.close()


def audited_then_quiet(world: World, operation: str) -> int:
    """How many ``operation`` entries the store's audit holds; two sweeps after that must write nothing."""
    runtime = world.runtime()
    try:
        count = len([e for e in runtime.store.audit.entries(limit=500) if e.operation == operation])
        marks = world.marks()
        for _ in range(2):
            runtime.engine.cycle(sweep=True)
        assert quiet_writes(world, marks) == [], "converged means quiet"
    finally:
        runtime.close()
    return count


def instance_port(world: World) -> str:
    """The port of the world's ServiceNow URL (``http://127.0.0.1:PORT``)."""
    found = re.search(r"instance_url: http://127\.0\.0\.1:(\d+)", world.config.read_text())
    assert found is not None
    return found[1]


def as_localhost(world: World, name: str) -> Path:
    """A copy of the world's config that reaches the same ServiceNow as ``localhost``: another name."""
    port = instance_port(world)
    config = world.config.with_name(name)
    config.write_text(
        world.config.read_text().replace(f"http://127.0.0.1:{port}", f"http://localhost:{port}", 1)
    )
    return config


def issue_of(world: World, site: str, project: str, incident: dict[str, str]) -> Any:
    (issue,) = [
        i for i in world.issues(site, project) if i.fields.summary.startswith(f"[{incident['number']}]")
    ]
    return issue


def snapshot(world: World, incidents: list[dict[str, str]]) -> dict[str, Any]:
    """Everything a duplicate would show in: issues (summary, status, comments) and the incidents' journals."""
    issues = {
        site: sorted(
            (
                issue.key,
                issue.fields.summary,
                issue.fields.status.name,
                tuple(c.body for c in world.agent(site).comments(issue.key)),
            )
            for issue in world.issues(site, project)
        )
        for site, project in SITES
    }
    journals = {i["number"]: sorted(j["value"] for j in world.journal(i["sys_id"])) for i in incidents}
    return {"issues": issues, "journals": journals}


def mirror_with_history(world: World, backup: Path) -> list[dict[str, str]]:
    """Mirror one incident, back the store up, then mirror two more and let the first one live on.

    After the backup, the first incident gets a public comment and goes In Progress (so its issue
    is moved), then ACME comments and moves the issue to Waiting for Customer (a status the
    incident does not take): all of it unknown to the backup.
    """
    first = incident_for_two(world, "Checkout fails")
    run(world)
    copy_store(store_path(world), backup)
    second, third = incident_for_two(world, "Refunds stuck"), incident_for_two(world, "Login slow")
    world.update_incident(first["sys_id"], comments="Failover started", state="2")
    run(world)
    issue = issue_of(world, "acme", "ACME", first)
    agent = world.agent("acme")
    agent.add_comment(issue.key, "We see the fault on our storage array")
    wait = next(t["id"] for t in agent.transitions(issue.key) if t["name"] == "Wait for Customer")
    agent.transition_issue(issue.key, wait)
    run(world)
    assert issue_of(world, "acme", "ACME", first).fields.status.name == "Waiting for Customer"
    return [first, second, third]


@pytest.mark.parametrize("store", ["restored", "empty"])
def test_a_restored_or_empty_store_duplicates_nothing(world: World, tmp_path: Path, store: str) -> None:
    incidents = mirror_with_history(world, tmp_path / "backup.db")
    before = snapshot(world, incidents)
    assert [len(issues) for issues in before["issues"].values()] == [3, 3]
    if store == "restored":
        copy_store(tmp_path / "backup.db", store_path(world))
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store_path(world)}{suffix}").unlink(missing_ok=True)
    marks = world.marks()
    run(world)
    after = snapshot(world, incidents)
    assert after == before, "\n".join(
        difflib.unified_diff(
            json.dumps(before, indent=1).splitlines(), json.dumps(after, indent=1).splitlines(), lineterm=""
        )
    )
    ours = {(e["method"], re.sub(r"/[A-Z]+-\d+/", "/KEY/", e["path"])) for e in quiet_writes(world, marks)}
    assert ours <= {
        ("POST", "/acme/rest/api/2/issue/KEY/remotelink"),
        ("POST", "/initech/rest/api/2/issue/KEY/remotelink"),
    }
    adopted = audited_then_quiet(world, "adopt_issue")
    assert adopted == (4 if store == "restored" else 6), "every issue the store did not know, adopted"


def test_another_environments_store_is_neither_trusted_nor_adopted_from(world: World) -> None:
    """A store made by the connector of another ServiceNow instance (same Jira sites, cloned sys_ids).

    Its links point at issues stamped for that instance: they are not ours, so they are neither
    written to nor adopted, and each incident gets exactly one issue of our own per supplier.
    """
    port = instance_port(world)
    other = as_localhost(world, "other.yaml")
    incidents = [incident_for_two(world, "Checkout fails"), incident_for_two(world, "Refunds stuck")]
    run(world, other)
    theirs = snapshot(world, incidents)["issues"]
    assert [len(issues) for issues in theirs.values()] == [2, 2]

    run(world)  # this instance, on the other environment's store
    mine = snapshot(world, incidents)["issues"]
    for site, issues in mine.items():
        assert [i for i in issues if i[0] in {t[0] for t in theirs[site]}] == theirs[site], (
            "the other environment's issues are left as they were"
        )
        new = [i for i in issues if i[0] not in {t[0] for t in theirs[site]}]
        assert sorted(i[1] for i in new) == sorted(t[1] for t in theirs[site]), "one issue of ours each"
        for _key, _summary, _status, comments in new:
            assert len([c for c in comments if "Customer impact" in c]) == 1
        for key, *_rest in new:
            stamp = world.agent(site).issue_property(key, "mim-connector").value
            assert stamp.servicenow == f"127.0.0.1:{port}"
    for incident in incidents:
        notes = [
            j["value"] for j in world.journal(incident["sys_id"]) if j["value"].startswith("Mirrored to")
        ]
        assert len(notes) == len(set(notes)) == 4, "a link note per issue, theirs and ours, none twice"
    assert audited_then_quiet(world, "release_link") == 4


def test_a_former_url_of_this_instance_keeps_its_issues_ours(world: World) -> None:
    """The instance's URL changed (say, to a custom domain): listed in ``former_urls``, its issues stay ours."""
    port = instance_port(world)
    before = as_localhost(world, "before.yaml")
    incidents = [incident_for_two(world, "Checkout fails")]
    run(world, before)
    issues = snapshot(world, incidents)["issues"]
    assert [len(found) for found in issues.values()] == [1, 1]
    renamed = world.config.with_name("renamed.yaml")
    renamed.write_text(
        world.config.read_text().replace(
            f"instance_url: http://127.0.0.1:{port}\n",
            f"instance_url: http://127.0.0.1:{port}\n  former_urls: [http://localhost:{port}]\n",
            1,
        )
    )
    marks = world.marks()
    run(world, renamed)
    after = snapshot(world, incidents)["issues"]
    assert {site: [i[0] for i in found] for site, found in after.items()} == {
        site: [i[0] for i in found] for site, found in issues.items()
    }, "no issue released, none created"
    writes = quiet_writes(world, marks)
    assert writes and all(w["method"] == "PUT" for w in writes), (
        "only the links in the texts move to the new URL"
    )
    runtime = build(load_config(renamed))
    try:
        operations = {e.operation for e in runtime.store.audit.entries(limit=500)}
        assert "release_link" not in operations
    finally:
        runtime.close()


def test_an_issue_whose_link_back_never_landed_is_recognised_from_the_supplier_search(world: World) -> None:
    """Created, but the incident never learnt its key; then the store is lost. The stamp the
    supplier's search returns with the issue leads to it (read directly and verified), not a second one."""
    incident = world.create_incident(
        assignment_group=world.acme_group(), comments="Customer: card payments fail"
    )
    world.servicenow_control.add_fault(method="PATCH", path=r"^/api/now/table/incident/", status=400)
    runtime = world.runtime()
    try:
        assert runtime.engine.cycle().failed, "the link-back is refused"
    finally:
        runtime.close()
    world.servicenow_control.clear_faults()
    assert not world.incident(incident["sys_id"])["correlation_display"]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store_path(world)}{suffix}").unlink(missing_ok=True)
    run(world)
    check(world, incident, 1)
