"""Two instances vs one on PostgreSQL: backfill throughput with 200 ms of latency, and failover.

A throwaway PostgreSQL server (:func:`tests.postgres.running_server`) holds every run's store, a
database of its own per run. Each run gets a fresh world: N incidents (500 by default) that every
supplier's routing takes, as in the backfill benchmark (a backlog of 3N issues), 200 ms injected
on every request to either simulator, then ``mim-connector run`` daemons in their own processes
on that store, each with ``polling.workers`` 8, polls every 2 s, pages of 1,000, a day's
look-back, and budgets of 100 requests/s (burst 100) per system. The instances share one budget
(each takes ``1/N`` of it), so the budget is set where two instances stay well below their
share: 16 workers waiting 200 ms per request send at most 80 requests/s over four systems.

* **one**: one instance. **two**: two instances started together. Each runs until every
  (incident, site) pair has its issue (read from the Jira journal). Throughput = N / (first
  request of the connector → answer to the last issue create), both from the journals; the
  ratio two / one is the figure (target ≥ 1.8). ``--repeat K`` makes K pairs, one and two
  alternately (a shared machine's load drifts; the median ratio is reported, and each).
* **failover**: two instances again; once 30 % of the backlog exists, the instance that holds
  the ServiceNow poller role (read from the store's ``leases`` table) is SIGKILLed. Measured from
  the kill: the first write the connector started (a request the simulator began serving after
  the kill can only be the survivor's: the killed process is gone), each role the victim held
  held by the survivor (``leases``, sampled every 50 ms), the victim's claims on incidents gone
  (``claims``: taken by the survivor), and the survivor's first ServiceNow poll. The run then
  finishes the backlog alone.
* **one-double** (on demand, ``--runs``): one instance with twice the workers, to tell what a
  second instance costs from what the machine allows.

After every run: issues created per (incident, site) counted from the Jira journal's successful
creates, every pair exactly once (0 duplicates, 0 missing). Also reported: each instance's CPU
seconds, the incidents each instance claimed (the ``claims`` table, sampled every 0.5 s), and the
load average (the machine may be shared). ``--profile`` records each instance with py-spy.

Leases: the connector's defaults (ttl 15 s, renewed every 5 s) unless ``--lease-ttl`` says
otherwise (renewal a third of it). A killed holder on the same host is seen at the survivor's next
renewal tick; one on a lost host only when its lease expires.

Run: .venv/bin/python -m benchmarks.instances_bench [--incidents N] [--quick] [--repeat K]
     [--runs one,two,failover,one-double] [--keep DIR [--profile]]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import SQLAlchemyError

from benchmarks.harness import (
    SITES,
    BenchWorld,
    Entry,
    Figure,
    ProcessResult,
    Settings,
    call_kind,
    issue_creates,
    publish,
    run_connector,
    site_of,
)
from connector.store.leases import SERVICENOW_ROLE
from connector.store.tables import claims, instances, leases
from tests.postgres import running_server

LATENCY_MS = 200
WORKERS = 8
RPS = 100.0
BURST = 100
TARGET_RATIO = 1.8
KILL_AT = 0.3
"""Share of the backlog's issues created when the ServiceNow role holder is killed (run 3)."""
WATCH_EVERY = 0.05
"""Seconds between reads of the store while the survivor takes over."""
SETTLE_SECONDS = 5.0
"""Quiet time after the last issue before the daemons stop: a late duplicate would show in it."""
RUN_TIMEOUT = 1800.0
NUMBER = re.compile(r"INC\d+")
_databases = itertools.count(1)


