"""The world the connector benchmarks run in, and how they report.

:class:`BenchWorld` serves the sandbox that ``config/demo.yaml`` and ``mappings/`` describe (the
ServiceNow simulator and one Jira server hosting the acme, globex and initech sites) in this
process, and writes a ``connector.yaml`` pointing at it: the shipped suppliers and mappings, no
embedded sandbox, no metrics port, a SQLite store in the world's folder, and the polling, budget
and worker settings a benchmark asks for. The connector itself runs in its own process
(:func:`run_connector`), so its peak RSS is its own and it does not share a GIL with the sandbox.
Calls are counted from the sandbox's request journals, never from the connector.

:func:`publish` writes ``benchmarks/results/<name>.json`` and prints the markdown table
``figure | measured | target | met?``.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml

from connector.config import load_config
from connector.sandbox.fromconfig import plan_from_config
from connector.sandbox.runner import Sandbox

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SITES = ("acme", "globex", "initech")
INTEGRATION_USERS = frozenset({"svc.mim-connector", "mim-connector"})
"""Who the connector is in the journals: its ServiceNow user and its Jira users (every site)."""
JOURNAL_PAGE = 10_000


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Settings:
    """What the benchmark's connector.yaml says beyond the demo's suppliers and mappings."""

    polling: Mapping[str, Any] = field(default_factory=dict)
    """Merged into ``polling:`` (durations as strings, e.g. ``{"servicenow_interval": "2s"}``)."""
    servicenow_rps: float = 10.0
    jira_rps: float = 10.0
    burst: int = 20
    log_level: str = "INFO"
    store: Mapping[str, Any] | None = None
    """The ``store:`` section (e.g. a PostgreSQL URL and leases); default: a SQLite file in the world's folder."""
    push: bool = False
    """Receive push (docs/push.md): the simulators post every change to the daemon (see
    :meth:`BenchWorld.create`)."""


PUSH_SECRET_VAR, PUSH_SECRET = "MIM_BENCH_PUSH_SECRET", "benchmark push secret"


