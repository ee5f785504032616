"""The scenario the failure tests drive, and the checks that nothing was duplicated or lost.

Phases, each a set of human actions on one side: ``create`` (an incident for ACME with a public
comment), ``update`` (ServiceNow changes the summary and comments again), ``inbound`` (the supplier
comments and resolves), ``close`` (the service desk closes the incident). The oracle checks, after
any phase: one issue, every public comment mirrored exactly once, every supplier comment exactly
once, one link note, and the phase's own outcome.
"""

from __future__ import annotations

import time
from typing import Any

from connector.runtime.assembly import Runtime
from tests.integration.world import World

PHASES = ("create", "update", "inbound", "close")
FAST = {
    "  overlap: 30s\n": "  overlap: 30s\n  search_lag: 2s\n  dead_letter_retry: 1s\n  sweep_interval: 4s\n",
}


def act(world: World, phase: str, incident: dict[str, str] | None) -> dict[str, str]:
    """Do what people do in ``phase``; returns the incident (created in the first phase)."""
    if phase == "create":
        return world.create_incident(
            assignment_group=world.acme_group(), comments="Customer: card payments fail"
        )
    assert incident is not None
    if phase == "update":
        world.update_incident(incident["sys_id"], short_description="Checkout down everywhere")
        world.update_incident(incident["sys_id"], comments="Update: failover started")
    elif phase == "inbound":
        (issue,) = world.issues("acme", "ACME")
        agent = world.agent("acme")
        agent.add_comment(issue.key, "Storage array replaced, monitoring")
        resolve = next(t["id"] for t in agent.transitions(issue.key) if t["name"] == "Resolve")
        agent.transition_issue(issue.key, resolve, fields={"resolution": {"name": "Fixed"}})
    elif phase == "close":
        world.update_incident(
            incident["sys_id"], state="7", close_code="Solution provided", close_notes="Closed after review"
        )
    return incident


def converge(
    runtime: Runtime, *, quiet_cycles: int = 2, limit: int = 30, pause: float = 0.4, sweep: bool = True
) -> int:
    """Cycle until ``quiet_cycles`` in a row write nothing and fail nothing; return the cycles run.

    ``sweep=False`` relies on polling alone (the sweep would mask what polling missed).
    """
    quiet = 0
    for done in range(1, limit + 1):
        report = runtime.engine.cycle(sweep=sweep)
        quiet = quiet + 1 if not report.writes and not report.failed and not report.held else 0
        if quiet >= quiet_cycles:
            return done
        time.sleep(pause)
    raise AssertionError(f"no convergence after {limit} cycles; last: {report}")


def check(world: World, incident: dict[str, str], phases_done: int) -> None:
    """Assert the oracle for the first ``phases_done`` phases."""
    issues = world.issues("acme", "ACME")
    assert len(issues) == 1, f"duplicate or missing issues: {[i.key for i in issues]}"
    (issue,) = issues
    jira_bodies = [c.body for c in world.agent("acme").comments(issue.key)]
    journal = world.journal(incident["sys_id"])
    public = [j["value"] for j in journal if j["element"] == "comments" and j["sys_created_by"] == "admin"]
    for text in public:
        assert _count(jira_bodies, text) == 1, (
            f"public comment {text!r} mirrored {_count(jira_bodies, text)} times"
        )
    supplier = [b for b in jira_bodies if "[mim-connector ref:" not in b]
    for text in supplier:
        assert _count([j["value"] for j in journal], text) == 1, (
            f"supplier comment {text!r} not mirrored exactly once"
        )
    link_notes = [j for j in journal if j["value"].startswith("Mirrored to ACME Cloud Hosting as")]
    assert len(link_notes) == 1, f"{len(link_notes)} link notes"
    current = world.incident(incident["sys_id"])
    if phases_done >= 2:
        assert issue.fields.summary == f"[{incident['number']}] Checkout down everywhere"
    if phases_done >= 3:
        assert current["state"] in ("6", "7") and current["close_code"]
        assert issue.fields.status.name in ("Resolved", "Closed")
    if phases_done >= 4:
        assert current["state"] == "7"
        assert issue.fields.status.name == "Closed"


def _count(texts: list[str], needle: str) -> int:
    return sum(1 for text in texts if needle in text)


def quiet_writes(world: World, marks: tuple[int, int]) -> list[Any]:
    """Our write requests since ``marks``."""
    return [e for e in world.writes_since(marks) if e["user"] in ("svc.mim-connector", "mim-connector")]
