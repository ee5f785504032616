"""State-store growth: the daemon's memory and the database's size with 100,000 linked incidents.

1. **A real lifetime, five times.** Five incidents routed to ACME (with a customer comment) are
   mirrored by ``mim-connector sync --once``; then the service desk edits them, the ACME engineer
   comments and the service desk resolves them, and the connector syncs again. Every row the
   connector wrote for them (incident version, link, shadows, comment ledger, intents, audit,
   condition state) is the template of one linked incident's lifetime.
2. **Baseline.** ``mim-connector run`` on that store (five links) for a few cycles: its RSS.
3. **100,000 linked incidents.** The template rows are cloned (fresh sys_ids, numbers, keys and
   ids, each copy opened 50 minutes before the last, so 100,000 incidents span two years) into
   the same SQLite file until it holds 100,000 linked incidents; the file size is
   measured. Then ``mim-connector run`` again, in its own process, on that file: its first cycle
   includes the sweep, which re-checks every open link; the clones' incidents do not exist in the
   simulator, so each costs one ServiceNow read (404) and is skipped. Measured: the process's peak
   RSS (during the sweep), its RSS in the idle cycles after it, how long the sweep took.

The daemon runs with 32 workers and 1,000 requests/s budgets here so that the sweep of 100,000
links takes minutes; at the default 10 requests/s one ServiceNow read per link alone takes
2.8 hours (see docs/benchmarks.md).

Run: .venv/bin/python -m benchmarks.store_bench [--links N] [--quick]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchWorld, Figure, Settings, publish, rss_mb, run_connector

TARGET_RSS_MB = 150.0
TEMPLATE_INCIDENTS = 5
IDLE_SECONDS = 15.0
TABLES = ("incidents", "links", "shadows", "comments", "intents", "audit", "condition_state")
SN_DATETIME = "%Y-%m-%d %H:%M:%S"
OPENED_EVERY = timedelta(minutes=50)
"""How much earlier each copy of the five template incidents was opened (one incident every 10 min)."""
ID_COLUMNS = {"links": "link_id", "comments": "comment_id", "intents": "intent_id", "audit": "audit_id"}
"""Integer keys given fresh values per clone; references to them (``link_id``, ``intent_id``) follow."""


def template(world: BenchWorld, root: Path) -> None:
    """Five incidents through a whole lifetime, synced by ``mim-connector sync --once``."""
    session = world.session()
    fields = {
        "short_description": "Checkout fails for all customers",
        "description": "Payment page times out",
        "impact": "1",
        "urgency": "1",
        "assignment_group": world.lookup("sys_user_group", "name=ACME Hosting L2"),
        "comments": "Customer: card payments fail",
    }
    incidents = [world.create_incident(session, fields) for _ in range(TEMPLATE_INCIDENTS)]
    _sync(world, root, "template-1")
    keys = _keys(root)
    for incident in incidents:
        url = world.table("incident", incident["sys_id"])
        session.patch(url, json={"short_description": "Checkout down in EU"}, timeout=10).raise_for_status()
        world.agent_comment(
            "acme", keys[incident["sys_id"]], "Disk full on db-cluster-01, expanding the volume"
        )
    _sync(world, root, "template-2")
    for incident in incidents:
        resolve = {"state": "6", "close_code": "Solution provided", "close_notes": "Volume expanded"}
        session.patch(
            world.table("incident", incident["sys_id"]), json=resolve, timeout=10
        ).raise_for_status()
    _sync(world, root, "template-3")


def _sync(world: BenchWorld, root: Path, name: str) -> None:
    result = run_connector(["sync", "--once", "-c", str(world.config)], root / f"{name}.log", timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"sync failed ({result.returncode}); see {result.log}")


def _keys(root: Path) -> dict[str, str]:
    with sqlite3.connect(root / "state.db") as db:
        return dict(db.execute("SELECT incident_sys_id, jira_key FROM links"))


def clone(database: Path, links: int) -> None:
    """Copy the template's rows until the store holds ``links`` linked incidents (one transaction per batch)."""
    db = sqlite3.connect(database)
    try:
        rows = {table: db.execute(f"SELECT * FROM {table}").fetchall() for table in TABLES}
        columns = {table: [c[1] for c in db.execute(f"PRAGMA table_info({table})")] for table in TABLES}
        sizes = {
            table: max((r[columns[table].index(c)] for r in rows[table]), default=0)
            for table, c in ID_COLUMNS.items()
        }
        names = _identifiers(db)
        copies = links // len(rows["links"]) - 1
        for batch in _batches(copies, 200):
            with db:
                for table in TABLES:
                    statement = f"INSERT INTO {table} VALUES ({','.join('?' * len(columns[table]))})"
                    db.executemany(
                        statement, _copies(table, rows[table], columns[table], batch, sizes, names)
                    )
    finally:
        db.close()


def _identifiers(db: sqlite3.Connection) -> dict[str, str]:
    """Every identifier of the template that a clone must not share: sys_ids, numbers, keys."""
    found: dict[str, str] = {}
    for sys_id, number in db.execute("SELECT sys_id, number FROM incidents"):
        found[sys_id] = "sys_id"
        found[number] = "number"
    for key, issue_id, stamp in db.execute("SELECT jira_key, jira_issue_id, stamp FROM links"):
        found[key] = "key"
        found[issue_id] = "issue_id"
        found[stamp] = "stamp"
    return found


def _batches(copies: int, size: int) -> Iterator[range]:
    for start in range(1, copies + 1, size):
        yield range(start, min(copies, start + size - 1) + 1)


