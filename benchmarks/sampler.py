"""Where a connector process spends its time: a stack sampler that sees every thread.

``python -m benchmarks.sampler OUT.json [--interval-ms 2] -- sync --once -c CONFIG`` runs
``mim-connector`` with the given arguments in this process while a background thread looks at
every other thread's Python stack every few milliseconds. Each sample is put in one bucket by the
innermost frame that belongs to a known layer (state store, HTTP client, python-jira, pysnow,
planner, ...) or, for a thread blocked reading a socket, ``waiting for the server``. Unlike
cProfile it sees worker threads and barely slows the program down; a bucket's share of the samples
is its share of the threads' wall time. The result (bucket -> samples and share, plus the hottest
connector functions) is written as JSON.
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType

from connector.commands.cli import main as connector_main

# Innermost matching layer wins; order matters only for patterns that could both match one frame.
LAYERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("state store (connector/store + SQLAlchemy + sqlite3)", re.compile(r"/connector/store/|/sqlalchemy/")),
    (
        "HTTP client (requests, urllib3, http.client)",
        re.compile(r"/requests/|/urllib3/|/http/client\.py|/socket\.py|/ssl\.py|/urllib/"),
    ),
    ("python-jira (resources, parsing)", re.compile(r"site-packages/jira/")),
    ("pysnow", re.compile(r"site-packages/pysnow/")),
    (
        "retry and pacing (tenacity, transport)",
        re.compile(r"/tenacity/|/connector/(transport|retry|ratelimit)\.py"),
    ),
    ("JSON", re.compile(r"/json/")),
    ("logging", re.compile(r"/logging/|/connector/log\.py")),
    ("metrics", re.compile(r"/prometheus_client/")),
    (
        "planner (pure decisions)",
        re.compile(
            r"/connector/(planner|plan|entity|mirror_\w+|routing|matching|templates|redaction|rules|needs)\.py"
        ),
    ),
    ("adapters (connector/jira, connector/servicenow)", re.compile(r"/connector/(jira|servicenow)/")),
    ("engine and executor", re.compile(r"/connector/(engine|executor|promotion)\.py")),
)
GENERIC = re.compile(r"/threading\.py|/queue\.py|/concurrent/futures/")
"""Frames that only wait (locks, queues, futures): a waiting stack is charged to who waits."""
WAITING = "waiting for the server (socket read)"
IDLE = "idle (worker with nothing to do)"
OTHER = "other"


def classify(frame: FrameType | None) -> str:
    """The bucket of a stack, given its innermost frame.

    A stack that waits on a lock, a queue or a future is charged to the layer that waits, marked
    as waiting (``state store: waiting for a connection`` when SQLAlchemy's pool is exhausted), or
    is idle when nothing but the thread pool is on it.
    """
    if frame is None:
        return OTHER
    if frame.f_code.co_name == "readinto" and frame.f_code.co_filename.endswith("socket.py"):
        return WAITING
    waiting = bool(GENERIC.search(frame.f_code.co_filename))
    while frame is not None:
        filename = frame.f_code.co_filename
        if waiting and "/sqlalchemy/pool/" in filename:
            return "state store: waiting for a pooled connection"
        if waiting and filename.endswith("/connector/store/db.py"):
            return "state store: waiting for the writer lock"
        if not GENERIC.search(filename):
            for name, pattern in LAYERS:
                if pattern.search(filename):
                    return f"{name}: waiting on a lock or future" if waiting else name
        frame = frame.f_back
    return IDLE if waiting else OTHER


def hottest_connector_frame(frame: FrameType | None) -> str | None:
    """The innermost frame in our own package, as ``module:function``."""
    while frame is not None:
        filename = frame.f_code.co_filename
        if "/connector/" in filename and "site-packages" not in filename:
            module = filename.rsplit("/connector/", 1)[1]
            return f"{module}:{frame.f_code.co_name}"
        frame = frame.f_back
    return None


class Sampler:
    """Samples every other thread's stack each ``interval`` seconds until stopped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.buckets: Counter[str] = Counter()
        self.functions: Counter[str] = Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling and wait for the sampler thread."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.is_set():
            # sys._current_frames() holds the interpreter's thread-list lock while it builds frame
            # objects; a garbage collection there that frees a threading.local takes the same lock
            # and the whole process hangs (CPython 3.11). No collection while we look, then.
            gc.disable()
            try:
                frames = sys._current_frames()
            finally:
                gc.enable()
            for ident, frame in frames.items():
                if ident == me:
                    continue
                bucket = classify(frame)
                self.buckets[bucket] += 1
                self.samples += 1
                if bucket not in (WAITING, IDLE):
                    where = hottest_connector_frame(frame)
                    if where:
                        self.functions[where] += 1
            time.sleep(self.interval)

    def report(self) -> dict[str, object]:
        """Buckets with sample counts and shares, and the 25 busiest connector functions."""
        total = max(1, self.samples)
        return {
            "samples": self.samples,
            "interval_ms": self.interval * 1000,
            "buckets": {
                name: {"samples": count, "share": round(count / total, 4)}
                for name, count in self.buckets.most_common()
            },
            "connector_functions": dict(self.functions.most_common(25)),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description="Sample a mim-connector run's threads.")
    parser.add_argument("out", type=Path)
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the mim-connector arguments")
    options = parser.parse_args()
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    # `kill -USR1 PID` prints every thread's stack to stderr: how to see a run that is stuck.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    sampler = Sampler(options.interval_ms / 1000)
    sampler.start()
    try:
        code = connector_main(args)
    finally:
        sampler.stop()
        options.out.write_text(json.dumps(sampler.report(), indent=2) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
