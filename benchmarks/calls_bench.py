"""Calls per synced change: what one change costs in requests, counted from the sandbox journals.

The connector runs in this process (the engine of ``mim-connector run``, one cycle at a time, no
sweep), against the shipped mappings. For each kind of change the service desk or a supplier
engineer makes one change, the connector cycles until a cycle writes nothing, and the requests it
sent meanwhile are counted. The polls every cycle makes anyway (the incident and journal polls on
ServiceNow, one search per supplier) are counted apart, so "beyond the polls" is what the change
itself cost:

* idle cycle (nothing changed): ServiceNow calls and searches per supplier, per cycle;
* a new incident routed to one supplier (ACME): the mirror, its remote link, the write-back;
* a ServiceNow field change (``short_description``) mirrored to the issue;
* a public comment in ServiceNow mirrored to the issue;
* a supplier comment in Jira brought back to ServiceNow as a work note.

Run: .venv/bin/python -m benchmarks.calls_bench   (or: make bench)
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from benchmarks.harness import SITES, BenchWorld, Entry, Figure, Settings, call_kind, publish, site_of
from connector.config import load_config
from connector.wiring import Runtime, build

IDLE_CYCLES = 10
MAX_CYCLES = 6


@dataclass(frozen=True)
class Cost:
    """The connector's requests between two marks, split into polls and the rest."""

    cycles: int
    servicenow_polls: int
    searches: int
    servicenow: list[Entry]
    jira: list[Entry]

    @property
    def servicenow_reads(self) -> int:
        """ServiceNow reads beyond the polls."""
        return sum(1 for e in self.servicenow if not e.write)

    @property
    def servicenow_writes(self) -> int:
        """ServiceNow writes."""
        return sum(1 for e in self.servicenow if e.write)

    def as_data(self) -> dict[str, Any]:
        """JSON-ready counts, with every call beyond the polls by kind."""
        return {
            "cycles": self.cycles,
            "servicenow_polls": self.servicenow_polls,
            "searches": self.searches,
            "servicenow_calls": len(self.servicenow),
            "jira_calls": len(self.jira),
            "calls": dict(Counter(call_kind(e) for e in [*self.servicenow, *self.jira])),
        }


def is_servicenow_poll(entry: Entry) -> bool:
    """The incident poll (keyset on ``sys_updated_on``) or the journal poll (no ``element_id``)."""
    query = unquote_plus(entry.query)
    if entry.method != "GET":
        return False
    if entry.path == "/api/now/table/incident":
        return "sys_updated_on>=" in query or "sys_updated_on>" in query
    return entry.path == "/api/now/table/sys_journal_field" and "element_id=" not in query


def is_search(entry: Entry) -> bool:
    """A Jira search (the per-supplier poll)."""
    return "/search" in entry.path


def cost(world: BenchWorld, marks: tuple[int, int], cycles: int) -> Cost:
    """The connector's requests since ``marks``."""
    servicenow, jira = world.journals(marks)
    servicenow = [e for e in servicenow if e.ours]
    jira = [e for e in jira if e.ours]
    return Cost(
        cycles,
        sum(1 for e in servicenow if is_servicenow_poll(e)),
        sum(1 for e in jira if is_search(e)),
        [e for e in servicenow if not is_servicenow_poll(e)],
        [e for e in jira if not is_search(e)],
    )


def settle(runtime: Runtime) -> int:
    """Cycle (without the sweep) until a cycle writes nothing; returns how many cycles ran."""
    for cycles in range(1, MAX_CYCLES + 1):
        report = runtime.engine.cycle(sweep=False)
        if report.failed:
            raise RuntimeError(f"a change failed: {report.failed}")
        if not report.writes:
            return cycles
    raise RuntimeError(f"still writing after {MAX_CYCLES} cycles")


