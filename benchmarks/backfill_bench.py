"""Backfill: how fast the connector mirrors a backlog of major incidents to three suppliers.

N incidents (5,000 by default) are created in the simulated ServiceNow, each an accepted major
incident that every supplier's routing takes (ACME Hosting L2, the Payments service, the Globex
WAN link), so the backlog is 3N issues. Then ``mim-connector sync --once`` runs in its own
process, as an admin would start a backfill, with what an admin would configure for one:
``polling.workers`` 32, rate budgets of 100 requests/s (burst 100) per system instead of the
default 10, an initial look-back of a day, pages of 1,000 incidents. Runs again (the next cycle)
while issues are missing, as the daemon would.

Measured with 0 ms and 50 ms of injected latency on every request to either simulator:
incidents/s = N / (time from starting the process to the answer to the last issue creation,
from the Jira journal), the connector process's peak RSS, and its CPU time (user + system, from
``wait4``) per mirrored incident (target at 0 ms: at most half of the 40-50 ms measured before
the work queue). Also calls per incident by kind.

Run: .venv/bin/python -m benchmarks.backfill_bench [--incidents N] [--latency 0,50] [--quick]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    SITES,
    BenchWorld,
    Figure,
    Settings,
    call_kind,
    issue_creates,
    publish,
    run_connector,
    site_of,
)

TARGET_RATE = 20.0
"""Incidents per second at 50 ms injected latency (the issue's target)."""
TARGET_CPU_MS = 22.5
"""Connector CPU per mirrored incident at 0 ms latency: half of the 40-50 ms before the work queue."""
WORKERS = 32
RPS = 100.0
BURST = 100
MAX_RUNS = 3


def backfill(
    incidents: int, latency_ms: int, workers: int, root: Path, sample: Path | None = None
) -> dict[str, Any]:
    """One backfill of ``incidents`` x 3 suppliers at ``latency_ms``; returns its figures and call counts.

    With ``sample`` the connector runs under :mod:`benchmarks.sampler`, which writes where its
    threads spent their time to that file (and costs a little speed).
    """
    launcher = ("-m", "benchmarks.sampler", str(sample), "--") if sample else ("-m", "connector")
    settings = Settings(
        polling={"workers": workers, "initial_lookback": "1d", "page_size": 1000},
        servicenow_rps=RPS,
        jira_rps=RPS,
        burst=BURST,
    )
    world = BenchWorld.create(root, settings)
    try:
        world.create_incidents(incidents, world.three_supplier_fields())
        world.inject_latency(latency_ms)
        marks = world.marks()
        runs = []
        created = 0
        own_cpu = _cpu()
        while created < 3 * incidents and len(runs) < MAX_RUNS:
            runs.append(
                run_connector(
                    ["sync", "--once", "-c", str(world.config)],
                    root / f"sync-{len(runs) + 1}.log",
                    timeout=3600,
                    launcher=launcher,
                )
            )
            servicenow, jira = world.journals(marks)
            done = [e for e in issue_creates(jira) if e.status == 201]
            created = len(done)
        sandbox_cpu = _cpu() - own_cpu
        last = max(e.time for e in done) if done else runs[-1].started
        seconds = (last - runs[0].started).total_seconds()
        ours_sn = [e for e in servicenow if e.ours]
        ours_jira = [e for e in jira if e.ours]
        return {
            "incidents": incidents,
            "latency_ms": latency_ms,
            "workers": workers,
            "issues_created": created,
            "issues_by_site": dict(Counter(site_of(e) for e in done)),
            "runs": len(runs),
            "seconds": round(seconds, 2),
            "incidents_per_second": round(incidents / seconds, 2) if created == 3 * incidents else 0.0,
            "peak_rss_mb": round(max(r.max_rss_mb for r in runs), 1),
            "exit_codes": [r.returncode for r in runs],
            "connector_cpu_seconds": round(sum(r.cpu_seconds for r in runs), 1),
            "connector_cpu_ms_per_incident": round(1000 * sum(r.cpu_seconds for r in runs) / incidents, 1)
            if created == 3 * incidents
            else None,
            "sandbox_cpu_seconds": round(sandbox_cpu, 1),
            "servicenow_calls": len(ours_sn),
            "jira_calls": len(ours_jira),
            "failed_calls": sum(1 for e in [*ours_sn, *ours_jira] if e.status >= 400 or e.status == 0),
            "calls_by_kind": dict(Counter(call_kind(e) for e in [*ours_sn, *ours_jira]).most_common()),
        }
    finally:
        world.close()


def _cpu() -> float:
    """CPU seconds this process (the sandbox, mostly) has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def figures(runs: list[dict[str, Any]]) -> list[Figure]:
    """The table rows of every run."""
    rows = []
    for run in runs:
        label = f"Backfill {run['incidents']:,} incidents x 3 suppliers, {run['latency_ms']} ms latency"
        complete = run["issues_created"] == 3 * run["incidents"]
        rate = run["incidents_per_second"]
        target = f"≥ {TARGET_RATE:.0f}/s" if run["latency_ms"] >= 50 else "measured"
        met = (complete and rate >= TARGET_RATE) if run["latency_ms"] >= 50 else None
        rows.append(
            Figure(
                f"{label}: incidents/s",
                f"{rate:.1f}/s ({run['seconds']:.0f} s, {run['issues_created']:,} issues)",
                target,
                met,
            )
        )
        rows.append(Figure(f"{label}: connector peak RSS", f"{run['peak_rss_mb']:.0f} MB"))
        cpu = run["connector_cpu_ms_per_incident"]
        rows.append(
            Figure(
                f"{label}: connector CPU (user + system) per mirrored incident",
                f"{cpu:.1f} ms" if cpu is not None else "incomplete",
                f"≤ {TARGET_CPU_MS:.1f} ms" if run["latency_ms"] == 0 else "measured",
                (cpu is not None and cpu <= TARGET_CPU_MS) if run["latency_ms"] == 0 else None,
            )
        )
        per = run["incidents"]
        rows.append(
            Figure(
                f"{label}: calls per incident (ServiceNow / Jira)",
                f"{run['servicenow_calls'] / per:.1f} / {run['jira_calls'] / per:.1f}",
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5000)
    parser.add_argument("--latency", default="0,50", help="comma-separated injected latencies in ms")
    parser.add_argument("--workers", type=int, default=WORKERS)
    parser.add_argument("--quick", action="store_true", help="300 incidents")
    parser.add_argument("--sample", type=Path, help="write where the connector's time goes to this JSON file")
    args = parser.parse_args()
    incidents = 300 if args.quick else args.incidents
    runs = []
    for latency in (int(x) for x in args.latency.split(",")):
        with tempfile.TemporaryDirectory(prefix="mim-bench-backfill-") as folder:
            runs.append(backfill(incidents, latency, args.workers, Path(folder), args.sample))
    publish(
        "backfill",
        figures(runs),
        {"sites": SITES, "budgets_rps": RPS, "burst": BURST, "runs": runs},
    )


if __name__ == "__main__":
    main()
