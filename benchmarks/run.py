"""Run every benchmark, each in its own process, then write the combined table.

``make bench`` runs this; ``make bench-quick`` runs it with ``--quick`` (small sizes, for a check
that everything still works, not for figures). Each benchmark writes
``benchmarks/results/<name>.json``; this then writes ``benchmarks/results/README-table.md``: the
machine, when, and one ``figure | measured | target | met?`` table over all of them, which is what
docs/benchmarks.md shows. ``--only NAME,…`` runs some of them and rebuilds the table
from every result file present.

Run: .venv/bin/python -m benchmarks.run [--quick] [--only calls,latency]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

from benchmarks.harness import RESULTS, ROOT, Figure, machine, table

BENCHES: dict[str, tuple[str, ...]] = {
    "sandbox": ("benchmarks/sandbox_bench.py",),
    "rules": ("benchmarks/rules_bench.py",),
    "calls": ("-m", "benchmarks.calls_bench"),
    "backfill": ("-m", "benchmarks.backfill_bench"),
    "latency": ("-m", "benchmarks.latency_bench"),
    "latency_push": ("-m", "benchmarks.latency_bench", "--push"),
    "replay": ("-m", "benchmarks.replay_bench"),
    "store": ("-m", "benchmarks.store_bench"),
    "burst_latency": ("-m", "benchmarks.burst_latency_bench"),
    "idle": ("-m", "benchmarks.idle_bench"),
    "memory": ("-m", "benchmarks.memory_bench"),
    "instances": ("-m", "benchmarks.instances_bench"),
}
"""In the order they run and appear; the first two predate the harness and take no ``--quick``."""


def run(names: list[str], quick: bool) -> dict[str, float]:
    """Run the named benchmarks; returns the seconds each took. Stops at the first that fails."""
    took: dict[str, float] = {}
    for name in names:
        command = [sys.executable, *BENCHES[name]]
        if quick and name not in ("sandbox", "rules"):
            command.append("--quick")
        print(f"\n## {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        subprocess.run(command, cwd=ROOT, check=True)
        took[name] = round(time.monotonic() - started, 1)
    return took


def figures(name: str, data: dict[str, Any]) -> list[Figure]:
    """The rows of one result file (the two older benchmarks keep their own JSON shape)."""
    if "figures" in data:
        return [Figure(**row) for row in data["figures"]]
    if name == "sandbox":
        rows = [
            Figure(
                f"Sandbox {system} simple GETs, {n} client{'s' * (n > 1)}",
                f"{rps:,.0f} req/s",
                "≥ 500 req/s",
                rps >= 500,
            )
            for system, key in (("ServiceNow", "servicenow"), ("Jira", "jira"))
            for n, rps in ((1, data[f"{key}_rps_1"]), (4, data[f"{key}_rps_4"]))
        ]
        rows.append(
            Figure(
                f"Sandbox holding {data['incidents']:,} incidents: memory (tracemalloc / RSS growth)",
                f"{data['memory_traced_mb']:.0f} MB / {data['memory_rss_growth_mb']:.0f} MB",
            )
        )
        return rows
    if name == "rules":
        rate = data["evaluations_per_second"]
        rows = [
            Figure(
                f"Promotion rules: evaluations/s with {data['rules']} rules",
                f"{rate:,.0f}/s",
                "≥ 50,000/s",
                rate >= 50_000,
            )
        ]
        for label, run in data["backtest"].items():
            rows.append(
                Figure(
                    f"Back-test of {label}: {run['events']:,} events",
                    f"{run['total_seconds']:.2f} s",
                    "seconds",
                )
            )
        return rows
    return []


def combined(took: dict[str, float], quick: bool = False) -> str:
    """The markdown docs/benchmarks.md shows: machine, date, one table over every result file."""
    rows: list[Figure] = []
    dates = []
    for name in BENCHES:
        path = RESULTS / f"{name}.json"
        if path.exists():
            data = json.loads(path.read_text())
            rows += figures(name, data)
            dates.append(data.get("ran_at", ""))
    box = machine()
    header = (
        f"Machine: {box['cpu']}, {box['cores']} cores, {box['memory_gb']} GB, {box['os']} "
        f"(kernel {box['kernel']}), Python {box['python']}. "
        f"Ran {max(d for d in dates if d) if any(dates) else 'now'}"
    )
    if took:
        header += f"; this run took {sum(took.values()) / 60:.0f} min ({', '.join(f'{k} {v:.0f} s' for k, v in took.items())})"
    if quick:
        header += "; quick run (small sizes): not the figures"
    return f"{header}.\n\n{table(rows)}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: checks the benchmarks, not figures"
    )
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(BENCHES)}")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(BENCHES)
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    took = run(names, args.quick)
    text = combined(took, args.quick)
    (RESULTS / "README-table.md").write_text(text)
    (RESULTS / "run.json").write_text(json.dumps({"quick": args.quick, "seconds": took}, indent=2) + "\n")
    print(f"\n{text}")


if __name__ == "__main__":
    main()
