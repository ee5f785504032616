"""``mim-connector rules backtest``: replay history through the promotion rules and report what they would do.

History is a ServiceNow audit export (``--events FILE``, or ``builtin`` for the shipped slice) or,
with ``--since 30d``, the incidents a live instance changed in that window - current values only,
since the Table API keeps no history. The simulation is :mod:`connector.rules.backtest.replay`, the output
:mod:`connector.rules.backtest.report` and :mod:`connector.rules.backtest.chart`; this module only reads, prints
and writes.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from connector.config import LoadedConfig, load_config
from connector.config.types import parse_duration
from connector.core.times import format_servicenow_time
from connector.rules.backtest import replay as backtest
from connector.rules.backtest.chart import render_chart
from connector.rules.backtest.eventlog import BUILTIN, read_events
from connector.rules.backtest.report import render_json, render_text
from connector.rules.book import RuleBook

EXIT_OK, EXIT_INVALID = 0, 2
CHART_SUFFIXES = (".html", ".htm", ".svg")
DISPLAY_FIELDS = ("cmdb_ci.name", "assignment_group.name")
"""Read on top of what the configuration needs, so the report names CIs and groups."""


def run_backtest(
    config: Path,
    events: str | None,
    since: str | None,
    json_out: bool,
    chart: Path | None,
    progress: bool | None,
    out: TextIO,
) -> int:
    """Back-test the rules of ``config`` over ``events`` (a CSV path or ``builtin``) or the last ``since``.

    Prints the report (or JSON with ``json_out``) to ``out``, writes ``chart`` (``.html`` page or
    ``.svg``), shows a progress bar on stderr when ``progress`` (default: when stderr is a terminal).
    Returns 0, or 2 after printing the reason when the arguments or the events file are unusable.

    Raises:
        ConfigError: the configuration is invalid (the CLI reports it and exits 2).
        ConnectorError: the live instance could not be read (exit 1).
    """
    window, problem = _check_arguments(events, since, chart)
    if problem:
        return _invalid(problem)
    loaded = load_config(config)
    book = RuleBook(loaded.rules)
    show = sys.stderr.isatty() if progress is None else progress
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not show) as bar:
        task = bar.add_task("reading", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, description="replaying", completed=done, total=total)

        if events is not None:
            try:
                observations = backtest.observations_from_events(read_events(events))
            except (OSError, ValueError) as exc:
                return _invalid(f"cannot read the events file {events}: {exc}")
            source, note = ("the shipped event-log slice" if events == BUILTIN else events), ""
        else:
            assert window is not None
            observations, source, note = _live(loaded, window, datetime.now(UTC))
        result = backtest.run_backtest(observations, book, source=source, note=note, progress=on_progress)
    out.write(render_json(result) if json_out else render_text(result))
    if chart is not None:
        chart.write_text(render_chart(result, chart.suffix), encoding="utf-8")
        if not json_out:
            print(f"Chart of decisions and P1 incidents per week: {chart}", file=out)
    return EXIT_OK


def _check_arguments(
    events: str | None, since: str | None, chart: Path | None
) -> tuple[timedelta | None, str | None]:
    """The ``--since`` window, or what is wrong with the arguments."""
    if (events is None) == (since is None):
        return None, "give either --events EVENTS.csv (or 'builtin') or --since DURATION (e.g. 30d), not both"
    if events is not None and events != BUILTIN and not Path(events).is_file():
        return None, f"--events: {events} is not a file (give an audit export CSV, or 'builtin')"
    if chart is not None:
        if chart.suffix.lower() not in CHART_SUFFIXES:
            return None, f"--chart: {chart} must end in .html or .svg"
        if not chart.parent.is_dir():
            return None, f"--chart: the folder {chart.parent} does not exist"
    window = None
    if since is not None:
        try:
            window = parse_duration(since)
        except ValueError as exc:
            return None, f"--since: {exc}"
        if window <= timedelta(0):
            return None, "--since: the window must be longer than zero"
    return window, None


def _live(
    loaded: LoadedConfig, window: timedelta, now: datetime
) -> tuple[list[backtest.Observation], str, str]:
    """Incidents changed in the last ``window`` on the configured instance, as observations."""
    from connector.commands.live import Live
    from connector.sync.fields import incident_fields
    from connector.telemetry.log import configure_logging

    configure_logging(loaded.connector.logging.format, "WARNING")
    since = now - window
    fields = list(dict.fromkeys((*incident_fields(loaded), *DISPLAY_FIELDS)))
    with Live(loaded) as runtime:
        page_size = loaded.connector.polling.page_size
        incidents = list(runtime.snow.incidents_changed(since, fields, page_size))
    url = loaded.connector.servicenow.instance_url
    note = (
        f"live data: {len(incidents):,} incidents changed since {format_servicenow_time(since)} UTC, each replayed once at its "
        "opened_at with its current values (the Table API keeps no history; resolved ones are replayed "
        "as open); 'reached P1' means priority 1 now."
    )
    return backtest.observations_from_incidents(incidents), url, note


def _invalid(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_INVALID
