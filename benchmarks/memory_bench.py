"""Memory that stays flat: the daemon's RSS after syncing 20,000 incidents, against after the first 1,000.

``mim-connector run`` runs in its own process, configured as in production except for short poll
intervals (2 s) and budgets of 100 requests/s per system (so that 20,000 incidents pass in
minutes, not hours). The service desk creates incidents in the sandbox in waves of 1,000, from
four clients; the connector syncs each wave before the next starts. Every wave is the same mix,
dealt by the incident's index (no randomness):

* 10 % assigned to ``ACME Hosting L2`` with a customer comment: ACME's routing mirrors them
  (an issue each, the comment mirrored);
* 3 % on the ``Payments`` service at priority 3: Initech's routing mirrors them;
* the rest at priority 3 or 4 on the service desk's, network and database groups (a seventh of
  them on a CI, a third with a customer comment): observed, stored, run through the promotion
  rules, mirrored nowhere.

Each wave's ``opened_at`` are spread 90 s apart, ending at the wave's creation: 960 incidents a
day, a large service desk, rather than 1,000 a minute, so that the rules' windows (a cluster
within 30 minutes) hold what they would hold in production, not the whole run. Comments flow
both ways and incidents close while the waves pass: before each wave, the service desk comments
on a tenth of the previous wave's incidents and on half of its ACME ones, and resolves every
incident of the wave before that (about two waves are open at a time); after each wave, the
ACME engineer comments on ten of its newest issues.

A wave is synced when the store holds every incident created so far, its work queue holds no
item but the reconciler's (a claimed item stays there until done), the Jira journal shows an
issue for each routed one, and the connector has sent nothing for 3 s. The connector's RSS
(``VmRSS``, the median of five reads over 2 s) is read then, after each wave. The first wave is
the warm-up (imports, pools, caches filling); the target is that the RSS after all the waves is
within 20 MB of its value after the first. Reported also: the slope (kB per incident) of a
line fitted through the samples after the first, and the peak (``VmHWM``).

``--trace FOLDER`` runs the connector under :mod:`benchmarks.memtrace` instead and writes its live
objects by type and its big containers after each wave (``wave-NNN.objects``); with ``--frames N``
also a :mod:`tracemalloc` snapshot after each wave and the growth between the first and the last,
by traceback, to ``FOLDER/growth.txt`` (several times slower). A traced run publishes nothing.

``--storm`` leaves ``opened_at`` to the simulator instead, as a replay at full speed does: every
incident of the run opens within the rules' 30-minute cluster window, which must then keep them
all (as a few values each). Published as ``memory-storm``.

``--arenas N`` runs the connector with ``MALLOC_ARENA_MAX=N`` (glibc's malloc keeps up to 8 arenas
per core for a process's threads; published as ``memory-arenasN``), to compare.

Run: .venv/bin/python -m benchmarks.memory_bench [--incidents N] [--wave N] [--quick] [--arenas N] [--trace DIR [--frames N]]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from benchmarks import memtrace
from benchmarks.harness import (
    BenchWorld,
    Figure,
    ProcessResult,
    Settings,
    issue_creates,
    peak_rss_mb,
    publish,
    rss_mb,
    run_connector,
)
from connector.store.workitems import RECONCILE

TARGET_MB = 20.0
WAVE = 1000
CLIENTS = 4
QUIET_SECONDS = 3.0
WAVE_TIMEOUT = 900.0
RPS = 100.0
BURST = 100
SETTINGS = Settings(
    polling={
        "servicenow_interval": "2s",
        "supplier_interval": "2s",
        "initial_lookback": "5m",
        "page_size": 1000,
    },
    servicenow_rps=RPS,
    jira_rps=RPS,
    burst=BURST,
)
PAYMENTS = (3, 36, 69)
"""Incidents (index modulo 100) on the Payments service: Initech's routing."""
OPENED_EVERY = timedelta(seconds=90)
"""The spacing of the incidents' ``opened_at``: 960 a day, a large service desk, not 1,000 a minute."""
SN_DATETIME = "%Y-%m-%d %H:%M:%S"
OTHER_GROUPS = (
    ("Service Desk", "mail-01"),
    ("Network Operations", "wan-link-ams"),
    ("Database Team", "db-cluster-01"),
    ("Service Desk", "intranet-web"),
)


