"""What ``mim-connector run`` shows while it runs and when it stops.

On a terminal, :class:`LiveView` keeps a panel at the bottom of the screen, redrawn after every
cycle, with log lines scrolling above it; elsewhere :class:`PlainView` leaves progress to the
daemon's one log line per cycle. Both print :func:`summary` on stdout when the daemon stops: the figures, then the major incidents
the rules made, each with its rule and every supplier issue key (its own and its children's).
Figures come from the daemon's cycle reports (cycles, their duration) and from read-only counts
over the state store (:mod:`connector.store.stats`), so they match what both sides hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from connector.config import LoadedConfig
from connector.config.types import format_duration
from connector.store import Store
from connector.store.stats import (
    MajorIncident,
    MajorIncidents,
    SyncStats,
    major_incidents,
    problem_links,
    sync_stats,
)
from connector.sync.cycle import CycleReport
from connector.telemetry.log import configure_logging


@dataclass
class Tally:
    """What the cycle reports of this run add up to."""

    started: float
    cycles: int = 0
    failed_cycles: int = 0
    last_cycle_seconds: float | None = None
    new_versions: int = 0
    writes: int = 0

    def add(self, report: CycleReport | None, seconds: float) -> None:
        """Count one cycle (``report`` is ``None`` when it failed)."""
        self.last_cycle_seconds = seconds
        if report is None:
            self.failed_cycles += 1
            return
        self.cycles += 1
        self.new_versions += report.new_versions
        self.writes += report.writes


class PlainView:
    """No live display (the daemon logs each cycle); the summary on ``out`` at the end."""

    def __init__(self, out: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.tally = Tally(clock())
        self.name = "mim-connector"

    def started(self, loaded: LoadedConfig) -> None:
        """The daemon is configured and about to run its first cycle."""
        self.name = loaded.connector.instance_name
        self.tally = Tally(self.clock())

    def cycle(self, report: CycleReport | None, seconds: float, store: Store) -> None:
        """One cycle ended (``report`` is ``None`` when it failed)."""
        self.tally.add(report, seconds)

    def stopped(self, store: Store) -> None:
        """The daemon stopped: print what was synced."""
        stats, problems = sync_stats(store.engine), problem_links(store.engine)
        majors = major_incidents(store.engine, MAJOR_INCIDENTS_LISTED)
        print(
            summary(self.name, stats, self.tally, self.clock(), problems, majors), file=self.out, flush=True
        )


class LiveView(PlainView):
    """A panel redrawn after every cycle; log records are printed above it while it shows."""

    def __init__(self, out: TextIO, *, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(out, clock=clock)
        self.console = Console(file=out)
        self._live: Live | None = None
        self._logging = ("text", "INFO")

    def started(self, loaded: LoadedConfig) -> None:
        """Show the panel; route logging through it so lines land above, not across, it."""
        super().started(loaded)
        self._logging = (loaded.connector.logging.format, loaded.connector.logging.level)
        self._live = Live(
            self._render(SyncStats()), console=self.console, auto_refresh=False, redirect_stderr=True
        )
        self._live.start()
        # Live has replaced sys.stderr by a proxy printing above the panel; our handler must use it.
        configure_logging(*self._logging)

    def cycle(self, report: CycleReport | None, seconds: float, store: Store) -> None:
        """Count the cycle and redraw the panel with fresh counts from the store."""
        super().cycle(report, seconds, store)
        if self._live is not None:
            self._live.update(self._render(sync_stats(store.engine)), refresh=True)

    def stopped(self, store: Store) -> None:
        """Leave the last panel on screen, give logging its stream back, print the summary."""
        if self._live is not None:
            self._live.update(self._render(sync_stats(store.engine)), refresh=True)
            self._live.stop()
            self._live = None
            configure_logging(*self._logging)
        super().stopped(store)

    def _render(self, stats: SyncStats) -> Panel:
        tally = self.tally
        last = f"{tally.last_cycle_seconds:.2f}s" if tally.last_cycle_seconds is not None else "-"
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for label, value in rows(stats):
            table.add_row(label, value)
        elapsed = format_duration(timedelta(seconds=round(self.clock() - tally.started)))
        heading = Text(
            f"running {elapsed} · {_count(tally.cycles, 'cycle')} · last cycle {last}", style="dim"
        )
        return Panel(Group(heading, table), title=self.name, border_style="cyan", expand=False)


def rows(stats: SyncStats) -> list[tuple[str, str]]:
    """The figures both the panel and the summary show, as (label, value)."""
    issues = ", ".join(f"{supplier} {count}" for supplier, count in stats.issues.items()) or "none"
    return [
        ("incidents seen", str(stats.incidents)),
        (
            "rule decisions",
            f"{stats.proposed} proposed, {stats.promoted} promoted, {stats.children} children"
            + (f", {stats.capped} capped" if stats.capped else ""),
        ),
        ("issues created", f"{issues} ({stats.issues_total} in all)"),
        ("comments", f"{stats.comments_out} out to suppliers, {stats.comments_in} in from suppliers"),
        ("status changes", f"{stats.status_changes_in} supplier status changes written back"),
        ("dead letters", str(stats.dead_letters)),
    ]


def summary(
    name: str,
    stats: SyncStats,
    tally: Tally,
    now: float,
    problems: tuple[int, int],
    majors: MajorIncidents | None = None,
) -> str:
    """The final summary: one ``label: value`` line per figure under a heading, then the major incidents. Pure."""
    elapsed = format_duration(timedelta(seconds=round(now - tally.started)))
    failed = f", {tally.failed_cycles} failed" if tally.failed_cycles else ""
    lines = [f"Summary of {name}: ran {elapsed}, {_count(tally.cycles, 'cycle')}{failed}"]
    figures = [*rows(stats), ("problems", f"{problems[0]} incidents with a problem ({problems[1]} mirrored)")]
    width = max(len(label) for label, _value in figures) + 1
    lines += [f"  {label + ':':<{width}} {value}" for label, value in figures]
    return "\n".join([*lines, *major_lines(majors or MajorIncidents())])


MAJOR_INCIDENTS_LISTED = 20
"""The summary lists this many of the newest major incidents (a long-lived store holds many)."""
_SHOWN_STATE = {"proposed": "proposed", "promoted": "accepted"}
"""The ``major_incident_state`` each decision leaves; another one was set by a person since."""


def major_lines(majors: MajorIncidents) -> list[str]:
    """``Major incidents: N``, then per major incident a line with its rule and one with its issue keys."""
    if not majors.total:
        return ["Major incidents: none"]
    earlier = majors.total - len(majors.listed)
    lines = [f"Major incidents: {majors.total}" + (f" (the newest {len(majors.listed)})" if earlier else "")]
    for major in majors.listed:
        lines += _major(major)
    if earlier:
        lines.append(f"  ... and {_count(earlier, 'earlier one')}")
    return lines


def _major(major: MajorIncident) -> list[str]:
    state = major.mim_state
    now = f" (now {state or 'not major'})" if state != _SHOWN_STATE.get(major.decided, state) else ""
    children = f", {_count(len(major.children), 'child', 'children')}" if major.children else ""
    head = f"  {major.number} {major.decided} by rule {major.rule}{now}{children}"
    if major.short_description:
        head += f': "{_clip(major.short_description, 60)}"'
    issues = ", ".join(f"{key} ({supplier})" for supplier, key in major.issues) or "none"
    lines = [head, f"    issues: {issues}"]
    if major.child_issues:
        keys = ", ".join(f"{key} ({supplier}, {child})" for child, supplier, key in major.child_issues)
        lines.append(f"    children's issues: {keys}")
    return lines


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _count(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def view_for(out: TextIO) -> PlainView:
    """A live view when ``out`` is a terminal, else the plain one."""
    return LiveView(out) if out.isatty() else PlainView(out)
