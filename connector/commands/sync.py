"""``mim-connector sync --once [--dry-run] [--json]``: one cycle now, printing the plan or what was done.

Also prints what the promotion rules decided (in a dry run: what they would have decided).
A cycle that writes holds the store's lease like the daemon: it is refused while a daemon runs on
the store (it would duplicate the daemon's writes), and a daemon is refused while it runs.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connector.commands.live import Live
from connector.config import load_config
from connector.core.plan import Preview
from connector.sync.cycle import CycleReport
from connector.telemetry.log import configure_logging

SYNC_ADVICE = (
    "sync --once beside it would duplicate its writes: let the daemon do the work, stop it first, "
    "or use --dry-run"
)


def sync_once(
    config: Path,
    *,
    dry_run: bool,
    out: TextIO = sys.stdout,
    progress: bool | None = None,
    as_json: bool = False,
) -> int:
    """Run one full cycle (ServiceNow, every site, a sweep); return the exit code (1 if any entity failed).

    A dry run prints, per entity, each change with its reason and the values it would write
    (old → new), like ``terraform plan``; ``as_json`` prints the same as one JSON document.
    """
    loaded = load_config(config)
    configure_logging(loaded.connector.logging.format, loaded.connector.logging.level)
    live = Live(loaded, dry_run=dry_run, hold=None if dry_run else ("sync --once", SYNC_ADVICE))
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
    if as_json:
        print(json.dumps(_as_json(report, dry_run), indent=2, ensure_ascii=False), file=out)
        if live.lost is not None:
            raise live.lost
        return 1 if report.failed else 0
    if dry_run:
        print(f"dry run: {len(report.plans)} entities planned, nothing written", file=out)
        for entity, preview in sorted(report.plans.items()):
            print(entity, file=out)
            for line in preview.lines():
                print(f"  {line}", file=out)
        print(_totals(report.plans.values()), file=out)
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
    if live.lost is not None:
        raise live.lost
    return 1 if report.failed else 0


def _totals(previews: Iterable[Preview]) -> str:
    """``Plan: 1 to add, 2 to change, 0 blocked.`` over every entity's plan."""
    symbols = Counter(change.symbol for preview in previews for change in preview.changes)
    return f"Plan: {symbols['+']} to add, {symbols['~']} to change, {symbols['!']} blocked."


def _as_json(report: CycleReport, dry_run: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {"dry_run": dry_run}
    if dry_run:
        summary["plans"] = {entity: preview.as_json() for entity, preview in sorted(report.plans.items())}
    else:
        summary |= {
            "new_versions": report.new_versions,
            "entities": report.entities,
            "writes": report.writes,
            "held": report.held,
        }
    summary |= {
        "decisions": dict(sorted(report.decisions.items())),
        "failed": dict(sorted(report.failed.items())),
    }
    return summary