class Desk:
    """The service desk and the ACME engineer: create the waves and keep comments flowing."""

    def __init__(self, world: BenchWorld, storm: bool = False) -> None:
        self.world = world
        self.storm = storm
        """Leave ``opened_at`` to the simulator (now): every incident lands in the rules' windows."""
        self.created = 0
        self.routed = 0
        self.waves: list[list[tuple[int, str]]] = []
        """(index, sys_id) of each wave's incidents."""

    def fields(self, index: int) -> dict[str, str]:
        """The incident number ``index`` of the run (see the module docstring for the mix)."""
        lookup = self.world.lookup
        base = {
            "short_description": f"Memory bench incident {index}",
            "description": "Created by memory_bench",
        }
        if index % 10 == 0:
            return {
                **base,
                "impact": "2",
                "urgency": "2",
                "assignment_group": lookup("sys_user_group", "name=ACME Hosting L2"),
                "comments": f"Customer: order {index} cannot be placed",
            }
        if index % 100 in PAYMENTS:
            return {
                **base,
                "impact": "2",
                "urgency": "3",
                "assignment_group": lookup("sys_user_group", "name=Payments Team"),
                "business_service": lookup("cmdb_ci_service", "name=Payments"),
            }
        group, ci = OTHER_GROUPS[index % len(OTHER_GROUPS)]
        fields = {
            **base,
            "impact": "3",
            "urgency": str(2 + index % 2),
            "assignment_group": lookup("sys_user_group", f"name={group}"),
        }
        if index % 7 == 0:
            fields["cmdb_ci"] = lookup("cmdb_ci", f"name={ci}")
        if index % 3 == 0:
            fields["comments"] = f"Customer: ticket {index} still open"
        return fields

    def wave(self, count: int) -> None:
        """Touch the older waves (see the module docstring), then create ``count`` incidents."""
        self._touch_older()
        first = self.created
        now = datetime.now(UTC)
        made: list[tuple[int, str]] = []
        lock = threading.Lock()

        def work(indexes: range) -> None:
            session = self.world.session()
            for index in indexes:
                fields = self.fields(index)
                if not self.storm:
                    opened = now - (first + count - index) * OPENED_EVERY
                    fields["opened_at"] = opened.strftime(SN_DATETIME)
                record = self.world.create_incident(session, fields)
                with lock:
                    made.append((index, record["sys_id"]))

        threads = [
            threading.Thread(target=work, args=(range(first + k, first + count, CLIENTS),))
            for k in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if len(made) != count:
            raise RuntimeError(f"created {len(made)} of {count} incidents")
        self.created += count
        self.routed += sum(1 for index, _ in made if index % 10 == 0 or index % 100 in PAYMENTS)
        self.waves.append(sorted(made))

    def _touch_older(self) -> None:
        session = self.world.session()
        resolve = {"state": "6", "close_code": "Solution provided", "close_notes": "Fixed"}
        if self.waves:
            for index, sys_id in self.waves[-1]:
                if index % 10 == 1 or index % 20 == 0:
                    _patch(
                        session, self.world.table("incident", sys_id), {"comments": f"Any news on {index}?"}
                    )
        if len(self.waves) >= 2:
            for _index, sys_id in self.waves[-2]:
                _patch(session, self.world.table("incident", sys_id), resolve)


def _patch(session: requests.Session, url: str, fields: dict[str, str]) -> None:
    session.patch(url, json=fields, timeout=30).raise_for_status()


def agent_comments(world: BenchWorld, count: int) -> int:
    """The ACME engineer comments on the ``count`` newest ACME issues (keys from the store); returns how many."""
    keys = _query(
        world.root / "state.db",
        f"SELECT jira_key FROM links WHERE supplier = 'acme' AND jira_key IS NOT NULL ORDER BY link_id DESC LIMIT {count}",
    )
    for (key,) in keys:
        world.agent_comment("acme", str(key), "Engineer: looking at it")
    return len(keys)


def _query(database: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of ``query`` on the connector's store, read-only beside the running daemon ([] before it exists)."""
    if not database.exists():
        return []
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            return list(connection.execute(query).fetchall())
    except sqlite3.OperationalError:
        return []


def stored_incidents(database: Path) -> int:
    """How many incidents the connector's store holds."""
    rows = _query(database, "SELECT count(*) FROM incidents")
    return int(rows[0][0]) if rows else 0


def waiting_work(database: Path) -> int:
    """Work items waiting or being processed in the connector's queue, but for the reconciler's."""
    rows = _query(database, f"SELECT count(*) FROM work WHERE state = 'pending' AND lane != {RECONCILE}")
    return int(rows[0][0]) if rows else 0


def synced(world: BenchWorld, desk: Desk, marks: tuple[int, int], issues_before: int) -> int:
    """Wait until the connector has synced everything created so far; returns the issues created in all."""
    deadline = time.monotonic() + WAVE_TIMEOUT
    database = world.root / "state.db"
    while time.monotonic() < deadline:
        time.sleep(1.0)
        if stored_incidents(database) < desk.created or waiting_work(database):
            continue
        servicenow, jira = world.journals(marks)
        created = issues_before + sum(1 for e in issue_creates(jira) if e.status == 201)
        ours = [e.time for e in [*servicenow, *jira] if e.ours and e.write]
        newest = max([e.time for e in [*servicenow, *jira]], default=None)
        quiet = not ours or (newest is not None and (newest - max(ours)).total_seconds() >= QUIET_SECONDS)
        if created >= desk.routed and quiet:
            time.sleep(QUIET_SECONDS)
            return created
    raise RuntimeError(f"the connector did not sync {desk.created} incidents within {WAVE_TIMEOUT:.0f} s")


def sample_rss(pid: int, reads: int = 5, every: float = 0.4) -> float:
    """The median of ``reads`` reads of ``pid``'s RSS, ``every`` seconds apart, in MB."""
    values = []
    for _ in range(reads):
        values.append(rss_mb(pid))
        time.sleep(every)
    return statistics.median(values)


def slope_kb(points: list[tuple[int, float]]) -> float:
    """kB per incident of the least-squares line through ``(incidents, MB)`` points."""
    if len(points) < 2:
        return 0.0
    xs, ys = [float(x) for x, _ in points], [y for _, y in points]
    return statistics.linear_regression(xs, ys).slope * 1000


def measure(
    root: Path, incidents: int, wave: int, trace: Path | None, frames: int = 0, storm: bool = False
) -> dict[str, Any]:
    """Sync ``incidents`` in waves of ``wave`` under one daemon; returns the RSS samples and figures."""
    world = BenchWorld.create(root, SETTINGS)
    desk = Desk(world, storm)
    pid: list[int] = []
    stop = threading.Event()
    result: list[ProcessResult] = []
    launcher = (
        ("-m", "benchmarks.memtrace", str(trace), "--frames", str(frames), "--")
        if trace
        else ("-m", "connector")
    )

    def remember(process_id: int) -> None:
        if not pid:
            pid.append(process_id)

    daemon = threading.Thread(
        target=lambda: result.append(
            run_connector(
                ["run", "-c", str(world.config)],
                root / "daemon.log",
                timeout=3 * WAVE_TIMEOUT + incidents / wave * WAVE_TIMEOUT,
                stop_when=stop.is_set,
                launcher=launcher,
                on_poll=remember,
            )
        ),
        name="daemon",
    )
    samples: list[dict[str, Any]] = []
    try:
        daemon.start()
        _wait_for(lambda: bool(pid) and _polled(world), 120)
        issues = 0
        comments = 0
        started = time.monotonic()
        while desk.created < incidents:
            marks = world.marks()
            desk.wave(min(wave, incidents - desk.created))
            issues = synced(world, desk, marks, issues)
            rss = sample_rss(pid[0])
            samples.append(
                {
                    "incidents": desk.created,
                    "rss_mb": round(rss, 1),
                    "seconds": round(time.monotonic() - started),
                }
            )
            print(f"{desk.created:>7,} incidents, {issues:>6,} issues: RSS {rss:6.1f} MB", flush=True)
            if trace:
                memtrace.request(trace, f"wave-{len(samples):03d}")
            comments += agent_comments(world, 10)
        peak = peak_rss_mb(pid[0])
        stop.set()
        daemon.join()
        if trace and frames and len(samples) > 1:
            report = memtrace.growth(trace / "wave-001.snapshot", trace / f"wave-{len(samples):03d}.snapshot")
            (trace / "growth.txt").write_text(report)
        first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
        after = [(s["incidents"], s["rss_mb"]) for s in samples[1:]]
        return {
            "incidents": incidents,
            "wave": wave,
            "issues_created": issues,
            "agent_comments": comments,
            "samples": samples,
            "rss_first_wave_mb": first,
            "rss_final_mb": last,
            "growth_mb": round(last - first, 1),
            "slope_kb_per_incident": round(slope_kb(after), 2),
            "peak_rss_mb": round(max(peak, result[0].max_rss_mb if result else 0.0), 1),
            "seconds": round(time.monotonic() - started),
            "exit_code": result[0].returncode if result else None,
            "traced": trace is not None,
            "storm": storm,
        }
    finally:
        stop.set()
        if daemon.is_alive():
            daemon.join()
        world.close()


def _polled(world: BenchWorld) -> bool:
    return sum(1 for e in world.journals()[0] if e.ours) >= 2


def _wait_for(ready: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the daemon to start polling")
        time.sleep(0.5)


def figures(run: dict[str, Any], arenas: str | None = None) -> list[Figure]:
    """The table rows (``arenas``: the MALLOC_ARENA_MAX the connector ran with, if any)."""
    label = f"Daemon syncing {run['incidents']:,} incidents in waves of {run['wave']:,}{' (one storm)' * run['storm']}"
    if arenas:
        label += f", MALLOC_ARENA_MAX={arenas}"
    first_size = run["samples"][0]["incidents"]
    return [
        Figure(
            f"{label}: RSS growth after the first {first_size:,} (first → final)",
            f"{run['growth_mb']:+.1f} MB ({run['rss_first_wave_mb']:.0f} → {run['rss_final_mb']:.0f} MB)",
            f"≤ {TARGET_MB:.0f} MB",
            run["growth_mb"] <= TARGET_MB,
        ),
        Figure(
            f"{label}: RSS slope, peak RSS",
            f"{run['slope_kb_per_incident']:.2f} kB/incident, {run['peak_rss_mb']:.0f} MB",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=20_000)
    parser.add_argument("--wave", type=int, default=WAVE, help="incidents created per wave (default 1,000)")
    parser.add_argument(
        "--storm", action="store_true", help="opened_at left to the simulator: the whole run is one storm"
    )
    parser.add_argument("--quick", action="store_true", help="3,000 incidents in waves of 500")
    parser.add_argument(
        "--arenas", type=int, help="run the connector with MALLOC_ARENA_MAX set to this (glibc malloc arenas)"
    )
    parser.add_argument(
        "--trace", type=Path, help="count the connector's objects after each wave into this folder"
    )
    parser.add_argument(
        "--frames", type=int, default=0, help="with --trace: also tracemalloc, with this many frames"
    )
    args = parser.parse_args()
    incidents, wave = (3000, 500) if args.quick else (args.incidents, args.wave)
    if args.arenas:
        os.environ["MALLOC_ARENA_MAX"] = str(args.arenas)
    with tempfile.TemporaryDirectory(prefix="mim-bench-memory-") as folder:
        run = measure(
            Path(folder),
            incidents,
            wave,
            args.trace.resolve() if args.trace else None,
            args.frames,
            args.storm,
        )
    if run["traced"]:
        print(f"traced: see {args.trace}; figures not published")
        return
    arenas = os.environ.get("MALLOC_ARENA_MAX")
    publish(
        ("memory-storm" if args.storm else "memory") + (f"-arenas{arenas}" if arenas else ""),
        figures(run, arenas),
        {
            "settings": {
                "poll_seconds": 2,
                "rps": RPS,
                "burst": BURST,
                "wave": wave,
                "malloc_arena_max": arenas,
            },
            "run": run,
        },
    )


if __name__ == "__main__":
    main()
