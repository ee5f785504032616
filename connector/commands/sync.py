"""``mim-connector sync --once [--dry-run]``: one cycle now, printing the plan or what was done.

Also prints what the promotion rules decided (in a dry run: what they would have decided).
A cycle that writes holds the store's lease like the daemon: it is refused while a daemon runs on
the store (it would duplicate the daemon's writes), and a daemon is refused while it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connector.config import load_config
from connector.lease import LeaseKeeper, hold_store
from connector.log import configure_logging
from connector.store import Store
from connector.wiring import build

SYNC_ADVICE = (
    "sync --once beside it would duplicate its writes: let the daemon do the work, stop it first, "
    "or use --dry-run"
)


def sync_once(config: Path, *, dry_run: bool, out: TextIO = sys.stdout, progress: bool | None = None) -> int:
    """Run one full cycle (ServiceNow, every site, a sweep); return the exit code (1 if any entity failed)."""
    loaded = load_config(config)
    configure_logging(loaded.connector.logging.format, loaded.connector.logging.level)
    sandbox = None
    if loaded.connector.sandbox.embedded:
        from connector.sandbox.embedded import ensure_sandbox

        sandbox = ensure_sandbox(loaded)
    store: Store | None = None
    keeper: LeaseKeeper | None = None
    try:
        if not dry_run:
            store, keeper = hold_store(loaded, "sync --once", SYNC_ADVICE)
        runtime = build(loaded, dry_run=dry_run, store=store)
    except BaseException:
        if keeper is not None and store is not None:
            keeper.release()
            store.discard()
        if sandbox is not None:
            sandbox.stop()
        raise
    if keeper is not None:
        keeper.start(lambda _lost: None)  # reported after the cycle, which cannot be cut short
    show = out.isatty() if progress is None else progress
    try:
        with Progress(
            TextColumn("syncing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not show
        ) as bar:
            task = bar.add_task("entities", total=None)

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = runtime.engine.cycle(sweep=True, on_progress=on_progress)
    finally:
        runtime.close()
        if keeper is not None:
            keeper.release()
            keeper.store.close()
        if sandbox is not None:
            sandbox.stop()
    if dry_run:
        print(f"dry run: {len(report.plans)} entities planned, nothing written", file=out)
        for entity, lines in sorted(report.plans.items()):
            print(entity, file=out)
            for line in lines:
                print(f"  {line}", file=out)
    else:
        print(
            f"synced: {report.new_versions} new incident versions, {report.entities} entities, "
            f"{report.writes} writes, {len(report.failed)} failed, {report.held} held",
            file=out,
        )
    for number, decision in sorted(report.decisions.items()):
        print(f"rules {number}: {decision}", file=out)
    for entity, error in sorted(report.failed.items()):
        print(f"failed {entity}: {error}", file=out)
    if keeper is not None and keeper.lost is not None:
        raise keeper.lost
    return 1 if report.failed else 0