@dataclass
class BenchWorld:
    """A sandbox in this process and a connector.yaml that points at it."""

    root: Path
    config: Path
    sandbox: Sandbox
    environ: dict[str, str]
    _references: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, settings: Settings = Settings()) -> BenchWorld:
        """Write the config under ``root``, start its sandbox and export the credentials it generated."""
        root.mkdir(parents=True, exist_ok=True)
        config = root / "connector.yaml"
        config.write_text(yaml.safe_dump(_config(root, settings), sort_keys=False))
        plan = plan_from_config(load_config(config))
        sandbox = Sandbox(plan.spec).start()
        environ = dict(plan.provided)
        if settings.push:
            environ |= {PUSH_SECRET_VAR: PUSH_SECRET}
        os.environ.update(environ)
        world = cls(root, config, sandbox, environ)
        for site in SITES:
            # Jira Cloud's burst limit (100 requests/s per endpoint) is a sandbox fidelity feature;
            # lifted so that the connector's own budgets decide the pace (docs/benchmarks.md says which).
            world.sandbox.jira_control.post(f"sites/{site}/settings", {"burst_per_second": 1_000_000})
        if settings.push:
            world._register_push(load_config(config).connector.push.port)
        return world

    def _register_push(self, port: int) -> None:
        """An admin webhook on every site and the ServiceNow update set, posting to the daemon's receiver."""
        receiver = f"http://127.0.0.1:{port}/push"
        for site in SITES:
            hook = {
                "name": "mim-connector",
                "url": f"{receiver}/jira/{site}",
                "events": ["jira:issue_created", "jira:issue_updated", "comment_created", "comment_updated"],
                "secret": PUSH_SECRET,
            }
            url = f"{self.sandbox.site_url(site)}/rest/webhooks/1.0/webhook"
            self.agent_session(site).post(url, json=hook, timeout=10).raise_for_status()
        self.sandbox.servicenow_control.set_push(
            url=f"{receiver}/servicenow", secret=PUSH_SECRET, enabled=True
        )

    def close(self) -> None:
        """Stop the sandbox and forget the exported credentials."""
        self.sandbox.stop()
        for name in self.environ:
            os.environ.pop(name, None)

    # --- the service desk ------------------------------------------------------------------------

    def session(self) -> requests.Session:
        """A keep-alive session as the ServiceNow admin (the service desk, not the connector)."""
        return self.sandbox.admin_session()

    def table(self, table: str, sys_id: str = "") -> str:
        """Table API URL of ``table`` (or of one record)."""
        return self.sandbox.table_url(table, sys_id)

    def lookup(self, table: str, query: str) -> str:
        """The sys_id of the first ``table`` record matching ``query`` (cached)."""
        key = f"{table}?{query}"
        if key not in self._references:
            params = {"sysparm_query": query, "sysparm_fields": "sys_id", "sysparm_limit": "1"}
            rows = self.session().get(self.table(table), params=params, timeout=10).json()["result"]
            if not rows:
                raise LookupError(f"no {table} matches {query}")
            self._references[key] = str(rows[0]["sys_id"])
        return self._references[key]

    def three_supplier_fields(self) -> dict[str, str]:
        """An accepted major incident that every supplier's routing takes (ACME, Globex, Initech)."""
        return {
            "short_description": "Checkout fails for all customers",
            "description": "Payment page times out",
            "impact": "1",
            "urgency": "1",
            "assignment_group": self.lookup("sys_user_group", "name=ACME Hosting L2"),
            "business_service": self.lookup("cmdb_ci_service", "name=Payments"),
            "cmdb_ci": self.lookup("cmdb_ci", "name=wan-link-fra"),
            "major_incident_state": "accepted",
        }

    def create_incident(self, session: requests.Session, fields: Mapping[str, str]) -> dict[str, str]:
        """POST one incident as the service desk; returns the record."""
        response = session.post(
            self.table("incident"),
            json=dict(fields),
            params={"sysparm_exclude_reference_link": "true"},
            timeout=30,
        )
        response.raise_for_status()
        return dict(response.json()["result"])

    def create_incidents(self, count: int, fields: Mapping[str, str], threads: int = 4) -> list[str]:
        """Create ``count`` incidents with ``fields`` from ``threads`` clients; returns their numbers."""
        numbers: list[str] = []
        lock = threading.Lock()

        def work(share: int) -> None:
            session = self.session()
            for index in range(share):
                record = self.create_incident(session, {**fields, "short_description": f"Backfill {index}"})
                with lock:
                    numbers.append(record["number"])

        shares = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
        workers = [threading.Thread(target=work, args=(share,)) for share in shares]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if len(numbers) != count:
            raise RuntimeError(f"created {len(numbers)} of {count} incidents")
        return numbers

    # --- a supplier engineer --------------------------------------------------------------------------

    def agent_session(self, site: str) -> requests.Session:
        """A keep-alive session as the site's engineer (the sandbox user Jane Doe), not the connector."""
        info = self.sandbox.describe()["jira"]["sites"][site]
        jane = next(u for u in info["users"] if u["username"] == "jdoe")
        session = requests.Session()
        if info["deployment"] == "cloud":
            session.auth = (jane["email"], jane["api_token"])
        else:
            session.headers["Authorization"] = f"Bearer {jane['pat']}"
        session.headers["Accept"] = "application/json"
        return session

    def agent_comment(self, site: str, jira_key: str, body: str) -> None:
        """The supplier engineer comments on an issue (``POST issue/{key}/comment``)."""
        url = f"{self.sandbox.site_url(site)}/rest/api/2/issue/{jira_key}/comment"
        self.agent_session(site).post(url, json={"body": body}, timeout=10).raise_for_status()

    # --- the sandbox ---------------------------------------------------------------------------------

    def inject_latency(self, delay_ms: int) -> None:
        """Every request to either simulator waits ``delay_ms`` before it is served."""
        if delay_ms:
            rule = {"action": "pass", "delay_ms": delay_ms, "path": ".*"}
            self.sandbox.servicenow_control.add_fault(**rule)
            self.sandbox.jira_control.add_fault(**rule)

    def marks(self) -> tuple[int, int]:
        """The newest journal sequence numbers (ServiceNow, Jira): cursors for :meth:`journals`."""
        return self.sandbox.servicenow_control.last_seq(), self.sandbox.jira_control.last_seq()

    def journals(self, marks: tuple[int, int] = (0, 0)) -> tuple[list[Entry], list[Entry]]:
        """Every request each simulator served after ``marks`` (ServiceNow, Jira), oldest first."""
        return (
            _read_journal(self.sandbox.servicenow_control.requests, marks[0]),
            _read_journal(self.sandbox.jira_control.requests, marks[1]),
        )


