"""State-store growth: the daemon's memory and the database's size with 100,000 linked incidents.

1. **A real lifetime, five times.** Five incidents routed to ACME (with a customer comment) are
   mirrored by ``mim-connector sync --once``; then the service desk edits them, the ACME engineer
   comments and the service desk resolves them, and the connector syncs again. Every row the
   connector wrote for them (incident version, link, shadows, comment ledger, intents, audit,
   condition state) is the template of one linked incident's lifetime.
2. **Baseline.** One new incident routed to ACME is opened, then ``mim-connector run`` starts
   on that store (five links): how long from its start to the new incident's issue, then its
   RSS over 60 s.
3. **100,000 linked incidents.** The template rows are cloned (fresh sys_ids, numbers, keys and
   ids, each copy opened 50 minutes before the last, so 100,000 incidents span two years) into
   the same SQLite file until it holds 100,000 linked incidents; the file size is measured. Then
   the same as the baseline, in a new process on that file: the daemon no longer sweeps every
   link in its first cycle (the reconciler re-checks them at its pace instead), so the waiting
   incident must be mirrored as soon as with five links; and its RSS over the 60 s that follow,
   while the reconciler re-checks links (the clones' incidents do not exist in the simulator:
   each re-check is a ServiceNow read answered 404). Measured: time to the first mirror, RSS in
   that window and peak (``VmHWM``), the reconciler's re-checks per second in the window.

The daemon runs with 32 workers and 1,000 requests/s budgets here so that the reconciler works at
a high pace (``reconcile.share`` 10 % of 1,000 requests/s at 3 calls per check: about 33 re-checks
a second) while its memory is read; at the default 10 requests/s it re-checks 0.33 links a second.

Run: .venv/bin/python -m benchmarks.store_bench [--links N] [--quick]
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchWorld, Figure, Settings, issue_creates, publish, rss_mb, run_connector
from connector.sync.reconcile import CALLS_PER_CHECK

TARGET_RSS_MB = 150.0
TEMPLATE_INCIDENTS = 5
WINDOW_SECONDS = 60.0
"""How long the daemon runs, its RSS read, after the new incident was mirrored."""
RPS = 1000.0
SHARE = 0.1
"""``reconcile.share``'s default."""
FIRST_MIRROR_SLACK = 2.0
"""Seconds the first mirror may take longer with 100,000 links than with 5 (the SQL is not free)."""
TABLES = ("incidents", "links", "shadows", "comments", "intents", "audit", "condition_state")
SN_DATETIME = "%Y-%m-%d %H:%M:%S"
OPENED_EVERY = timedelta(minutes=50)
"""How much earlier each copy of the five template incidents was opened (one incident every 10 min)."""
ID_COLUMNS = {"links": "link_id", "comments": "comment_id", "intents": "intent_id", "audit": "audit_id"}
"""Integer keys given fresh values per clone; references to them (``link_id``, ``intent_id``) follow."""


def template(world: BenchWorld, root: Path) -> Path:
    """Five incidents through a whole lifetime, synced by ``mim-connector sync --once``; returns a copy of the store."""
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
    copy = root / "template.db"
    with sqlite3.connect(root / "state.db") as db, sqlite3.connect(copy) as out:
        db.backup(out)
    return copy


def _sync(world: BenchWorld, root: Path, name: str) -> None:
    result = run_connector(["sync", "--once", "-c", str(world.config)], root / f"{name}.log", timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"sync failed ({result.returncode}); see {result.log}")


def _keys(root: Path) -> dict[str, str]:
    with sqlite3.connect(root / "state.db") as db:
        return dict(db.execute("SELECT incident_sys_id, jira_key FROM links"))