def _copies(
    table: str,
    rows: list[tuple[Any, ...]],
    columns: list[str],
    batch: range,
    sizes: dict[str, int],
    names: dict[str, str],
) -> Iterator[tuple[Any, ...]]:
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    pattern = re.compile(f"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")
    for copy in batch:
        rename = _renamer({name: _fresh(kind, name, copy) for name, kind in names.items()})
        for row in rows:
            values = []
            for column, value in zip(columns, row, strict=True):
                owner = next((t for t, c in ID_COLUMNS.items() if c == column), None)
                if owner is not None and isinstance(value, int):
                    value += copy * sizes[owner]
                elif column == "opened_at" and isinstance(value, str):
                    value = _earlier(value, copy)
                elif isinstance(value, str):
                    value = pattern.sub(rename, value)
                values.append(value)
            yield tuple(values)


def _earlier(opened_at: str, copy: int) -> str:
    """Each copy opened OPENED_EVERY earlier: 100,000 incidents over about two years, as in real life."""
    moment = datetime.strptime(opened_at, SN_DATETIME).replace(tzinfo=UTC) - copy * OPENED_EVERY
    return moment.strftime(SN_DATETIME)


def _renamer(fresh: dict[str, str]) -> Callable[[re.Match[str]], str]:
    return lambda match: fresh[match.group(0)]


def _fresh(kind: str, name: str, copy: int) -> str:
    if kind == "sys_id":
        return uuid.UUID(int=(int(name, 16) + copy) % (1 << 128)).hex
    if kind == "number":
        return f"INC{int(name[3:]) + copy * 10 * TEMPLATE_INCIDENTS:07d}"
    if kind == "key":
        project, _, n = name.partition("-")
        return f"{project}-{int(n) + copy * 10 * TEMPLATE_INCIDENTS}"
    if kind == "issue_id":
        return str(int(name) + copy * 10 * TEMPLATE_INCIDENTS)
    return f"{copy:06x}{name[6:]}"


def run_daemon(world: BenchWorld, root: Path, name: str, done: Callable[[], bool]) -> dict[str, float]:
    """``mim-connector run`` until ``done()``, then IDLE_SECONDS more; its peak and last RSS."""
    samples: list[float] = []
    finished: list[float] = []
    began = time.monotonic()

    def watch(pid: int) -> None:
        samples.append(rss_mb(pid))
        if not finished and done():
            finished.append(time.monotonic())

    def stop() -> bool:
        return bool(finished) and time.monotonic() - finished[0] >= IDLE_SECONDS

    result = run_connector(
        ["run", "-c", str(world.config)], root / f"{name}.log", timeout=3600, stop_when=stop, on_poll=watch
    )
    idle = [s for s in samples[-int(IDLE_SECONDS) :] if s == s]  # the last samples: idle cycles
    return {
        "peak_rss_mb": round(result.max_rss_mb, 1),
        "idle_rss_mb": round(max(idle), 1) if idle else float("nan"),
        "busy_seconds": round((finished[0] if finished else time.monotonic()) - began, 1),
        "cpu_seconds": round(result.cpu_seconds, 1),
    }


def measure(root: Path, links: int) -> dict[str, Any]:
    """Template, baseline, clone, the daemon at ``links``; returns the figures."""
    settings = Settings(
        polling={
            "servicenow_interval": "2s",
            "supplier_interval": "2s",
            "workers": 32,
            "initial_lookback": "1d",
        },
        servicenow_rps=1000.0,
        jira_rps=1000.0,
        burst=100,
    )
    world = BenchWorld.create(root, settings)
    try:
        template(world, root)
        database = root / "state.db"
        mark = world.marks()[0]
        baseline = run_daemon(world, root, "baseline", lambda: world.marks()[0] - mark >= 6)
        started = time.monotonic()
        clone(database, links)
        cloning = time.monotonic() - started
        with sqlite3.connect(database) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        size = sum(p.stat().st_size for p in root.glob("state.db*"))
        mark = world.marks()[0]
        grown = run_daemon(world, root, "grown", lambda: world.marks()[0] - mark >= counts["links"])
        return {
            "links": counts["links"],
            "rows": counts,
            "clone_seconds": round(cloning, 1),
            "db_mb": round(size / 1e6, 1),
            "db_bytes_per_link": round(size / counts["links"]),
            "baseline": baseline,
            "grown": grown,
        }
    finally:
        world.close()


def figures(run: dict[str, Any]) -> list[Figure]:
    """The table rows."""
    links, grown, base = run["links"], run["grown"], run["baseline"]
    return [
        Figure(
            f"State store at {links:,} linked incidents: daemon RSS, idle cycles",
            f"{grown['idle_rss_mb']:.0f} MB (5 links: {base['idle_rss_mb']:.0f} MB)",
            f"≤ {TARGET_RSS_MB:.0f} MB",
            grown["idle_rss_mb"] <= TARGET_RSS_MB,
        ),
        Figure(
            f"State store at {links:,} linked incidents: daemon peak RSS (its sweep of every link)",
            f"{grown['peak_rss_mb']:.0f} MB (5 links: {base['peak_rss_mb']:.0f} MB)",
            f"≤ {TARGET_RSS_MB:.0f} MB",
            grown["peak_rss_mb"] <= TARGET_RSS_MB,
        ),
        Figure(
            f"State store at {links:,} linked incidents: SQLite file size",
            f"{run['db_mb']:.0f} MB ({run['db_bytes_per_link']:,} bytes per linked incident)",
        ),
        Figure(
            f"State store at {links:,} linked incidents: first cycle incl. the sweep (1 read per link)",
            f"{grown['busy_seconds']:.0f} s",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="10,000 linked incidents")
    args = parser.parse_args()
    links = 10_000 if args.quick else args.links
    with tempfile.TemporaryDirectory(prefix="mim-bench-store-") as folder:
        run = measure(Path(folder), links)
    publish("store", figures(run), run)


if __name__ == "__main__":
    main()