class Backlog:
    """The journals read incrementally: the connector's requests, and its issue creates per pair."""

    def __init__(self, world: BenchWorld, numbers: Sequence[str]) -> None:
        self.world = world
        self.marks = world.marks()
        self.expected = {(site, number) for site in SITES for number in numbers}
        self.creates: Counter[tuple[str, str]] = Counter()
        self.ours: list[Entry] = []
        self.last_create: datetime | None = None
        self.unmatched = 0
        """Successful creates whose body names no incident number (would hide a duplicate)."""

    def refresh(self) -> None:
        """Read what the simulators served since the last refresh."""
        marks = self.world.marks()
        servicenow, jira = self.world.journals(self.marks)
        servicenow = [e for e in servicenow if e.seq <= marks[0]]
        jira = [e for e in jira if e.seq <= marks[1]]
        self.marks = marks
        self.ours += [e for e in [*servicenow, *jira] if e.ours]
        for create in issue_creates(jira):
            if create.status != 201:
                continue
            found = NUMBER.search(json.dumps(create.body))
            if found is None:
                self.unmatched += 1
                continue
            self.creates[site_of(create), found.group(0)] += 1
            self.last_create = max(self.last_create or create.time, create.time)

    @property
    def created(self) -> int:
        """Pairs that have their issue."""
        return sum(1 for key in self.expected if self.creates[key])

    def complete(self) -> bool:
        return self.created == len(self.expected)

    def first_request(self) -> datetime:
        return min(e.started for e in self.ours)


class Daemon:
    """``mim-connector run`` in its own process, driven from a thread of this one (:func:`run_connector`)."""

    def __init__(self, config: Path, log: Path, stop: threading.Event) -> None:
        self.pid: int | None = None
        self.result: ProcessResult | None = None
        self.log = log
        self._thread = threading.Thread(target=self._run, args=(config, stop), daemon=True)

    def _run(self, config: Path, stop: threading.Event) -> None:
        def on_poll(pid: int) -> None:
            self.pid = pid

        self.result = run_connector(
            ["run", "-c", str(config)], self.log, timeout=RUN_TIMEOUT, stop_when=stop.is_set, on_poll=on_poll
        )

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


