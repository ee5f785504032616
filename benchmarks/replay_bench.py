"""Replay of a real incident log: how long the connector takes to converge, and what each change costs.

A real, anonymised ServiceNow event log is replayed into the sandbox as fast as the simulator
answers (every create and update through the Table API, as the service desk would make them), cast
onto the demo world as ``make demo`` does (a share of the incidents routed to ACME, Initech or
Globex by a hash of their number, so the run is the same every time). By default the log is the
slice shipped in the package (``builtin``: 197 incidents, 1,348 events); ``--events`` takes another
export, e.g. the 1,000-incident sample it was cut from (``../shared/data/``, about 4 minutes).

``mim-connector run`` syncs it in its own process, configured as in production except for the
poll intervals (2 s): 8 workers, 10 requests/s per system. Once the replay is over and the
connector has written nothing for 15 s, it has converged. Reported: the replay's duration, the time
from the replay's start to the connector's last write (time to converge) and from the replay's end,
calls per replayed change (all calls, and the writes), issues created, failed calls, dead letters.

Run: .venv/bin/python -m benchmarks.replay_bench [--events FILE|builtin] [--limit N] [--quick]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    BenchWorld,
    Figure,
    ProcessResult,
    Settings,
    call_kind,
    issue_creates,
    publish,
    run_connector,
    site_of,
)
from connector.config import load_config
from connector.rules.backtest.eventlog import read_events
from connector.sandbox.replay import first_incidents
from connector.store import Store

SHARED_SAMPLE = (
    Path(__file__).resolve().parent.parent.parent / "shared/data/servicenow_incident_events_sample.csv"
)
QUIET_SECONDS = 15.0
TIMEOUT = 1800.0


def replay(root: Path, source: str, limit: int | None) -> dict[str, Any]:
    """Replay ``source`` (its first ``limit`` incidents) under a running daemon; returns the figures."""
    world = BenchWorld.create(
        root,
        Settings(polling={"servicenow_interval": "2s", "supplier_interval": "2s", "initial_lookback": "5m"}),
    )
    stop = threading.Event()
    result: list[ProcessResult] = []
    daemon = threading.Thread(
        target=lambda: result.append(
            run_connector(
                ["run", "-c", str(world.config)], root / "daemon.log", timeout=TIMEOUT, stop_when=stop.is_set
            )
        ),
        name="daemon",
    )
    try:
        events = len(first_incidents(read_events(source), limit))
        daemon.start()
        _wait_for(lambda: sum(1 for e in world.journals()[0] if e.ours) >= 2, 60, "the daemon to poll")
        marks = world.marks()
        started = time.monotonic()
        world.sandbox.replay(source, 0, limit=limit, cast="demo")
        _wait_for(world.sandbox.settled, TIMEOUT, "the replay to finish")
        replayed = time.monotonic() - started
        servicenow, jira = _quiet(world, marks)
        stop.set()
        daemon.join()
        stats = world.sandbox.replay_stats
        first = min(e.time for e in [*servicenow, *jira])
        ours = [e for e in [*servicenow, *jira] if e.ours]
        writes = [e for e in ours if e.write]
        last_write = max(e.time for e in writes)
        replay_entries = [e for e in servicenow if not e.ours and e.write]
        replay_end = max(e.time for e in replay_entries)
        loaded = load_config(world.config)
        store = Store.open(loaded.connector.store.url, loaded.base_dir)
        try:
            dead_letters = len(store.dlq.list())
            links = len(store.links.active())
        finally:
            store.close()
        changes = (stats.created + stats.updated) if stats else events
        return {
            "source": source,
            "events": events,
            "incidents_created": stats.created if stats else None,
            "incidents_updated": stats.updated if stats else None,
            "replay_failed": stats.failed if stats else None,
            "replay_seconds": round(replayed, 1),
            "converge_seconds": round((last_write - first).total_seconds(), 1),
            "after_replay_seconds": round(max(0.0, (last_write - replay_end).total_seconds()), 1),
            "changes": changes,
            "connector_calls": len(ours),
            "connector_writes": len(writes),
            "calls_per_change": round(len(ours) / changes, 2),
            "writes_per_change": round(len(writes) / changes, 2),
            "issues_created": len([e for e in issue_creates(jira) if e.status == 201]),
            "issues_by_site": dict(Counter(site_of(e) for e in issue_creates(jira) if e.status == 201)),
            "links": links,
            "failed_calls": sum(1 for e in ours if e.status >= 400 or e.status == 0),
            "dead_letters": dead_letters,
            "daemon_peak_rss_mb": round(result[0].max_rss_mb, 1) if result else None,
            "calls_by_kind": dict(Counter(call_kind(e) for e in ours).most_common()),
        }
    finally:
        stop.set()
        if daemon.is_alive():
            daemon.join()
        world.close()


def _quiet(world: BenchWorld, marks: tuple[int, int]) -> tuple[list[Any], list[Any]]:
    """Wait until the connector has written nothing for QUIET_SECONDS; returns the journals since ``marks``."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        servicenow, jira = world.journals(marks)
        writes = [e.time for e in [*servicenow, *jira] if e.ours and e.write]
        newest = max([e.time for e in servicenow + jira], default=None)
        if writes and newest is not None and (newest - max(writes)).total_seconds() >= QUIET_SECONDS:
            return servicenow, jira
        time.sleep(2)
    raise RuntimeError("the connector did not converge")


def _wait_for(ready: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.5)


def figures(run: dict[str, Any]) -> list[Figure]:
    """The table rows."""
    label = f"Replay of {run['events']:,} real events ({run['incidents_created']} incidents)"
    return [
        Figure(
            f"{label}: time to converge (after the replay's end)",
            f"{run['converge_seconds']:.0f} s ({run['after_replay_seconds']:.0f} s); replay {run['replay_seconds']:.0f} s",
        ),
        Figure(
            f"{label}: calls per replayed change (writes)",
            f"{run['calls_per_change']:.2f} ({run['writes_per_change']:.2f})",
        ),
        Figure(
            f"{label}: issues created, failed calls, dead letters",
            f"{run['issues_created']}, {run['failed_calls']}, {run['dead_letters']}",
            "-, 0, 0",
            run["failed_calls"] == 0 and run["dead_letters"] == 0,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", default="builtin", help=f"event log CSV or builtin (default), e.g. {SHARED_SAMPLE}"
    )
    parser.add_argument("--limit", type=int, help="replay only the first N incidents")
    parser.add_argument("--quick", action="store_true", help="the shipped slice's first 60 incidents")
    args = parser.parse_args()
    source, limit = ("builtin", 60) if args.quick else (args.events, args.limit)
    with tempfile.TemporaryDirectory(prefix="mim-bench-replay-") as folder:
        run = replay(Path(folder), source, limit)
    publish("replay", figures(run), {"settings": {"poll_seconds": 2, "workers": 8, "rps": 10}, "run": run})


if __name__ == "__main__":
    main()
