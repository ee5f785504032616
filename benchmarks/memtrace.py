"""What a connector process keeps in memory: ``mim-connector`` under :mod:`tracemalloc`, snapshots on request.

``python -m benchmarks.memtrace FOLDER [--frames 12] -- run -c CONFIG`` runs ``mim-connector`` with
the given arguments in this process with :mod:`tracemalloc` tracing every allocation. A background
thread watches ``FOLDER``: for each ``NAME.request`` file that appears it collects garbage, writes
``NAME.snapshot`` (a :class:`tracemalloc.Snapshot` dump) and ``NAME.traced`` (the bytes traced now
and at the peak since the previous snapshot), and removes the request. Comparing two
snapshots (:func:`growth`) by traceback names what grew in between. Tracing slows the process
down several times and costs memory of its own: for finding growers, not for figures. With
``--frames 0`` there is no tracing, only ``NAME.objects`` (also written with tracing): live
objects by type and every container of at least :data:`BIG` items with who holds it, cheap
enough to run at full size.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
import tracemalloc
from collections import Counter, OrderedDict, deque
from pathlib import Path

from connector.commands.cli import main as connector_main

WATCH_EVERY = 0.2


def request(folder: Path, name: str, timeout: float = 600.0) -> Path:
    """Ask the traced process in ``folder`` for a snapshot named ``name``; returns its path once written."""
    snapshot = folder / f"{name}.snapshot"
    (folder / f"{name}.request").write_text("")
    deadline = time.monotonic() + timeout
    while (folder / f"{name}.request").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no snapshot {name} within {timeout:.0f} s")
        time.sleep(WATCH_EVERY)
    return snapshot


def growth(before: Path, after: Path, top: int = 25, key: str = "traceback") -> str:
    """The ``top`` allocation sites (grouped by ``key``) that grew most from ``before`` to ``after``."""
    old = tracemalloc.Snapshot.load(str(before))
    new = tracemalloc.Snapshot.load(str(after))
    noise = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<frozen *>")]
    old, new = old.filter_traces(noise), new.filter_traces(noise)
    stats = new.compare_to(old, key)
    total = sum(s.size_diff for s in stats)
    lines = [f"total traced growth: {total / 1e6:+.2f} MB"]
    for stat in stats[:top]:
        lines.append(f"\n{stat.size_diff / 1e3:+10.1f} kB {stat.count_diff:+8d} blocks")
        lines += [f"    {frame}" for frame in stat.traceback.format()[-24:]]
    return "\n".join(lines)


def objects(folder: Path, name: str) -> None:
    """Write ``NAME.objects``: live objects by type, and every big container with who holds it."""
    gc.collect()
    everything = gc.get_objects()
    by_type = Counter(type(o).__qualname__ for o in everything)
    lines = [f"{count:>9} {kind}" for kind, count in by_type.most_common(40)]
    lines.append("")
    for thing in everything:
        if isinstance(thing, dict | list | set | deque | OrderedDict) and len(thing) >= BIG:
            lines.append(f"{len(thing):>9} {type(thing).__qualname__} held by {_holders(thing)}")
    (folder / f"{name}.objects").write_text("\n".join(lines) + "\n")


BIG = 300
"""Containers at least this long are listed with their holders."""


def _holders(thing: object) -> str:
    names = []
    for referrer in gc.get_referrers(thing)[:4]:
        if isinstance(referrer, dict):
            keys = [k for k, v in referrer.items() if v is thing][:1]
            owner = [
                type(o).__qualname__
                for o in gc.get_referrers(referrer)[:3]
                if getattr(o, "__dict__", None) is referrer
            ]
            names.append(f"{'/'.join(owner) or 'dict'}.{keys[0] if keys else '?'}")
        elif not isinstance(referrer, list) or referrer is not gc.garbage:
            names.append(type(referrer).__qualname__)
    return ", ".join(names)


def _watch(folder: Path) -> None:
    while True:
        for request_file in sorted(folder.glob("*.request")):
            objects(folder, request_file.stem)
            if tracemalloc.is_tracing():
                snapshot = tracemalloc.take_snapshot()
                snapshot.dump(str(folder / f"{request_file.stem}.snapshot"))
                current, peak = tracemalloc.get_traced_memory()
                tracemalloc.reset_peak()
                (folder / f"{request_file.stem}.traced").write_text(f"{current} {peak}\n")
            request_file.unlink()
        time.sleep(WATCH_EVERY)


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--frames", type=int, default=12, help="0: no tracemalloc, object counts only")
    options = parser.parse_args(argv[:split])
    options.folder.mkdir(parents=True, exist_ok=True)
    if options.frames:
        tracemalloc.start(options.frames)
    threading.Thread(target=_watch, args=(options.folder,), name="memtrace", daemon=True).start()
    return connector_main(argv[split + 1 :])


if __name__ == "__main__":
    sys.exit(main())