def measure(root: Path) -> dict[str, Cost]:
    """Each kind of change once, in a fresh world; returns its cost by name."""
    world = BenchWorld.create(root, Settings(log_level="WARNING"))
    runtime = build(load_config(world.config))
    try:
        costs: dict[str, Cost] = {}
        session = world.session()
        fields = {
            "short_description": "Checkout fails for all customers",
            "impact": "1",
            "urgency": "1",
            "assignment_group": world.lookup("sys_user_group", "name=ACME Hosting L2"),
        }
        runtime.engine.cycle(sweep=False)  # first contact: serverInfo, myself, watermarks

        marks = world.marks()
        incident = world.create_incident(session, fields)
        costs["create"] = cost(world, marks, settle(runtime))

        marks = world.marks()
        for _ in range(IDLE_CYCLES):
            runtime.engine.cycle(sweep=False)
        costs["idle"] = cost(world, marks, IDLE_CYCLES)

        marks = world.marks()
        _patch(world, session, incident["sys_id"], {"short_description": "Checkout down in EU"})
        costs["update"] = cost(world, marks, settle(runtime))

        marks = world.marks()
        _patch(world, session, incident["sys_id"], {"comments": "We are working with our hosting provider"})
        costs["public_comment"] = cost(world, marks, settle(runtime))

        (link,) = runtime.store.links.for_incident(incident["sys_id"])
        assert link.jira_key is not None
        marks = world.marks()
        world.agent_comment("acme", link.jira_key, "Disk full on db-cluster-01, expanding the volume")
        costs["supplier_comment"] = cost(world, marks, settle(runtime))
        return costs
    finally:
        runtime.close()
        world.close()


def _patch(world: BenchWorld, session: Any, sys_id: str, fields: dict[str, str]) -> None:
    session.patch(world.table("incident", sys_id), json=fields, timeout=10).raise_for_status()


def figures(costs: dict[str, Cost]) -> list[Figure]:
    """The table rows."""
    idle, update = costs["idle"], costs["update"]
    create, public, supplier = costs["create"], costs["public_comment"], costs["supplier_comment"]
    idle_sn = idle.servicenow_polls / idle.cycles + len(idle.servicenow) / idle.cycles
    idle_search = idle.searches / idle.cycles / len(SITES)
    idle_other = len(idle.jira) / idle.cycles
    update_sn = len(update.servicenow)
    return [
        Figure(
            "Idle cycle: ServiceNow calls / searches per supplier / other Jira calls",
            f"{idle_sn:g} / {idle_search:g} / {idle_other:g}",
            "≤ 3 / ≤ 1 / 0",
            idle_sn <= 3 and idle_search <= 1 and idle_other == 0,
        ),
        Figure(
            "ServiceNow field change → Jira: Jira / ServiceNow calls beyond the polls",
            f"{len(update.jira)} / {update_sn}",
            "≤ 4 / ≤ 1",
            len(update.jira) <= 4 and update_sn <= 1,
        ),
        Figure(
            "New incident → Jira issue (one supplier): Jira calls; ServiceNow reads + writes",
            f"{len(create.jira)}; {create.servicenow_reads} + {create.servicenow_writes}",
        ),
        Figure(
            "ServiceNow public comment → Jira: Jira / ServiceNow calls beyond the polls",
            f"{len(public.jira)} / {len(public.servicenow)}",
        ),
        Figure(
            "Supplier comment → ServiceNow work note: Jira / ServiceNow calls beyond the polls",
            f"{len(supplier.jira)} / {len(supplier.servicenow)}",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry; this one is quick")
    parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mim-bench-calls-") as folder:
        costs = measure(Path(folder))
    publish(
        "calls",
        figures(costs),
        {
            "note": "polls = incident and journal polls (ServiceNow), one search per supplier (Jira)",
            "changes": {name: c.as_data() for name, c in costs.items()},
            "sites_searched": sorted({site_of(e) for c in costs.values() for e in c.jira}),
        },
    )


if __name__ == "__main__":
    main()
