"""Detect → mirror latency: how long a change takes to show on the other side, with a 2 s poll interval.

``mim-connector run`` runs in its own process against the sandbox with both poll intervals at
2 s and otherwise the production defaults (8 workers, 10 requests/s per system). Meanwhile, at
random moments (0.5-1.5 s apart, a fixed seed), people make changes:

* the service desk opens an incident routed to ACME (→ the connector creates the ACME issue);
* the service desk changes an incident's short description (→ the connector updates the summary);
* the ACME engineer comments on an issue (→ the connector writes a work note on the incident).

Each latency runs from the simulator's answer to the person's request to its answer to the
connector's write that mirrors it, both read from the sandbox journals (one clock). Reported:
p50 / p95 / p99 per direction and over all, against the target p95 ≤ poll interval + 2 s.

With ``--push`` the simulators push every change (Jira admin webhooks, the ServiceNow update set,
docs/push.md) to the daemon's receiver, the polls run every 30 s (the production default; they
are only the backstop) and every request to either simulator waits 50 ms: the target is then
p95 ≤ 1 s.

Run: .venv/bin/python -m benchmarks.latency_bench [--changes N] [--quick] [--push]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    BenchWorld,
    Entry,
    Figure,
    ProcessResult,
    Settings,
    percentile,
    publish,
    run_connector,
)
from connector.config import load_config
from connector.store import Store

POLL_SECONDS = 2.0
TARGET_P95 = POLL_SECONDS + 2.0
PUSH_POLL_SECONDS = 30.0
PUSH_LATENCY_MS = 50
PUSH_TARGET_P95 = 1.0
SEED = 7
SETTLE_TIMEOUT = 90.0


def probe(index: int) -> str:
    """A short description that names one probe and no other (``#007`` is not a prefix of ``#0071``)."""
    return f"Latency probe #{index:04d}#"


class Run:
    """A sandbox, a daemon in its own process, and the changes made while it runs."""

    settle_timeout = SETTLE_TIMEOUT
    """Seconds any one wait of the run may take."""

    def __init__(self, root: Path, changes: int, push: bool = False) -> None:
        self.root = root
        self.changes = changes
        poll = f"{PUSH_POLL_SECONDS if push else POLL_SECONDS:.0f}s"
        self.world = BenchWorld.create(
            root,
            Settings(
                polling={"servicenow_interval": poll, "supplier_interval": poll, "initial_lookback": "5m"},
                push=push,
            ),
        )
        if push:
            self.world.inject_latency(PUSH_LATENCY_MS)
        self.rng = random.Random(SEED)
        self.stop = threading.Event()
        self.result: ProcessResult | None = None
        self.sys_ids: dict[int, str] = {}

    def start_daemon(self) -> threading.Thread:
        """``mim-connector run`` in its own process until :attr:`stop` is set."""

        def work() -> None:
            self.result = run_connector(
                ["run", "-c", str(self.world.config)],
                self.root / "daemon.log",
                timeout=1800,
                stop_when=self.stop.is_set,
            )

        thread = threading.Thread(target=work, name="daemon")
        thread.start()
        self._wait(lambda: sum(1 for e in self.world.journals()[0] if e.ours) >= 4, "the daemon to poll")
        return thread

    def play(self) -> None:
        """The three kinds of change, each ``changes`` times at random moments."""
        session = self.world.session()
        fields = {
            "description": "Latency benchmark",
            "impact": "2",
            "urgency": "2",
            "assignment_group": self.world.lookup("sys_user_group", "name=ACME Hosting L2"),
        }
        for index in range(self.changes):
            self._pause()
            record = self.world.create_incident(session, {**fields, "short_description": probe(index)})
            self.sys_ids[index] = record["sys_id"]
        keys = self._wait(self._issue_keys, "every incident to be mirrored")
        for index in range(self.changes):
            self._pause()
            url = self.world.table("incident", self.sys_ids[index])
            body = {"short_description": f"{probe(index)} updated"}
            session.patch(url, json=body, timeout=10).raise_for_status()
        for index in range(self.changes):
            self._pause()
            self.world.agent_comment("acme", keys[self.sys_ids[index]], f"Latency reply {probe(index)}")
        self._wait(lambda: self._mirrored() >= 3 * self.changes, "every change to be mirrored")

    def _pause(self) -> None:
        time.sleep(self.rng.uniform(0.5, 1.5))

    def _issue_keys(self) -> dict[str, str] | None:
        """Incident sys_id -> ACME key once every probe incident has its issue."""
        loaded = load_config(self.world.config)
        store = Store.open(loaded.connector.store.url, loaded.base_dir)
        try:
            keys = {sys_id: store.links.get(sys_id, "acme") for sys_id in self.sys_ids.values()}
        finally:
            store.close()
        found = {sys_id: link.jira_key for sys_id, link in keys.items() if link and link.jira_key}
        return found if len(found) == len(self.sys_ids) else None

    def _mirrored(self) -> int:
        return sum(len(v) for v in latencies(*self.world.journals(), self.changes).values())

    def _wait(self, ready: Callable[[], Any], what: str) -> Any:
        """``ready()``'s first true value, asked every half second; ``RuntimeError`` after ``settle_timeout``."""
        deadline = time.monotonic() + self.settle_timeout
        while time.monotonic() < deadline:
            value = ready()
            if value:
                return value
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}")

    def close(self, daemon: threading.Thread) -> None:
        """Stop the daemon and the sandbox."""
        self.stop.set()
        daemon.join()
        self.world.close()