def clone(database: Path, links: int, source: Path | None = None) -> None:
    """Copy the template's rows until the store holds ``links`` linked incidents (one transaction per batch).

    The template is what ``source`` holds (a copy of the store taken after :func:`template`),
    by default ``database`` itself.

    Each template row is parsed once (:func:`_shape`): a copy changes only the values that name
    the template's identifiers, by formatting the fresh ones in (a regular expression over every
    value of every copy made 100,000 links take minutes).
    """
    db = sqlite3.connect(database)
    try:
        with sqlite3.connect(source or database) as model:
            rows = {table: model.execute(f"SELECT * FROM {table}").fetchall() for table in TABLES}
            names = _identifiers(model)
        columns = {table: [c[1] for c in db.execute(f"PRAGMA table_info({table})")] for table in TABLES}
        # Fresh ids start past the store's own (it may hold more than the template by now).
        sizes = {
            table: max(
                db.execute(f"SELECT max({c}) FROM {table}").fetchone()[0] or 0,
                max((r[columns[table].index(c)] for r in rows[table]), default=0),
            )
            for table, c in ID_COLUMNS.items()
        }
        alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
        pattern = re.compile(f"(?<![0-9A-Za-z])(?:{alternatives})(?![0-9A-Za-z])")
        shapes = {
            table: [_shape(row, columns[table], pattern, sizes) for row in rows[table]] for table in TABLES
        }
        statements = {
            table: f"INSERT INTO {table} VALUES ({','.join('?' * len(columns[table]))})" for table in TABLES
        }
        present = db.execute("SELECT count(*) FROM links").fetchone()[0]
        copies = max(0, (links - present) // len(rows["links"]))
        for batch in _batches(copies, 200):
            fresh = {copy: {name: _fresh(kind, name, copy) for name, kind in names.items()} for copy in batch}
            with db:
                for table in TABLES:
                    db.executemany(
                        statements[table],
                        (_copy(shape, copy, fresh[copy]) for copy in batch for shape in shapes[table]),
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


Shape = tuple[tuple[Any, ...], list[tuple[int, str, Any]]]
"""A template row, parsed: its values, and the columns that change from copy to copy, each as
``(index, "id", (first, step))``, ``(index, "opened", opened_at)`` or ``(index, "text", template)``
(a ``%``-format of the fresh identifiers by template identifier)."""


def _shape(
    row: tuple[Any, ...], columns: list[str], pattern: re.Pattern[str], sizes: dict[str, int]
) -> Shape:
    """How the values of a template row change from copy to copy."""
    varying: list[tuple[int, str, Any]] = []
    for index, (column, value) in enumerate(zip(columns, row, strict=True)):
        owner = next((t for t, c in ID_COLUMNS.items() if c == column), None)
        if owner is not None and isinstance(value, int):
            varying.append((index, "id", (value, sizes[owner])))
        elif column == "opened_at" and isinstance(value, str):
            varying.append((index, "opened", value))
        elif isinstance(value, str) and pattern.search(value):
            text = pattern.sub(lambda match: f"%({match.group(0)})s", value.replace("%", "%%"))
            varying.append((index, "text", text))
    return row, varying


def _copy(shape: Shape, copy: int, fresh: dict[str, str]) -> list[Any]:
    """The row ``shape`` for copy number ``copy``, whose identifiers are ``fresh``."""
    row, varying = shape
    values = list(row)
    for index, kind, value in varying:
        if kind == "text":
            values[index] = value % fresh
        elif kind == "id":
            values[index] = value[0] + copy * value[1]
        else:
            values[index] = _earlier(value, copy)
    return values


def _earlier(opened_at: str, copy: int) -> str:
    """Each copy opened OPENED_EVERY earlier: 100,000 incidents over about two years, as in real life."""
    moment = datetime.strptime(opened_at, SN_DATETIME).replace(tzinfo=UTC) - copy * OPENED_EVERY
    return moment.strftime(SN_DATETIME)


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


def run_daemon(world: BenchWorld, root: Path, name: str) -> dict[str, Any]:
    """``mim-connector run`` with one new ACME incident waiting: how soon it is mirrored, then RSS for WINDOW_SECONDS.

    The incident is opened before the daemon starts; ``first_mirror_seconds`` runs from the
    process's start to the simulator's answer to the create of its issue. Once mirrored, the
    daemon runs WINDOW_SECONDS more, its RSS read every half second; the reconciler's re-checks
    in that window are its reads of the clones' incidents (answered 404: only it reads them).
    """
    summary = f"Store bench probe {name}"
    fields = {**_PROBE, "assignment_group": world.lookup("sys_user_group", "name=ACME Hosting L2")}
    world.create_incident(world.session(), {**fields, "short_description": summary})
    marks = world.marks()
    samples: list[float] = []
    mirrored: list[tuple[float, tuple[int, int]]] = []

    def watch(pid: int) -> None:
        samples.append(rss_mb(pid))
        if not mirrored and _created(world, marks, summary) is not None:
            mirrored.append((time.monotonic(), world.marks()))

    def stop() -> bool:
        return bool(mirrored) and time.monotonic() - mirrored[0][0] >= WINDOW_SECONDS

    result = run_connector(
        ["run", "-c", str(world.config)], root / f"{name}.log", timeout=1800, stop_when=stop, on_poll=watch
    )
    if not mirrored:
        raise RuntimeError(f"the new incident was not mirrored; see {result.log}")
    created = _created(world, marks, summary)
    assert created is not None
    window = [s for s in samples[-int(WINDOW_SECONDS * 2) :] if s == s]
    servicenow, _jira = world.journals(mirrored[0][1])
    rechecks = sum(1 for e in servicenow if e.ours and e.status == 404 and e.path.count("/incident/") == 1)
    return {
        "first_mirror_seconds": round((created - result.started).total_seconds(), 1),
        "peak_rss_mb": round(result.max_rss_mb, 1),
        "window_rss_mb": round(max(window), 1) if window else float("nan"),
        "window_seconds": WINDOW_SECONDS,
        "reconciler_rechecks": rechecks,
        "cpu_seconds": round(result.cpu_seconds, 1),
    }


_PROBE = {"description": "Store bench", "impact": "2", "urgency": "2"}


def _created(world: BenchWorld, marks: tuple[int, int], summary: str) -> datetime | None:
    """When the issue of the incident named ``summary`` was created (``None``: not yet)."""
    _servicenow, jira = world.journals((marks[0], marks[1]))
    return next(
        (
            e.time
            for e in issue_creates(jira)
            if e.status == 201 and summary in str((e.body or {}).get("fields", {}).get("summary", ""))
        ),
        None,
    )


def measure(root: Path, links: int) -> dict[str, Any]:
    """Template, baseline, clone, the daemon at ``links``; returns the figures."""
    settings = Settings(
        polling={
            "servicenow_interval": "2s",
            "supplier_interval": "2s",
            "workers": 32,
            "initial_lookback": "1d",
        },
        servicenow_rps=RPS,
        jira_rps=RPS,
        burst=100,
    )
    world = BenchWorld.create(root, settings)
    try:
        template(world, root)
        database = root / "state.db"
        baseline = run_daemon(world, root, "baseline")
        started = time.monotonic()
        clone(database, links)
        cloning = time.monotonic() - started
        with sqlite3.connect(database) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            counts = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        size = sum(p.stat().st_size for p in root.glob("state.db*"))
        grown = run_daemon(world, root, "grown")
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
    rate = grown["reconciler_rechecks"] / grown["window_seconds"]
    return [
        Figure(
            f"State store at {links:,} linked incidents: daemon RSS while the reconciler re-checks",
            f"{grown['window_rss_mb']:.0f} MB (5 links: {base['window_rss_mb']:.0f} MB)",
            f"≤ {TARGET_RSS_MB:.0f} MB",
            grown["window_rss_mb"] <= TARGET_RSS_MB,
        ),
        Figure(
            f"State store at {links:,} linked incidents: daemon peak RSS",
            f"{grown['peak_rss_mb']:.0f} MB (5 links: {base['peak_rss_mb']:.0f} MB)",
            f"≤ {TARGET_RSS_MB:.0f} MB",
            grown["peak_rss_mb"] <= TARGET_RSS_MB,
        ),
        Figure(
            f"State store at {links:,} linked incidents: SQLite file size",
            f"{run['db_mb']:.0f} MB ({run['db_bytes_per_link']:,} bytes per linked incident)",
        ),
        Figure(
            f"State store at {links:,} linked incidents: daemon start → a waiting new incident's issue (5 links)",
            f"{grown['first_mirror_seconds']:.1f} s ({base['first_mirror_seconds']:.1f} s)",
            f"≤ 5 links' + {FIRST_MIRROR_SLACK:.0f} s (no sweep first)",
            grown["first_mirror_seconds"] <= base["first_mirror_seconds"] + FIRST_MIRROR_SLACK,
        ),
        Figure(
            f"State store at {links:,} linked incidents: reconciler's re-checks meanwhile",
            f"{rate:.1f}/s ({rate * CALLS_PER_CHECK / RPS:.1%} of {RPS:,.0f} req/s at {CALLS_PER_CHECK} calls each)",
            f"≤ {SHARE:.0%}",
            rate * CALLS_PER_CHECK / RPS <= SHARE + 0.005,
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
