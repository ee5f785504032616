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
* a supplier comment in Jira brought back to ServiceNow as a work note;
* a lost create: an incident's issue is created but the answer is dropped, then ``--recent``
  more issues are created by the connector's account (the rest of a burst) before the connector
  looks for the lost one by its stamp. Counted: the search pages of that lookup and the reads of
  other issues (a read per recent issue before issue 17; the stamp now comes with each page).

Run: .venv/bin/python -m benchmarks.calls_bench   (or: make bench)
"""

from __future__ import annotations

import argparse
import re
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import requests

from benchmarks.harness import (
    SITES,
    BenchWorld,
    Entry,
    Figure,
    Settings,
    call_kind,
    publish,
    site_of,
)
from connector.config import load_config
from connector.runtime.assembly import Runtime, build

IDLE_CYCLES = 10
MAX_CYCLES = 6
RECENT = 200
"""Issues created after the lost one, by default."""
LOOKUP_PAGE = 100
"""Issues per page of the lost-create lookup (Jira Cloud's page when fields are asked for)."""
ISSUE_READ = re.compile(r"^/acme/rest/api/2/issue/[A-Z]+-\d+$")


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


@dataclass(frozen=True)
class LostCreate:
    """What finding one lost create cost: the lookup's search pages and the issue reads."""

    recent: int
    lookups: int
    reads: int
    jira_calls: int
    found: bool

    def as_data(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "recent_issues": self.recent,
            "lookup_searches": self.lookups,
            "issue_reads": self.reads,
            "jira_calls_beyond_polls": self.jira_calls,
            "found": self.found,
        }


def measure(root: Path, recent: int = RECENT) -> tuple[dict[str, Cost], LostCreate]:
    """Each kind of change once, in a fresh world; returns its cost by name, and a lost create's."""
    polling = {"dead_letter_retry": "1s", "search_lag": "10s"}
    world = BenchWorld.create(root, Settings(polling=polling, log_level="ERROR"))
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
        return costs, lost_create(world, runtime, session, fields, recent)
    finally:
        runtime.close()
        world.close()


def lost_create(
    world: BenchWorld, runtime: Runtime, session: Any, fields: dict[str, str], recent: int
) -> LostCreate:
    """Drop the answer to one create, create ``recent`` more issues as the connector, then settle it.

    The settling is the executor's reconciliation of the pending create, called directly: in the
    daemon the supplier's poll search may show the stamped issue first (then it costs one read),
    but the lookup is what bounds the worst case.
    """
    control = world.sandbox.jira_control
    control.add_fault(
        method="POST", path=r"^/acme/rest/api/2/issue$", when="after_commit", action="drop", count=1
    )
    created = world.create_incident(session, {**fields, "short_description": "Lost create"})
    if not runtime.engine.cycle(sweep=False).failed:
        raise RuntimeError("the dropped answer did not fail the entity")
    _create_as_connector(world, recent)
    incident = runtime.snow.incident(created["sys_id"], runtime.engine.fields)
    (link,) = runtime.store.links.for_incident(created["sys_id"])
    if incident is None or link.state != "creating":
        raise RuntimeError(f"expected a pending create, found {link.state}")
    marks = world.marks()
    settled = runtime.engine.suppliers["acme"].executor.reconcile(incident, link, datetime.now(UTC))
    _servicenow, jira = world.journals(marks)
    ours = [e for e in jira if e.ours]
    lookups = [e for e in ours if is_search(e) and "reporter" in unquote_plus(e.query)]
    reads = [e for e in ours if e.method == "GET" and ISSUE_READ.match(e.path)]
    return LostCreate(
        recent,
        len(lookups),
        len(reads),
        len(ours),
        settled is not None and settled.state == "linked",
    )


def _create_as_connector(world: BenchWorld, count: int) -> None:
    """``count`` issues created with the connector's ACME account, stamped for other incidents."""
    session = requests.Session()
    session.auth = ("mim-connector@example.com", world.environ["MIM_DEMO_ACME_TOKEN"])
    url = f"{world.sandbox.site_url('acme')}/rest/api/2/issue"
    for n in range(count):
        stamp = {"stamp": f"burst-{n}", "incident_sys_id": f"burst{n}", "servicenow": "burst.example"}
        body = {
            "fields": {
                "project": {"key": "ACME"},
                "issuetype": {"name": "Incident"},
                "summary": f"burst {n}",
            },
            "properties": [{"key": "mim-connector", "value": stamp}],
        }
        session.post(url, json=body, timeout=10).raise_for_status()


def _patch(world: BenchWorld, session: Any, sys_id: str, fields: dict[str, str]) -> None:
    session.patch(world.table("incident", sys_id), json=fields, timeout=10).raise_for_status()


def figures(costs: dict[str, Cost], lost: LostCreate) -> list[Figure]:
    """The table rows."""
    idle, update = costs["idle"], costs["update"]
    create, public, supplier = costs["create"], costs["public_comment"], costs["supplier_comment"]
    idle_sn = idle.servicenow_polls / idle.cycles + len(idle.servicenow) / idle.cycles
    idle_search = idle.searches / idle.cycles / len(SITES)
    idle_other = len(idle.jira) / idle.cycles
    update_sn = len(update.servicenow)
    pages = -(-(lost.recent + 1) // LOOKUP_PAGE)
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
        Figure(
            f"Lost create among {lost.recent:,} newer issues: Jira calls to find it (search pages / issue reads)",
            f"{lost.jira_calls} ({lost.lookups} / {lost.reads})",
            f"≤ {pages} ({pages} / 0)",
            lost.found and lost.jira_calls <= pages and lost.reads == 0,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="accepted for symmetry; this one is quick")
    parser.add_argument(
        "--recent", type=int, default=RECENT, help=f"issues created after the lost one (default {RECENT})"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mim-bench-calls-") as folder:
        costs, lost = measure(Path(folder), args.recent)
    publish(
        "calls",
        figures(costs, lost),
        {
            "note": "polls = incident and journal polls (ServiceNow), one search per supplier (Jira)",
            "changes": {name: c.as_data() for name, c in costs.items()},
            "lost_create": lost.as_data(),
            "sites_searched": sorted({site_of(e) for c in costs.values() for e in c.jira}),
        },
    )


if __name__ == "__main__":
    main()