@dataclass(frozen=True)
class Entry:
    """One journal line: when the simulator answered, what, to whom, and how."""

    seq: int
    time: datetime
    method: str
    path: str
    query: str
    status: int
    user: str | None
    body: Any
    duration_ms: float = 0.0
    """How long the simulator took to answer (injected latency included)."""

    @property
    def started(self) -> datetime:
        """When the simulator began serving the request (``time`` is when it answered)."""
        return self.time - timedelta(milliseconds=self.duration_ms)

    @property
    def ours(self) -> bool:
        """Whether the connector sent it."""
        return self.user in INTEGRATION_USERS

    @property
    def write(self) -> bool:
        """Whether it is a write (POST, PUT, PATCH, DELETE)."""
        return self.method in ("POST", "PUT", "PATCH", "DELETE")


def _read_journal(fetch: Callable[..., list[dict[str, Any]]], since: int) -> list[Entry]:
    entries: list[Entry] = []
    while True:
        page = fetch(since=since, limit=JOURNAL_PAGE)
        entries += [
            Entry(
                e["seq"],
                datetime.fromisoformat(e["time"]),
                e["method"],
                e["path"],
                e["query"],
                e["status"],
                e["user"],
                e["body"],
                e.get("duration_ms") or 0.0,
            )
            for e in page
        ]
        if len(page) < JOURNAL_PAGE:
            return entries
        since = page[-1]["seq"]


def issue_creates(jira: Iterable[Entry]) -> list[Entry]:
    """The connector's successful ``POST .../rest/api/2/issue`` requests (one per issue created)."""
    return [e for e in jira if e.ours and e.method == "POST" and e.path.endswith("/rest/api/2/issue")]


def site_of(entry: Entry) -> str:
    """The Jira site a request went to (the first path segment)."""
    return entry.path.strip("/").split("/", 1)[0]


def call_kind(entry: Entry) -> str:
    """``METHOD /path`` with ids, keys and the site replaced, to group calls by what they are."""
    parts = entry.path.strip("/").split("/")
    if parts and parts[0] in SITES:
        parts[0] = "<site>"
    named = [
        "<id>"
        if (len(part) == 32 and part.isalnum()) or (part.isdigit() and len(part) > 1) or "-" in part
        else part
        for part in parts
    ]
    return f"{entry.method} /{'/'.join(named)}"


# --- the connector process ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessResult:
    """How a connector process ended."""

    returncode: int
    started: datetime
    seconds: float
    max_rss_mb: float
    cpu_seconds: float
    """User plus system CPU time of the process."""
    log: Path


HWM_EVERY = 0.1
"""Seconds between reads of the connector's memory high-water mark."""


def run_connector(
    args: Sequence[str],
    log: Path,
    *,
    timeout: float,
    stop_when: Callable[[], bool] | None = None,
    poll: float = 0.5,
    launcher: Sequence[str] = ("-m", "connector"),
    on_poll: Callable[[int], None] | None = None,
) -> ProcessResult:
    """Run ``python LAUNCHER ARGS`` (default: ``python -m connector ARGS``, i.e. ``mim-connector``) to its end.

    Output goes to ``log``. With ``stop_when`` the process gets SIGTERM (a clean stop) once it
    returns true. Past ``timeout`` seconds it gets SIGTERM, then SIGKILL. ``on_poll(pid)`` is called
    every ``poll`` seconds while it runs (e.g. to sample its memory). ``max_rss_mb`` is the
    process's own high-water mark (``VmHWM``), read every ``HWM_EVERY`` seconds until it exits.
    Not ``wait4``'s ``ru_maxrss``: Python starts children with ``vfork``, and Linux charges the
    parent's peak (here, a simulator holding thousands of incidents) to the child at ``exec``.
    """
    command = [sys.executable, *launcher, *args]
    started = datetime.now(UTC)
    began = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ)
        stopping = False
        deadline = float("inf")
        peak = 0.0
        polled = 0.0
        while _alive(process.pid):
            hwm = peak_rss_mb(process.pid)
            peak = max(peak, hwm) if hwm == hwm else peak  # NaN once the process is gone
            if time.monotonic() - polled < poll:
                time.sleep(HWM_EVERY)
                continue
            polled = time.monotonic()
            if on_poll is not None:
                on_poll(process.pid)
            elapsed = time.monotonic() - began
            if not stopping and (elapsed > timeout or (stop_when is not None and stop_when())):
                os.kill(process.pid, signal.SIGTERM)
                stopping = True
                deadline = time.monotonic() + 60
            if stopping and time.monotonic() > deadline:
                os.kill(process.pid, signal.SIGKILL)
            time.sleep(HWM_EVERY)
        _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return ProcessResult(
        process.returncode,
        started,
        time.monotonic() - began,
        peak,
        usage.ru_utime + usage.ru_stime,
        log,
    )


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a finished child stays a zombie (unreaped) for ``wait4`` to read."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


