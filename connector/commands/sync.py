"""``mim-connector sync --once [--dry-run]``: one cycle now, printing the plan or what was done.

Also prints what the promotion rules decided (in a dry run: what they would have decided).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connector.commands.live import Live
from connector.config import load_config
from connector.log import configure_logging


def sync_once(config: Path, *, dry_run: bool, out: TextIO = sys.stdout, progress: bool | None = None) -> int:
    """Run one full cycle (ServiceNow, every site, a sweep); return the exit code (1 if any entity failed)."""
    loaded = load_config(config)
    configure_logging(loaded.connector.logging.format, loaded.connector.logging.level)
    live = Live(loaded, dry_run=dry_run)
    runtime = live.runtime
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
        live.close()
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
    return 1 if report.failed else 0