def latencies(servicenow: list[Entry], jira: list[Entry], changes: int) -> dict[str, list[float]]:
    """Seconds from each change to its mirror, by direction (changes not mirrored yet are left out)."""
    out: dict[str, list[float]] = {"create": [], "update": [], "supplier_comment": []}
    for index in range(changes):
        for kind, (change, mirror) in _pairs(probe(index), servicenow, jira).items():
            if change is not None and mirror is not None:
                out[kind].append((mirror - change).total_seconds())
    return out


def _pairs(
    text: str, servicenow: list[Entry], jira: list[Entry]
) -> dict[str, tuple[datetime | None, datetime | None]]:
    """For one probe: when each change was made and when its mirror was written."""
    updated, reply = f"{text} updated", f"Latency reply {text}"
    return {
        "create": (
            _first(servicenow, lambda e: e.method == "POST" and _has(e.body, "short_description", text)),
            _first(jira, lambda e: e.ours and e.method == "POST" and text in _summary(e.body)),
        ),
        "update": (
            _first(servicenow, lambda e: not e.ours and e.method == "PATCH" and updated in str(e.body)),
            _first(jira, lambda e: e.ours and e.method == "PUT" and updated in _summary(e.body)),
        ),
        "supplier_comment": (
            _first(jira, lambda e: not e.ours and e.method == "POST" and reply in str(e.body)),
            _first(servicenow, lambda e: e.ours and e.method == "PATCH" and reply in str(e.body)),
        ),
    }


def _first(entries: list[Entry], match: Callable[[Entry], bool]) -> datetime | None:
    return next((e.time for e in entries if e.status < 400 and match(e)), None)


def _has(body: Any, key: str, text: str) -> bool:
    return isinstance(body, dict) and body.get(key) == text


def _summary(body: Any) -> str:
    fields = body.get("fields") if isinstance(body, dict) else None
    return str(fields.get("summary", "")) if isinstance(fields, dict) else ""


def summarize(samples: list[float]) -> dict[str, float]:
    """Count, p50, p95, p99 and max of a sample, in seconds."""
    return {
        "count": len(samples),
        "p50": round(percentile(samples, 0.50), 2),
        "p95": round(percentile(samples, 0.95), 2),
        "p99": round(percentile(samples, 0.99), 2),
        "max": round(max(samples), 2),
    }


def figures(stats: dict[str, dict[str, float]], push: bool = False) -> list[Figure]:
    """One row per direction and one over all."""
    how = (
        f"push, {PUSH_POLL_SECONDS:.0f} s poll, {PUSH_LATENCY_MS} ms latency"
        if push
        else f"{POLL_SECONDS:.0f} s poll"
    )
    target = PUSH_TARGET_P95 if push else TARGET_P95
    labels = {
        "create": "new incident → ACME issue",
        "update": "ServiceNow field change → Jira",
        "supplier_comment": "supplier comment → ServiceNow work note",
        "all": "all changes",
    }
    rows = []
    for name, label in labels.items():
        s = stats[name]
        rows.append(
            Figure(
                f"Detect → mirror latency, {how}, {label} (n={s['count']:.0f}): p50 / p95 / p99",
                f"{s['p50']:.2f} / {s['p95']:.2f} / {s['p99']:.2f} s"
                if push
                else f"{s['p50']:.1f} / {s['p95']:.1f} / {s['p99']:.1f} s",
                f"p95 ≤ {target:g} s",
                s["p95"] <= target,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=40, help="changes of each kind (default 40)")
    parser.add_argument("--quick", action="store_true", help="10 changes of each kind")
    parser.add_argument("--push", action="store_true", help="push on, 30 s polls, 50 ms latency")
    args = parser.parse_args()
    changes = 10 if args.quick else args.changes
    with tempfile.TemporaryDirectory(prefix="mim-bench-latency-") as folder:
        run = Run(Path(folder), changes, push=args.push)
        daemon = run.start_daemon()
        try:
            run.play()
            by_kind = latencies(*run.world.journals(), changes)
        finally:
            run.close(daemon)
    stats = {name: summarize(samples) for name, samples in by_kind.items()}
    stats["all"] = summarize([s for samples in by_kind.values() for s in samples])
    publish(
        "latency_push" if args.push else "latency",
        figures(stats, push=args.push),
        {
            "push": args.push,
            "injected_latency_ms": PUSH_LATENCY_MS if args.push else 0,
            "poll_interval_seconds": PUSH_POLL_SECONDS if args.push else POLL_SECONDS,
            "changes_per_kind": changes,
            "stats": stats,
            "samples": by_kind,
            "daemon_peak_rss_mb": round(run.result.max_rss_mb, 1) if run.result else None,
        },
    )


if __name__ == "__main__":
    main()