# --- reporting ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One row of a benchmark's table. ``met`` is ``None`` for a figure measured without a target."""

    name: str
    measured: str
    target: str = "measured"
    met: bool | None = None


def publish(bench: str, figures: Sequence[Figure], data: Mapping[str, Any]) -> None:
    """Write ``benchmarks/results/<bench>.json`` (machine, figures, raw data) and print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": bench,
        "ran_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "figures": [asdict(f) for f in figures],
        "data": data,
    }
    (RESULTS / f"{bench}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(table(figures))


def table(figures: Iterable[Figure]) -> str:
    """``figure | measured | target | met?`` as markdown."""
    lines = ["| Figure | Measured | Target | Met? |", "|---|---|---|---|"]
    for f in figures:
        met = "—" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(f"| {f.name} | {f.measured} | {f.target} | {met} |")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """CPU, cores, memory, OS and Python of this machine, to print next to the figures."""
    cpu = _first(Path("/proc/cpuinfo"), "model name", ":") or platform.processor()
    memory_kb = _first(Path("/proc/meminfo"), "MemTotal", ":")
    os_name = _first(Path("/etc/os-release"), "PRETTY_NAME", "=") or platform.system()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(memory_kb.split()[0]) / 1024 / 1024, 1) if memory_kb else None,
        "os": os_name.strip('"'),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def _first(path: Path, key: str, separator: str) -> str | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(separator)
            if name.strip() == key:
                return value.strip()
    except OSError:
        return None
    return None


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` 0.95 for p95) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def rss_mb(pid: int | str = "self") -> float:
    """Current resident set size of a process, in MB."""
    return _status_mb(pid, "VmRSS")


def peak_rss_mb(pid: int | str = "self") -> float:
    """Peak resident set size of a running process so far, in MB."""
    return _status_mb(pid, "VmHWM")


def _status_mb(pid: int | str, key: str) -> float:
    value = _first(Path(f"/proc/{pid}/status"), key, ":")
    return int(value.split()[0]) / 1024 if value else float("nan")


# --- the connector.yaml --------------------------------------------------------------------------------


def _config(root: Path, settings: Settings) -> dict[str, Any]:
    """config/demo.yaml, pointed at free ports, without its sandbox story, with the benchmark's settings."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    data.pop("sandbox", None)
    data["instance_name"] = "mim-connector-bench"
    data["mappings"] = str(ROOT / "mappings")
    sn_port, jira_port = free_port(), free_port()
    budget = {"requests_per_second": settings.servicenow_rps, "burst": settings.burst}
    data["servicenow"]["instance_url"] = f"http://127.0.0.1:{sn_port}"
    data["servicenow"]["rate_budget"] = budget
    for name, supplier in data["suppliers"].items():
        supplier["jira"]["url"] = f"http://127.0.0.1:{jira_port}/{name}"
        supplier["jira"]["rate_budget"] = {"requests_per_second": settings.jira_rps, "burst": settings.burst}
    data["store"] = dict(settings.store) if settings.store else {"url": f"sqlite:///{root / 'state.db'}"}
    data["polling"] = {**data.get("polling", {}), **settings.polling}
    data["metrics"] = {"enabled": False}
    if settings.push:
        data["push"] = {"enabled": True, "port": free_port()}
        data["servicenow"]["push_secret"] = f"${{{PUSH_SECRET_VAR}}}"
        for supplier in data["suppliers"].values():
            supplier["jira"]["webhook_secret"] = f"${{{PUSH_SECRET_VAR}}}"
    data["logging"] = {"format": "text", "level": settings.log_level}
    return data
