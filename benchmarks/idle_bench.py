"""Idle cost with many links: the calls of idle cycles with 100,000 linked incidents vs 5.

The store benchmark's five-incident lifetime (:func:`benchmarks.store_bench.template`) is synced,
then ``mim-connector run`` runs on that store (5 links) with the production defaults except both
poll intervals at 2 s (8 workers, 10 requests/s per system, ``reconcile`` interval 10 min and
share 10 %): after a warm-up, every request it sends in a 60 s window is counted from the sandbox
journals, per system and kind. Then the template is cloned until the store holds 100,000 linked
incidents (:func:`benchmarks.store_bench.clone`; the clones' incidents do not exist in the
simulator, so each re-check is a ServiceNow read answered 404) and the same is measured again.

Target: the calls do not depend on the number of links, except the reconciler's paced re-checks;
those stay within ``reconcile.share`` of each system's budget (re-check requests per second /
``requests_per_second``). Re-checks are counted as the requests for one incident or one issue (a
``GET .../incident/<sys_id>`` or ``.../issue/<key>``); a re-check's journal read looks like a
poll's and is counted with the polls (so "other calls" may grow by one per live re-check).

Run: .venv/bin/python -m benchmarks.idle_bench [--links N] [--window S] [--quick]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchWorld, Entry, Figure, Settings, call_kind, publish, run_connector, site_of
from benchmarks.store_bench import clone, template

WARMUP_SECONDS = 20.0
RPS = 10.0
SHARE = 0.1
"""``reconcile.share``'s default."""


def recheck(entry: Entry) -> bool:
    """Whether a request reads one incident or one issue (a re-check), not a poll or journal query."""
    kind = call_kind(entry)
    return kind.endswith("/incident/<id>") or "/issue/<id>" in kind


def window(world: BenchWorld, root: Path, name: str, seconds: float) -> dict[str, Any]:
    """``mim-connector run`` for WARMUP_SECONDS + ``seconds``; the calls of the last ``seconds``."""
    marks: list[tuple[int, int]] = []
    began = time.monotonic()

    def watch(_pid: int) -> None:
        if len(marks) < 2 and time.monotonic() - began >= WARMUP_SECONDS + len(marks) * seconds:
            marks.append(world.marks())

    result = run_connector(
        ["run", "-c", str(world.config)],
        root / f"{name}.log",
        timeout=WARMUP_SECONDS + seconds + 120,
        stop_when=lambda: len(marks) == 2,
        on_poll=watch,
        poll=0.25,
    )
    start, end = marks[0], marks[1]
    servicenow, jira = world.journals(start)
    ours_sn = [e for e in servicenow if e.ours and e.seq <= end[0]]
    ours_jira = [e for e in jira if e.ours and e.seq <= end[1]]
    return {
        "seconds": seconds,
        "servicenow_calls": len(ours_sn),
        "jira_calls": len(ours_jira),
        "servicenow_rechecks": sum(1 for e in ours_sn if recheck(e)),
        "jira_rechecks": sum(1 for e in ours_jira if recheck(e)),
        "jira_rechecks_busiest_site": max(
            Counter(site_of(e) for e in ours_jira if recheck(e)).values(), default=0
        ),
        "failed_calls": sum(1 for e in [*ours_sn, *ours_jira] if e.status >= 400),
        "calls_by_kind": dict(Counter(call_kind(e) for e in [*ours_sn, *ours_jira]).most_common()),
        "cpu_seconds": round(result.cpu_seconds, 1),
        "peak_rss_mb": round(result.max_rss_mb, 1),
        "exit_code": result.returncode,
    }


def measure(root: Path, links: int, seconds: float) -> dict[str, Any]:
    """Template, the idle window at 5 links, clone, the idle window at ``links``."""
    settings = Settings(
        polling={"servicenow_interval": "2s", "supplier_interval": "2s", "initial_lookback": "1d"},
        servicenow_rps=RPS,
        jira_rps=RPS,
    )
    world = BenchWorld.create(root, settings)
    try:
        template(world, root)
        few = window(world, root, "few", seconds)
        started = time.monotonic()
        clone(root / "state.db", links)
        cloning = time.monotonic() - started
        with sqlite3.connect(root / "state.db") as db:
            count = db.execute("SELECT count(*) FROM links").fetchone()[0]
        many = window(world, root, "many", seconds)
        return {"links": count, "clone_seconds": round(cloning, 1), "few": few, "many": many}
    finally:
        world.close()


def figures(run: dict[str, Any]) -> list[Figure]:
    """The table rows."""
    few, many, links = run["few"], run["many"], run["links"]
    seconds = many["seconds"]
    rows = []
    for system, label in (("servicenow", "ServiceNow"), ("jira", "Jira")):
        polls_few = few[f"{system}_calls"] - few[f"{system}_rechecks"]
        polls_many = many[f"{system}_calls"] - many[f"{system}_rechecks"]
        rows.append(
            Figure(
                f"Idle {seconds:.0f} s, 2 s polls: {label} calls other than re-checks, {links:,} links (5 links)",
                f"{polls_many} ({polls_few})",
                "same as with 5 links (±10 %)",
                abs(polls_many - polls_few) <= max(2, 0.1 * polls_few),
            )
        )
        key = "servicenow_rechecks" if system == "servicenow" else "jira_rechecks_busiest_site"
        rate = many[key] / seconds
        where = "" if system == "servicenow" else " (busiest site)"
        rows.append(
            Figure(
                f"Idle, {links:,} links: reconciler's {label} re-checks{where}, share of its {RPS:.0f} req/s budget",
                f"{rate:.2f} req/s ({rate / RPS:.1%})",
                f"≤ {SHARE:.0%}",
                rate / RPS <= SHARE + 0.005,
            )
        )
    rows.append(
        Figure(
            f"Idle {seconds:.0f} s: connector CPU, {links:,} links (5 links)",
            f"{many['cpu_seconds']:.1f} s ({few['cpu_seconds']:.1f} s) incl. start and {WARMUP_SECONDS:.0f} s warm-up",
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of idle cycles counted")
    parser.add_argument("--quick", action="store_true", help="10,000 links, a 30 s window")
    args = parser.parse_args()
    links, seconds = (10_000, 30.0) if args.quick else (args.links, args.window)
    with tempfile.TemporaryDirectory(prefix="mim-bench-idle-") as folder:
        run = measure(Path(folder), links, seconds)
    publish("idle", figures(run), run)


if __name__ == "__main__":
    main()
