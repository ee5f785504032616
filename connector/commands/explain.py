"""``mim-connector rules test``: which rule matches an incident, and why every rule before it did not."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from connector.commands.incident_file import IncidentFile, read_incident
from connector.config import LoadedConfig, load_config
from connector.config.conditions import FieldCondition
from connector.config.fieldcheck import walk_conditions
from connector.config.rules_file import Rule
from connector.core.models import Incident
from connector.core.times import servicenow_time_or_none
from connector.core.vocabulary import CORE_INCIDENT_STATES
from connector.rules.backtest.eventlog import read_events
from connector.rules.backtest.replay import SimulationContext, observations_from_events
from connector.rules.book import RuleBook, describe_checks, eligibility
from connector.rules.conditions import Context, SimpleContext
from connector.store.db import utcnow
from connector.sync.fields import ELIGIBILITY_FIELDS, fields_of_rule, incident_fields, rule_fields
from connector.sync.rule_context import RecentIncidents, StoreContext


def incident_from_json(
    path: Path, incident_states: Mapping[str, str] = CORE_INCIDENT_STATES, wanted: Collection[str] = ()
) -> IncidentFile:
    """The incident in a JSON file, read as the daemon would read it live (:mod:`connector.commands.incident_file`).

    ``wanted``: the fields the rules read (notes concern those only).

    Raises:
        OSError: the file cannot be read.
        ValueError: the file is not JSON describing one incident.
    """
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    return read_incident(data, default_number=path.stem, incident_states=incident_states, wanted=wanted)


def file_context(book: RuleBook, incident: Incident, now: datetime) -> SimpleContext:
    """The memory a file cannot carry, assumed from its timestamps.

    Every ``for:`` condition that holds has held since the version's ``sys_updated_on``, and an
    unassigned incident has been so since ``opened_at``.
    """
    since = incident.sys_updated_on or servicenow_time_or_none(incident.get("opened_at"))
    held: dict[str, datetime] = {}
    if since is not None:
        held = {f"{incident.sys_id}:{key}": since for key, holds in book.held if holds(incident)}
    opened = servicenow_time_or_none(incident.get("opened_at"))
    if opened is not None and not incident.get("assigned_to"):
        held[f"{incident.sys_id}:unassigned"] = opened
    return SimpleContext(now, held)


def file_fields(book: RuleBook) -> list[str]:
    """The fields a file must give for a decision on it to be the live one.

    What the enabled rules read (:func:`connector.sync.fields.rule_fields`), plus ``sys_updated_on`` when
    a ``for:`` condition is assumed to hold since then (:func:`file_context`).
    """
    wanted = rule_fields(book.file)
    return [*wanted, "sys_updated_on"] if book.held else wanted


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
            read = incident_from_json(file, loaded.connector.servicenow.incident_states, file_fields(book))
        except (OSError, ValueError) as exc:
            print(f"cannot read {file}: {exc}", file=out)
            return 2
        assumed = file_context(book, read.incident, at or utcnow())
        return _print(book, read.incident, assumed, tree, out, read=read)
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
    from connector.telemetry.log import configure_logging

    configure_logging(loaded.connector.logging.format, "WARNING")
    live = Live(loaded, dry_run=True)
    runtime = live.runtime
    try:
        found = runtime.snow.incident_where("number", number, incident_fields(loaded))
        if found is None:
            print(f"{number}: no such incident", file=out)
            return 2
        return _print(
            book, found, StoreContext(now, runtime.store, RecentIncidents(runtime.store)), tree, out
        )
    finally:
        live.close()


def _print(
    book: RuleBook,
    incident: Incident,
    context: Context,
    tree: bool,
    out: TextIO,
    *,
    read: IncidentFile | None = None,
) -> int:
    """The evaluation; for a file (``read``) also how it was read and which fields it lacks."""
    eligible = eligibility(incident)
    facts = ", ".join(
        f"{name} {incident.get(name) or '-'}" for name in ("priority", "state", "major_incident_state")
    )
    print(f"{incident.number} ({facts}): {eligible.reason}", file=out)
    evaluate = eligible.eligible or tree
    explained = book.explain(incident, context, eligible, tree=tree) if evaluate else []
    without = ""
    if read is not None:
        for note in read.notes:
            print(f"note: {note}", file=out)
        missing = _read_by(book, read, [each.rule for each in explained if each.outcome is not None])
        if missing:
            count = f"{len(missing)} field{'s' if len(missing) > 1 else ''}"
            names = ", ".join(missing)
            print(f"warning: the file lacks {count} the rules read, taken as empty: {names}", file=out)
            without = f", made without {names}"
    if not evaluate:
        print(f"Decision: not evaluated{without}", file=out)
        return 0
    decision = book.decide(incident, context, eligible)
    for each in explained:
        rule = each.rule
        if each.outcome is None:
            print(f"{each.index}. {rule.name}: skipped ({each.note})", file=out)
            continue
        verdict = f"MATCH -> {rule.then.action}" if each.outcome.matched else "no match"
        print(f"{each.index}. {rule.name}: {verdict} - {rule.description}", file=out)
        for line in describe_checks(each.outcome.checks):
            print(f"     {line}", file=out)
    if decision.rule is None:
        verdict = "no rule matched" if eligible.eligible else "not evaluated"
        print(f"Decision: {verdict}{without}", file=out)
    else:
        mode = decision.mode(book.settings.mode)
        dry = " (dry run)" if decision.dry_run(book.settings.dry_run) else ""
        print(f"Decision: {decision.action} by rule {decision.rule.name} ({mode}){dry}{without}", file=out)
    return 0


def _read_by(book: RuleBook, read: IncidentFile, evaluated: Sequence[Rule]) -> list[str]:
    """The fields a file lacks that the decision depended on, in order.

    The evaluated rules' fields, the eligibility columns, and for ``for:`` conditions
    ``sys_updated_on`` unless ``opened_at`` stands in for it (:func:`file_context`).
    """
    fields = [*(name for rule in evaluated for name in fields_of_rule(rule)), *ELIGIBILITY_FIELDS]
    if any(_holds_for(rule) for rule in evaluated) and "opened_at" not in read.given:
        fields.append("sys_updated_on")
    return read.missing(dict.fromkeys(fields))


def _holds_for(rule: Rule) -> bool:
    return any(
        isinstance(node, FieldCondition) and node.held_for is not None
        for _loc, node in walk_conditions(rule.when, ())
    )
