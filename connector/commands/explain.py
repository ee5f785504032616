"""``mim-connector rules test``: which rule matches an incident, and why every rule before it did not."""

from __future__ import annotations

import itertools
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from connector.backtest import SimulationContext, observations_from_events
from connector.config import LoadedConfig, load_config
from connector.eventlog import read_events
from connector.matching import Context, SimpleContext, parse_sn_datetime
from connector.models import Incident
from connector.needs import incident_fields
from connector.promotion import StoreContext
from connector.rules import RuleBook, describe_checks, eligibility
from connector.store.db import utcnow


def incident_from_json(path: Path) -> Incident:
    """An incident from a JSON file: a Table API answer (``{"result": {...}}``) or a flat mapping.

    References may be ``{"value": sys_id}``; dot-walked values go under their dotted key.

    Raises:
        ValueError: the file is not a JSON object describing an incident.
    """
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and isinstance(data.get("result"), dict):
        data = data["result"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with the incident's fields")
    fields = {str(k): str(v.get("value", "")) if isinstance(v, dict) else str(v) for k, v in data.items()}
    count = fields.get("sys_mod_count", "0")
    return Incident(
        fields.pop("sys_id", "from-file"),
        fields.pop("number", path.stem),
        int(count) if count.isdigit() else 0,
        fields.get("sys_updated_on", ""),
        fields,
    )


def file_context(book: RuleBook, incident: Incident, now: datetime) -> SimpleContext:
    """The memory a file cannot carry, assumed from its timestamps.

    Every ``for:`` condition that holds has held since the version's ``sys_updated_on``, and an
    unassigned incident has been so since ``opened_at``.
    """
    since = parse_sn_datetime(incident.updated_on) or parse_sn_datetime(incident.get("opened_at"))
    held: dict[str, datetime] = {}
    if since is not None:
        held = {f"{incident.sys_id}:{key}": since for key, holds in book.held if holds(incident)}
    opened = parse_sn_datetime(incident.get("opened_at"))
    if opened is not None and not incident.get("assigned_to"):
        held[f"{incident.sys_id}:unassigned"] = opened
    return SimpleContext(now, held)


def history_subject(
    book: RuleBook, events: str, number: str, at: datetime | None
) -> tuple[Incident, SimulationContext] | None:
    """``number`` as an audit export shows it at ``at`` (default: its last update).

    The context carries the memory of a replay of every incident up to then (time conditions,
    clusters), as the back-test had it. ``None`` when the incident has no update by then.

    Raises:
        OSError, ValueError: the export cannot be read.
    """
    observations = observations_from_events(read_events(events))
    own = [o.at for o in observations if o.incident.number == number and (at is None or o.at <= at)]
    if not own:
        return None
    until = at or own[-1]
    context = SimulationContext(book.file.rules, observations[0].at)
    for observation in itertools.takewhile(lambda o: o.at <= until, observations):
        context.observe(observation)
    context.now = until
    return context.latest[number], context


def rules_test(
    config: Path,
    number: str | None,
    file: Path | None,
    *,
    tree: bool,
    at: datetime | None = None,
    events: str | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Print the evaluation of one incident at ``at``.

    The incident is read live, from a JSON ``file``, or from an audit export (``events``); ``at``
    defaults to now (for an export, to the incident's last update).

    Returns:
        0, or 2 when the incident cannot be found or read.
    """
    loaded = load_config(config)
    book = RuleBook(loaded.rules)
    if file is not None:
        try:
            incident = incident_from_json(file)
        except (OSError, ValueError) as exc:
            print(f"cannot read {file}: {exc}", file=out)
            return 2
        return _print(book, incident, file_context(book, incident, at or utcnow()), tree, out)
    assert number is not None
    if events is not None:
        try:
            found = history_subject(book, events, number, at)
        except (OSError, ValueError) as exc:
            print(f"cannot read {events}: {exc}", file=out)
            return 2
        if found is None:
            print(
                f"{number}: no update in {events}" + (f" by {at:%Y-%m-%d %H:%M:%S}" if at else ""), file=out
            )
            return 2
        incident, context = found
        print(f"as of {context.now:%Y-%m-%d %H:%M:%S} UTC in {events}", file=out)
        return _print(book, incident, context, tree, out)
    return _live(loaded, book, number, at or utcnow(), tree, out)


def _live(loaded: LoadedConfig, book: RuleBook, number: str, now: datetime, tree: bool, out: TextIO) -> int:
    from connector.commands.live import Live
    from connector.log import configure_logging

    configure_logging(loaded.connector.logging.format, "WARNING")
    live = Live(loaded, dry_run=True)
    runtime = live.runtime
    try:
        found = runtime.snow.incident_where("number", number, incident_fields(loaded))
        if found is None:
            print(f"{number}: no such incident", file=out)
            return 2
        return _print(book, found, StoreContext(now, runtime.store, {}), tree, out)
    finally:
        live.close()


def _print(book: RuleBook, incident: Incident, context: Context, tree: bool, out: TextIO) -> int:
    eligible = eligibility(incident)
    facts = ", ".join(
        f"{name} {incident.get(name) or '-'}" for name in ("priority", "state", "major_incident_state")
    )
    print(f"{incident.number} ({facts}): {eligible.reason}", file=out)
    if not eligible.eligible and not tree:
        print("Decision: not evaluated", file=out)
        return 0
    decision = book.decide(incident, context, eligible)
    for explained in book.explain(incident, context, eligible, tree=tree):
        rule = explained.rule
        if explained.outcome is None:
            print(f"{explained.index}. {rule.name}: skipped ({explained.note})", file=out)
            continue
        verdict = f"MATCH -> {rule.then.action}" if explained.outcome.matched else "no match"
        print(f"{explained.index}. {rule.name}: {verdict} - {rule.description}", file=out)
        for line in describe_checks(explained.outcome.checks):
            print(f"     {line}", file=out)
    if decision.rule is None:
        print("Decision: no rule matched" if eligible.eligible else "Decision: not evaluated", file=out)
    else:
        mode = decision.mode(book.settings.mode)
        dry = " (dry run)" if decision.dry_run(book.settings.dry_run) else ""
        print(f"Decision: {decision.action} by rule {decision.rule.name} ({mode}){dry}", file=out)
    return 0
