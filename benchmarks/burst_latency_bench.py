"""Latency during a backfill: detect → mirror of single changes while a burst of incidents is mirrored.

N incidents (5,000 by default) routed to all three suppliers, as in the backfill benchmark, are
created before the daemon starts. Then ``mim-connector run`` starts in its own process with the
backfill benchmark's production-like budgets (``polling.workers`` 32, 100 requests/s, burst 100
per system, pages of 1,000, a day's look-back) and both poll intervals at 2 s. Its first poll
names every backlog incident, so that work goes to the queue's bulk lane. As soon as the first
backlog issue exists (the backfill is under way), the latency benchmark's probes start: the
service desk opens incidents routed to ACME, changes their short descriptions, and the ACME
engineer comments on their issues, 0.5-1.5 s apart (fixed seed).

Each latency runs from the simulator's answer to the person's request to its answer to the
connector's write that mirrors it, both read from the sandbox journals (one clock), exactly as in
:mod:`benchmarks.latency_bench`. Reported: p50 / p95 / p99 over all changes and per direction,
against p95 ≤ poll interval + 2 s, and how far the backfill had got (backlog issues created) when
the probes started and when the last probe was mirrored: the probes must have run during it.

Run: .venv/bin/python -m benchmarks.burst_latency_bench [--incidents N] [--changes N] [--quick]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import latency_bench
from benchmarks.backfill_bench import BURST, RPS, WORKERS
from benchmarks.harness import BenchWorld, Entry, Figure, Settings, issue_creates, publish
from benchmarks.latency_bench import POLL_SECONDS, TARGET_P95, latencies, summarize

WAIT_TIMEOUT = 900.0
"""Seconds to wait for one step (slower than the latency benchmark's: a backlog may be ahead)."""
PROBE_MARKS = ("Latency probe", "Latency reply")


class Journals:
    """The sandbox journals read incrementally: only probe entries are kept, backlog creates counted."""

    def __init__(self, world: BenchWorld) -> None:
        self.world = world
        self.marks = (0, 0)
        self.servicenow: list[Entry] = []
        self.jira: list[Entry] = []
        self.backlog_created = 0
        self.backlog_last: Any = None
        self.lock = threading.Lock()

    def refresh(self) -> None:
        """Read what the simulators served since the last refresh."""
        with self.lock:
            marks = self.world.marks()
            servicenow, jira = self.world.journals(self.marks)
            self.marks = marks
            self.servicenow += [e for e in servicenow if e.seq <= marks[0] and _probe(e)]
            self.jira += [e for e in jira if e.seq <= marks[1] and _probe(e)]
            backlog = [
                e
                for e in issue_creates(e for e in jira if e.seq <= marks[1])
                if e.status == 201 and not _probe(e)
            ]
            self.backlog_created += len(backlog)
            if backlog:
                self.backlog_last = backlog[-1].time


def _probe(entry: Entry) -> bool:
    text = str(entry.body)
    return any(mark in text for mark in PROBE_MARKS)


class BurstRun(latency_bench.Run):
    """The latency benchmark's run, with a backlog ahead of it and the backfill's budgets."""

    settle_timeout = WAIT_TIMEOUT

    def __init__(self, root: Path, changes: int, incidents: int) -> None:
        self.root = root
        self.changes = changes
        self.incidents = incidents
        self.world = BenchWorld.create(
            root,
            Settings(
                polling={
                    "servicenow_interval": f"{POLL_SECONDS:.0f}s",
                    "supplier_interval": f"{POLL_SECONDS:.0f}s",
                    "workers": WORKERS,
                    "initial_lookback": "1d",
                    "page_size": 1000,
                },
                servicenow_rps=RPS,
                jira_rps=RPS,
                burst=BURST,
            ),
        )
        self.rng = random.Random(latency_bench.SEED)
        self.stop = threading.Event()
        self.result = None
        self.sys_ids: dict[int, str] = {}
        self.journal = Journals(self.world)

    def backlog(self) -> float:
        """Create the backlog before the daemon starts; returns the seconds it took."""
        started = time.monotonic()
        self.world.create_incidents(self.incidents, self.world.three_supplier_fields())
        self.journal.refresh()  # skip the backlog's creation requests
        self.journal.servicenow.clear()
        return time.monotonic() - started

    def start_daemon(self) -> threading.Thread:
        """``mim-connector run``; returns once the first backlog issue exists."""
        thread = super().start_daemon()
        self._wait(self._backfill_started, "the backfill to start")
        return thread

    def _backfill_started(self) -> bool:
        self.journal.refresh()
        return self.journal.backlog_created > 0

    def _mirrored(self) -> int:
        self.journal.refresh()
        return sum(
            len(v) for v in latencies(self.journal.servicenow, self.journal.jira, self.changes).values()
        )


def figures(stats: dict[str, dict[str, float]], progress: dict[str, Any]) -> list[Figure]:
    """One row over all changes, one per direction, and the backfill's progress."""
    labels = {
        "all": "all changes",
        "create": "new incident → ACME issue",
        "update": "ServiceNow field change → Jira",
        "supplier_comment": "supplier comment → ServiceNow work note",
    }
    backlog = progress["incidents"]
    rows = [
        Figure(
            f"Latency during a {backlog:,}-incident backfill, 2 s poll, {label} (n={s['count']:.0f}): p50 / p95 / p99",
            f"{s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f} s",
            f"p95 ≤ {TARGET_P95:.0f} s",
            s["p95"] <= TARGET_P95,
        )
        for name, label in labels.items()
        for s in [stats[name]]
    ]
    total = 3 * backlog
    rows.append(
        Figure(
            f"Latency during a {backlog:,}-incident backfill: backlog issues created when probes started / ended",
            f"{progress['at_start']:,} / {progress['at_end']:,} of {total:,}",
            f"< {total:,} at the end (probes ran during the backfill)",
            progress["at_end"] < total,
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=5000, help="backlog incidents (default 5,000)")
    parser.add_argument("--changes", type=int, default=40, help="changes of each kind (default 40)")
    parser.add_argument("--quick", action="store_true", help="1,000 incidents, 10 changes of each kind")
    args = parser.parse_args()
    incidents, changes = (1000, 10) if args.quick else (args.incidents, args.changes)
    with tempfile.TemporaryDirectory(prefix="mim-bench-burst-") as folder:
        run = BurstRun(Path(folder), changes, incidents)
        creating = run.backlog()
        began = time.monotonic()
        daemon = run.start_daemon()
        to_start = time.monotonic() - began
        at_start = run.journal.backlog_created
        try:
            run.play()
            run.journal.refresh()
            at_end = run.journal.backlog_created
            by_kind = latencies(run.journal.servicenow, run.journal.jira, changes)
        finally:
            run.close(daemon)
    stats = {name: summarize(samples) for name, samples in by_kind.items()}
    stats["all"] = summarize([s for samples in by_kind.values() for s in samples])
    progress = {"incidents": incidents, "at_start": at_start, "at_end": at_end}
    publish(
        "burst_latency",
        figures(stats, progress),
        {
            "poll_interval_seconds": POLL_SECONDS,
            "workers": WORKERS,
            "budgets_rps": RPS,
            "burst": BURST,
            "changes_per_kind": changes,
            "backlog": progress,
            "backlog_creation_seconds": round(creating, 1),
            "seconds_to_first_backlog_issue": round(to_start, 1),
            "stats": stats,
            "samples": by_kind,
            "daemon_peak_rss_mb": round(run.result.max_rss_mb, 1) if run.result else None,
            "daemon_cpu_seconds": round(run.result.cpu_seconds, 1) if run.result else None,
        },
    )


if __name__ == "__main__":
    main()