def _spy(daemon: Daemon, root: Path) -> subprocess.Popen[bytes]:
    """py-spy recording ``daemon``'s threads until it exits, into ``root`` (where its time goes)."""
    while daemon.pid is None:
        time.sleep(0.05)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = root / f"{daemon.log.stem}.pyspy.txt"
    command = [spy, "record", "--pid", str(daemon.pid), "--format", "raw", "-r", "20", "-o", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- the store --------------------------------------------------------------------------------------


@contextmanager
def database(server: str) -> Iterator[str]:
    """A fresh database on ``server``; yields its URL and drops it afterwards."""
    name = f"instances_bench_{next(_databases)}_{os.getpid()}"
    admin = create_engine(
        server.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def role_holders(db: Engine) -> dict[str, int]:
    """Each live role lease and the pid holding it (the database's clock decides what is live)."""
    try:
        with db.connect() as conn:
            now = conn.execute(select(text("now()"))).scalar_one()
            rows = conn.execute(select(leases.c.name, leases.c.pid, leases.c.expires_at)).all()
    except SQLAlchemyError:  # no schema yet: no daemon has opened the store
        return {}
    return {row.name: row.pid for row in rows if row.name.startswith("role:") and row.expires_at > now}


def claims_by_pid(db: Engine) -> list[tuple[int, str]]:
    """(pid of the instance, incident) of every claim held now."""
    joined = claims.join(instances, claims.c.instance_id == instances.c.instance_id)
    try:
        with db.connect() as conn:
            rows = conn.execute(select(instances.c.pid, claims.c.incident_sys_id).select_from(joined)).all()
    except SQLAlchemyError:  # no schema yet
        return []
    return [(int(row.pid), str(row.incident_sys_id)) for row in rows]


def claims_of(db: Engine, pid: int) -> int:
    """Incidents claimed by the instance(s) running as ``pid``."""
    with db.connect() as conn:
        ids = list(conn.execute(select(instances.c.instance_id).where(instances.c.pid == pid)).scalars())
        if not ids:
            return 0
        return len(conn.execute(select(claims.c.incident_sys_id).where(claims.c.instance_id.in_(ids))).all())


def postmaster_pid(server: str) -> int:
    """The PostgreSQL server's main process (its CPU time counts its ended backends')."""
    admin = create_engine(server.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with admin.connect() as conn:
            data = conn.execute(text("SHOW data_directory")).scalar_one()
    finally:
        admin.dispose()
    return int((Path(data) / "postmaster.pid").read_text().split()[0])


@dataclass(frozen=True)
class Usage:
    """CPU seconds used so far by this process (the sandbox) and the PostgreSQL server, and the machine's."""

    sandbox: float
    postgres: float
    machine_busy: float
    machine_total: float
    load: tuple[float, float, float]

    @classmethod
    def now(cls, postmaster: int) -> Usage:
        ticks = os.sysconf("SC_CLK_TCK")
        stat = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime: the postmaster's own and that of its ended backends.
        postgres = sum(int(v) for v in stat[11:15]) / ticks
        mine = os.times()
        cpu = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = cpu[3] + cpu[4]
        return cls(
            mine.user + mine.system, postgres, (sum(cpu) - idle) / ticks, sum(cpu) / ticks, os.getloadavg()
        )

    def since(self, before: Usage) -> dict[str, Any]:
        """CPU seconds of the sandbox and PostgreSQL since ``before``, the machine's idle share, the load."""
        total = self.machine_total - before.machine_total
        return {
            "sandbox_cpu_seconds": round(self.sandbox - before.sandbox, 1),
            "postgres_cpu_seconds": round(self.postgres - before.postgres, 1),
            "machine_idle_share": round(1 - (self.machine_busy - before.machine_busy) / total, 3)
            if total
            else None,
            "load_average_at_start": [round(x, 1) for x in before.load],
            "load_average_at_end": [round(x, 1) for x in self.load],
        }


# --- one run ----------------------------------------------------------------------------------------


def settings(store_url: str, workers: int, lease_ttl: float | None) -> Settings:
    store: dict[str, Any] = {"url": store_url}
    if lease_ttl is not None:
        store["lease"] = {"ttl": f"{lease_ttl:g}s", "renew_every": f"{lease_ttl / 3:g}s"}
    return Settings(
        polling={
            "workers": workers,
            "initial_lookback": "1d",
            "page_size": 1000,
            "servicenow_interval": "2s",
            "supplier_interval": "2s",
        },
        servicenow_rps=RPS,
        jira_rps=RPS,
        burst=BURST,
        store=store,
    )


def backfill(
    server: str,
    postmaster: int,
    root: Path,
    *,
    instances_: int,
    incidents: int,
    workers: int,
    lease_ttl: float | None,
    kill: bool = False,
    profile: bool = False,
) -> dict[str, Any]:
    """One backfill by ``instances_`` daemons on a fresh store and world; with ``kill``, a failover in it."""
    with database(server) as store_url:
        db = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
        world = BenchWorld.create(root, settings(store_url, workers, lease_ttl))
        try:
            numbers = world.create_incidents(incidents, world.three_supplier_fields())
            world.inject_latency(LATENCY_MS)
            backlog = Backlog(world, numbers)
            stop = threading.Event()
            daemons = [Daemon(world.config, root / f"instance-{n + 1}.log", stop) for n in range(instances_)]
            before = Usage.now(postmaster)
            for daemon in daemons:
                daemon.start()
            spies = [_spy(daemon, root) for daemon in daemons] if profile else []
            failover: dict[str, Any] | None = None
            began = time.monotonic()
            claimed: dict[int, set[str]] = {}
            while not backlog.complete() and time.monotonic() - began < RUN_TIMEOUT:
                time.sleep(0.5)
                backlog.refresh()
                for pid, incident in claims_by_pid(db):
                    claimed.setdefault(pid, set()).add(incident)
                if not any(d.running for d in daemons):
                    break
                if kill and failover is None and backlog.created >= KILL_AT * len(backlog.expected):
                    failover = fail_over(db, daemons, backlog)
            usage = Usage.now(postmaster).since(before)
            time.sleep(SETTLE_SECONDS)
            stop.set()
            for daemon in daemons:
                daemon.join()
            for spy in spies:
                spy.wait(timeout=60)
            backlog.refresh()
            return summary(backlog, daemons, claimed, incidents, workers, failover, usage)
        finally:
            world.close()
            db.dispose()


def fail_over(db: Engine, daemons: list[Daemon], backlog: Backlog) -> dict[str, Any] | None:
    """SIGKILL the ServiceNow role holder; watch the survivor take its roles and claims.

    Returns ``None`` (nothing done) while no instance holds the role.
    """
    holders = role_holders(db)
    victim = next((d for d in daemons if d.pid == holders.get(SERVICENOW_ROLE)), None)
    if victim is None:
        return None
    survivor = next(d for d in daemons if d is not victim)
    assert victim.pid is not None and survivor.pid is not None
    victim_roles = sorted(role for role, pid in holders.items() if pid == victim.pid)
    victim_claims = claims_of(db, victim.pid)
    created_at_kill = backlog.created
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = datetime.now(UTC)
    began = time.monotonic()
    taken: dict[str, float] = {}
    claims_released: float | None = None
    while time.monotonic() - began < 120 and (len(taken) < len(victim_roles) or claims_released is None):
        elapsed = (datetime.now(UTC) - killed_at).total_seconds()
        for role, pid in role_holders(db).items():
            if role in victim_roles and pid == survivor.pid:
                taken.setdefault(role, round(elapsed, 3))
        if claims_released is None and claims_of(db, victim.pid) == 0:
            claims_released = round(elapsed, 3)
        time.sleep(WATCH_EVERY)
    return {
        "killed_at": killed_at,
        "victim_pid": victim.pid,
        "survivor_pid": survivor.pid,
        "victim_roles": victim_roles,
        "victim_claims_at_kill": victim_claims,
        "issues_at_kill": created_at_kill,
        "roles_taken_seconds": taken,
        "claims_released_seconds": claims_released,
    }


def after_kill(backlog: Backlog, killed_at: datetime) -> dict[str, float | None]:
    """Seconds from the kill to the survivor's first write and first ServiceNow poll (requests started after it)."""
    later = sorted((e for e in backlog.ours if e.started > killed_at), key=lambda e: e.started)
    write = next((e for e in later if e.write), None)
    poll = next((e for e in later if e.method == "GET" and e.path.endswith("/api/now/table/incident")), None)
    return {
        "first_write_seconds": round((write.started - killed_at).total_seconds(), 3) if write else None,
        "first_servicenow_poll_seconds": round((poll.started - killed_at).total_seconds(), 3)
        if poll
        else None,
    }


def summary(
    backlog: Backlog,
    daemons: list[Daemon],
    claimed: dict[int, set[str]],
    incidents: int,
    workers: int,
    failover: dict[str, Any] | None,
    usage: dict[str, Any],
) -> dict[str, Any]:
    complete = backlog.complete()
    last = backlog.last_create
    seconds = (last - backlog.first_request()).total_seconds() if last and backlog.ours else 0.0
    results = [d.result for d in daemons]
    run: dict[str, Any] = {
        "instances": len(daemons),
        "incidents": incidents,
        "workers_per_instance": workers,
        "complete": complete,
        "issues_created": sum(backlog.creates.values()),
        "pairs_created": backlog.created,
        "duplicate_issues": sum(n - 1 for n in backlog.creates.values() if n > 1),
        "missing_issues": len(backlog.expected) - backlog.created,
        "creates_without_number": backlog.unmatched,
        "seconds": round(seconds, 2),
        "incidents_per_second": round(incidents / seconds, 3) if complete and seconds else 0.0,
        "connector_calls": len(backlog.ours),
        "failed_calls": sum(1 for e in backlog.ours if e.status >= 400 or e.status == 0),
        "calls_per_incident_by_kind": {
            kind: round(count / incidents, 2)
            for kind, count in Counter(map(call_kind, backlog.ours)).most_common()
        },
        "cpu_seconds_per_instance": [round(r.cpu_seconds, 1) if r else None for r in results],
        "peak_rss_mb_per_instance": [round(r.max_rss_mb, 1) if r else None for r in results],
        "exit_codes": [r.returncode if r else None for r in results],
        "incidents_claimed_per_instance": [len(claimed.get(d.pid or 0, ())) for d in daemons],
        **usage,
    }
    if failover is not None:
        failover.update(after_kill(backlog, failover["killed_at"]))
        failover["killed_at"] = failover["killed_at"].isoformat(timespec="milliseconds")
        run["failover"] = failover
    return run


# --- the report -------------------------------------------------------------------------------------


def figures(runs: dict[str, dict[str, Any]]) -> list[Figure]:
    """Throughput and CPU of each run, the ratio two / one of each pair, duplicates, failover times."""
    first = next(iter(runs.values()))
    n = first["incidents"]
    label = f"{n:,} incidents x 3 on PostgreSQL, {LATENCY_MS} ms latency"
    rows = []
    for name, run in runs.items():
        if run["kind"] == "failover":
            continue
        count, workers = run["instances"], run["workers_per_instance"]
        what = f"{count} instance{'s' * (count > 1)} x {workers} workers"
        cpu = sum(c or 0.0 for c in run["cpu_seconds_per_instance"])
        idle = run.get("machine_idle_share")
        rows.append(
            Figure(
                f"Backfill {label}, {what} ({name}): incidents/s; CPU ms per incident, connector / sandbox / "
                "PostgreSQL; machine idle",
                f"{run['incidents_per_second']:.2f}/s ({run['seconds']:.0f} s); {1000 * cpu / n:.0f} / "
                f"{1000 * run.get('sandbox_cpu_seconds', 0.0) / n:.0f} / "
                f"{1000 * run.get('postgres_cpu_seconds', 0.0) / n:.0f}; "
                + ("?" if idle is None else f"{100 * idle:.0f} %"),
            )
        )
    ratios = pair_ratios(runs)
    middle = statistics.median(ratios)
    shown = (
        f"{middle:.2f}x"
        if len(ratios) == 1
        else f"median {middle:.2f}x ({', '.join(f'{r:.2f}' for r in ratios)})"
    )
    rows.append(
        Figure(
            f"Backfill {label}: throughput two instances / one, {first['workers_per_instance']} workers each",
            shown,
            f"≥ {TARGET_RATIO}x",
            middle >= TARGET_RATIO,
        )
    )
    duplicates = sum(r["duplicate_issues"] for r in runs.values())
    missing = sum(r["missing_issues"] for r in runs.values())
    rows.append(
        Figure(
            f"Backfill {label}: duplicate / missing issues over {len(runs)} runs",
            f"{duplicates} / {missing}",
            "0 / 0",
            duplicates == 0 and missing == 0 and all(r["creates_without_number"] == 0 for r in runs.values()),
        )
    )
    failover = runs.get("failover")
    if failover and "failover" in failover:
        rows += failover_figures(failover)
    return rows


def pair_ratios(runs: dict[str, dict[str, Any]]) -> list[float]:
    """Throughput of two instances / one, for each pair of runs made back to back."""
    ratios = []
    for run in runs.values():
        if run["kind"] == "two":
            one = runs[f"one{run['pair_suffix']}"]["incidents_per_second"]
            ratios.append(run["incidents_per_second"] / one if one else 0.0)
    return ratios


def failover_figures(run: dict[str, Any]) -> list[Figure]:
    """Kill → first write, roles and claims taken over, first poll."""
    f = run["failover"]
    taken = f["roles_taken_seconds"]
    servicenow = taken.get(SERVICENOW_ROLE)
    every = max(taken.values()) if len(taken) == len(f["victim_roles"]) else None
    ttl = run["lease_ttl_seconds"]
    return [
        Figure(
            "Failover, SIGKILL of the ServiceNow role holder mid-backfill: kill → first write by the survivor",
            _seconds(f["first_write_seconds"]),
        ),
        Figure(
            f"Failover: kill → survivor holds the ServiceNow role / all {len(f['victim_roles'])} of the victim's roles",
            f"{_seconds(servicenow)} / {_seconds(every)}",
            f"≤ lease ttl ({ttl:g} s)",
            every is not None and every <= ttl,
        ),
        Figure(
            "Failover: kill → the victim's claims released / survivor's first ServiceNow poll",
            f"{_seconds(f['claims_released_seconds'])} / {_seconds(f['first_servicenow_poll_seconds'])}",
        ),
    ]


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


RUNS = {"one": (1, 1, False), "two": (2, 1, False), "failover": (2, 1, True), "one-double": (1, 2, False)}
"""Run name -> (instances, workers multiplier, kill the ServiceNow role holder)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=500, help="backlog incidents (default 500)")
    parser.add_argument("--workers", type=int, default=WORKERS, help="polling.workers of each instance")
    parser.add_argument(
        "--lease-ttl", type=float, help="store.lease.ttl in seconds (default: the connector's)"
    )
    parser.add_argument("--quick", action="store_true", help="150 incidents")
    parser.add_argument(
        "--runs",
        default="one,two,failover",
        help=f"comma-separated, of: {', '.join(RUNS)} (one-double: one instance with twice the workers)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs one and two this many times, alternately (default 1)"
    )
    parser.add_argument("--keep", type=Path, help="keep each run's folder (logs, config) under this one")
    parser.add_argument(
        "--profile", action="store_true", help="record each instance with py-spy (needs --keep and py-spy)"
    )
    args = parser.parse_args()
    kinds = args.runs.split(",")
    if any(kind not in RUNS for kind in kinds) or not {"one", "two"} <= set(kinds):
        parser.error(f"--runs: one and two, and any of {', '.join(RUNS)}")
    incidents = 150 if args.quick else args.incidents
    ttl = args.lease_ttl if args.lease_ttl is not None else 15.0
    plan = [
        (kind, f"-{n + 1}" if n else "")
        for n in range(args.repeat)
        for kind in kinds
        if kind != "failover" or n == 0
    ]
    runs: dict[str, dict[str, Any]] = {}
    with running_server() as server:
        postmaster = postmaster_pid(server)
        for kind, suffix in plan:
            count, multiplier, kill = RUNS[kind]
            name = f"{kind}{suffix}"
            with _folder(args.keep, name) as folder:
                print(f"run {name}: {count} instance(s), {incidents} incidents", flush=True)
                run = backfill(
                    server,
                    postmaster,
                    folder,
                    instances_=count,
                    incidents=incidents,
                    workers=args.workers * multiplier,
                    lease_ttl=args.lease_ttl,
                    kill=kill,
                    profile=args.profile and args.keep is not None,
                )
                runs[name] = {"kind": kind, "pair_suffix": suffix, "lease_ttl_seconds": ttl, **run}
                print(json.dumps(runs[name], default=str), flush=True)
    publish(
        "instances",
        figures(runs),
        {
            "latency_ms": LATENCY_MS,
            "budgets_rps": RPS,
            "burst": BURST,
            "kill_at_share_of_backlog": KILL_AT,
            "runs": runs,
        },
    )


@contextmanager
def _folder(keep: Path | None, name: str) -> Iterator[Path]:
    if keep is not None:
        folder = keep / name
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix=f"mim-bench-instances-{name}-") as folder_:
        yield Path(folder_)


if __name__ == "__main__":
    main()
