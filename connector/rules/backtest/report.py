"""A back-test's result for people (aligned text) and for programs (JSON). Pure.

The chart (SVG or an HTML page) is :mod:`connector.rules.backtest.chart`.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from connector.config.types import format_duration
from connector.rules.backtest.summary import (
    BacktestResult,
    CaughtP1,
    MissedP1,
    NearMiss,
    RuleSummary,
    TimeStats,
)

SCHEMA_VERSION = 1
HOW_TO_READ = (
    "How to read this: decisions are what each rule would have written had it been live over this "
    "history (capped: held back by a cap). Many 'not P1' decisions mean a rule is too loose, many "
    "missed P1s that it is too strict or too slow. Tighten until 'major' stays rare, then turn dry_run off."
)


# --- text -------------------------------------------------------------------------------------------


def render_text(result: BacktestResult) -> str:
    """The human report: header, a summary table, one section per rule, the P1 comparison, weeks."""
    run, settings = result.run, result.settings
    lines = [
        f"Back-test of {len(result.rules)} promotion rules over {run.source or 'the given history'}",
        f"Replayed {run.events:,} events of {run.incidents:,} incidents, {period_text(run.start, run.end)} "
        f"({len(result.weeks)} weeks), with a simulated clock",
        f"Evaluations: {run.evaluations:,} ({run.rechecks:,} at re-check times between events)",
        f"Settings: dry_run {_on(bool(settings['dry_run']))}, mode {settings['mode']}, "
        f"at most {settings['max_proposals_per_hour']} decisions per hour",
    ]
    if run.note:
        lines.append(f"Note: {run.note}")
    lines += ["", "Summary", *_indent(_summary_table(result.rules))]
    for rule in result.rules:
        lines += ["", *_rule_section(rule, len(result.weeks))]
    lines += ["", *_p1_section(result)]
    if result.p1.caught_incidents:
        lines += ["", *caught_section(result.p1.caught_incidents)]
    if result.p1.missed_incidents:
        lines += ["", *missed_section(result.p1.missed_incidents)]
    weeks = _weeks_table(result)
    if weeks:
        lines += ["", "Decisions per ISO week (weeks with at least one)", *_indent(weeks)]
    lines += ["", *textwrap.wrap(HOW_TO_READ, 100)]
    return "\n".join(lines) + "\n"


def _summary_table(rules: Sequence[RuleSummary]) -> list[str]:
    headers = (
        *("#", "rule", "action", "proposals", "promotions", "dry-run", "capped", "children"),
        *("on P1", "not P1", "median open->decision"),
    )
    rows = [
        (
            str(r.index),
            r.name + ("" if r.enabled else " (disabled)"),
            r.action,
            *(f"{n:,}" for n in (r.proposals, r.promotions, r.dry_run_decisions, r.capped, r.children)),
            *(f"{n:,}" for n in (r.on_p1, r.not_p1)),
            duration_text(r.time_to_decision.median),
        )
        for r in rules
    ]
    return table(headers, rows, right=(0, 3, 4, 5, 6, 7, 8, 9))


def _rule_section(rule: RuleSummary, weeks: int) -> list[str]:
    cap = f"at most {rule.max_per_hour} per hour" if rule.max_per_hour else "no per-rule cap"
    lines = [
        f"Rule {rule.index}: {rule.name} - {rule.description}",
        f"  {rule.action} ({rule.mode}), dry-run {_on(rule.dry_run)}, {cap}"
        + ("" if rule.enabled else ", disabled"),
    ]
    if not rule.decisions and not rule.capped:
        return [*lines, "  no decision over this history"]
    new_parents = f", {rule.new_parents:,} new parent incidents" if rule.new_parents else ""
    lines += [
        f"  proposals {rule.proposals:,}, promotions {rule.promotions:,} (dry-run {rule.dry_run_decisions:,}), "
        f"capped {rule.capped:,}, children {rule.children:,}{new_parents}",
        f"  time from open to decision: {_stats(rule.time_to_decision)}",
        f"  against history: {rule.on_p1:,} on incidents that reached P1, "
        f"{rule.not_p1:,} on incidents that never did",
    ]
    if rule.per_week:
        busiest = sorted(rule.per_week.items(), key=lambda item: (-item[1], item[0]))[:3]
        lines.append(
            f"  weeks with a decision: {len(rule.per_week)} of {weeks}; busiest "
            + ", ".join(f"{week} ({count})" for week, count in busiest)
        )
    top_rows = [
        (
            ci[0] if ci else "",
            str(ci[1]) if ci else "",
            group[0] if group else "",
            str(group[1]) if group else "",
        )
        for ci, group in _pairs(rule.top_cis, rule.top_groups)
    ]
    lines += _indent(table(("top CIs", "", "top groups", ""), top_rows, right=(1, 3)))
    return lines


def _p1_section(result: BacktestResult) -> list[str]:
    p1 = result.p1
    share = f" ({p1.caught / p1.reached:.0%})" if p1.reached else ""
    lead = p1.lead_time.median
    sense = "" if lead is None else " (before P1)" if lead > 0 else " (after P1)" if lead < 0 else " (at P1)"
    rows = [
        ("incidents that reached P1", f"{p1.reached:,}"),
        ("caught by a decision", f"{p1.caught:,}{share}, {p1.caught_as_child:,} as children"),
        ("caught before reaching P1", f"{p1.caught_before:,}"),
        ("median lead time (P1 time - decision)", duration_text(lead, signed=True) + sense),
        ("missed", f"{p1.missed:,}"),
        ("decisions on incidents never at P1", f"{p1.decisions_not_p1:,} of {p1.decisions:,}"),
    ]
    return ["Comparison with history (priority 1 as recorded)", *_indent(table(("", ""), rows, header=False))]


def caught_section(caught: Sequence[CaughtP1]) -> list[str]:
    """The P1 incidents a decision covered: when, by which rule, how long after opening and P1."""
    rows = [
        (
            c.number,
            _minute(c.opened_at),
            _minute(c.p1_at),
            _minute(c.decided_at),
            duration_text(c.seconds_from_open),
            duration_text(c.lead_seconds, signed=True),
            f"{c.rule} ({c.action})",
            as_what(c),
        )
        for c in caught
    ]
    headers = ("incident", "opened", "reached P1", "decided", "after open", "vs P1", "rule", "as")
    title = f"P1 incidents caught ({len(caught):,}), in the order they reached P1 (vs P1: + before, - after)"
    return [title, *_indent(table(headers, rows, right=(4, 5)))]


def missed_section(missed: Sequence[MissedP1]) -> list[str]:
    """The P1 incidents no decision covered, and why: the nearest rules' blocking conditions.

    Identical explanations are told once, as numbered notes under the table.
    """
    notes: dict[tuple[tuple[str, tuple[tuple[str, str], ...]], ...], list[str]] = {}
    rows = []
    for m in missed:
        why = m.detail
        if m.nearest:
            key = tuple((n.rule, tuple((c.description, c.actual) for c in n.failed)) for n in m.nearest)
            numbers = notes.setdefault(key, [])
            numbers.append(m.number)
            why = f"({list(notes).index(key) + 1}) {_nearest_summary(m.nearest)}"
        checked = _minute(m.nearest[0].at) if m.nearest else "-"
        row = (m.number, _minute(m.opened_at), _minute(m.p1_at), checked, why, _short(m.short_description))
        rows.append(row)
    described = any(m.short_description for m in missed)
    headers = (
        *("incident", "opened", "reached P1", "last check at P1", "why not"),
        *(("short description",) if described else ()),
    )
    lines = [
        f"P1 incidents missed ({len(missed):,}), in the order they reached P1",
        *_indent(table(headers, [row[: len(headers)] for row in rows])),
    ]
    if notes:
        lines.append("  Why not: the rules fewest conditions away at the incident's last check at P1")
    for index, (key, numbers) in enumerate(notes.items(), start=1):
        count = f"{len(numbers)} incident{'s' if len(numbers) > 1 else ''}"
        lines.append(f"  ({index}) {count}: " + ", ".join(numbers[:8]) + (", …" if len(numbers) > 8 else ""))
        width = max(len(rule) for rule, _checks in key)
        for rule, checks in key:
            for i, (description, actual) in enumerate(checks):
                lines.append(
                    f"      {(rule if i == 0 else '').ljust(width)}  ✗ {description} — actual {actual}"
                )
    return lines


def as_what(caught: CaughtP1) -> str:
    """``major incident``, ``child of INC…`` or ``child of a new parent``."""
    if not caught.as_child:
        return "major incident"
    return f"child of {caught.major}" if caught.major else "child of a new parent"


def _nearest_summary(nearest: Sequence[NearMiss]) -> str:
    fewest = len(nearest[0].failed)
    conditions = f"{fewest} condition{'s' if fewest != 1 else ''}"
    names = ", ".join(n.rule for n in nearest[:3]) + (f" (+{len(nearest) - 3})" if len(nearest) > 3 else "")
    return f"{names}: {conditions} short"


def _minute(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M}"


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _weeks_table(result: BacktestResult) -> list[str]:
    named = [r for r in result.rules if r.per_week]
    if not named:
        return []
    rows = []
    for week in result.weeks:
        counts = [r.per_week.get(week, 0) for r in named]
        if any(counts):
            rows.append((week, *(str(c) for c in counts), str(sum(counts))))
    headers = ("week", *(r.name for r in named), "total")
    return table(headers, rows, right=tuple(range(1, len(headers))))


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = (), header: bool = True
) -> list[str]:
    """Rows of text aligned in columns (``right``: indexes of right-aligned ones)."""
    shown = [list(headers), *map(list, rows)] if header else [list(row) for row in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(len(headers))]
    out = []
    for row in shown:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


def _indent(lines: Sequence[str]) -> list[str]:
    return [f"  {line}" if line else line for line in lines]


def _pairs(
    left: Sequence[tuple[str, int]], right: Sequence[tuple[str, int]]
) -> list[tuple[tuple[str, int] | None, tuple[str, int] | None]]:
    size = max(len(left), len(right))
    return [(left[i] if i < len(left) else None, right[i] if i < len(right) else None) for i in range(size)]


def _stats(stats: TimeStats) -> str:
    if not stats.count:
        return "-"
    return f"median {duration_text(stats.median)}, p90 {duration_text(stats.p90)}, max {duration_text(stats.max)}"


def duration_text(seconds: float | None, *, signed: bool = False) -> str:
    """Seconds as ``1h5m``; ``-`` for ``None``; negative with ``-``, positive with ``+`` when ``signed``."""
    if seconds is None:
        return "-"
    text = format_duration(timedelta(seconds=round(abs(seconds))))
    sign = "-" if seconds < 0 else ("+" if signed and seconds > 0 else "")
    return sign + text


def period_text(start: datetime | None, end: datetime | None) -> str:
    """``2016-03-01 08:00 to 2016-03-31 17:00 UTC``, or ``no events``."""
    if start is None or end is None:
        return "no events"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def _on(value: bool) -> str:
    return "on" if value else "off"


# --- JSON ---------------------------------------------------------------------------------------------


def to_json(result: BacktestResult) -> dict[str, Any]:
    """The result as JSON-ready data: stable keys, numbers as numbers, durations in seconds, times ISO 8601."""
    run, p1 = result.run, result.p1
    return {
        "schema_version": SCHEMA_VERSION,
        "source": run.source,
        "note": run.note,
        "period": {"start": _iso(run.start), "end": _iso(run.end), "weeks": list(result.weeks)},
        "incidents": run.incidents,
        "events": run.events,
        "evaluations": run.evaluations,
        "rechecks": run.rechecks,
        "settings": dict(result.settings),
        "rules": [_rule_json(rule) for rule in result.rules],
        "p1": {
            "reached": p1.reached,
            "caught": p1.caught,
            "caught_as_child": p1.caught_as_child,
            "caught_before": p1.caught_before,
            "missed": p1.missed,
            "lead_time_seconds": _stats_json(p1.lead_time),
            "decisions": p1.decisions,
            "decisions_not_p1": p1.decisions_not_p1,
            "caught_incidents": [_caught_json(c) for c in p1.caught_incidents],
            "missed_incidents": [_missed_json(m) for m in p1.missed_incidents],
        },
        "decisions": [
            {
                "rule": d.rule,
                "action": d.action,
                "mode": d.mode,
                "at": _iso(d.at),
                "trigger": d.trigger,
                "major": d.major,
                "members": list(d.members),
                "children": len(d.children),
                "seconds_from_open": d.seconds_from_open,
                "dry_run": d.dry_run,
                "ci": d.ci,
                "group": d.group,
            }
            for d in result.decisions
        ],
    }


def render_json(result: BacktestResult) -> str:
    """:func:`to_json` as indented text."""
    return json.dumps(to_json(result), indent=2) + "\n"


def _rule_json(rule: RuleSummary) -> dict[str, Any]:
    return {
        "index": rule.index,
        "name": rule.name,
        "description": rule.description,
        "action": rule.action,
        "mode": rule.mode,
        "enabled": rule.enabled,
        "dry_run": rule.dry_run,
        "max_per_hour": rule.max_per_hour,
        "decisions": rule.decisions,
        "proposals": rule.proposals,
        "promotions": rule.promotions,
        "dry_run_decisions": rule.dry_run_decisions,
        "capped": rule.capped,
        "children": rule.children,
        "new_parents": rule.new_parents,
        "time_to_decision_seconds": _stats_json(rule.time_to_decision),
        "per_week": dict(rule.per_week),
        "top_cis": [{"name": name, "count": count} for name, count in rule.top_cis],
        "top_groups": [{"name": name, "count": count} for name, count in rule.top_groups],
        "on_p1": rule.on_p1,
        "not_p1": rule.not_p1,
    }


def _caught_json(caught: CaughtP1) -> dict[str, Any]:
    return {
        "number": caught.number,
        "short_description": caught.short_description,
        "opened_at": _iso(caught.opened_at),
        "p1_at": _iso(caught.p1_at),
        "decided_at": _iso(caught.decided_at),
        "seconds_from_open": caught.seconds_from_open,
        "lead_time_seconds": caught.lead_seconds,
        "rule": caught.rule,
        "action": caught.action,
        "major": caught.major,
        "as_child": caught.as_child,
    }


def _missed_json(missed: MissedP1) -> dict[str, Any]:
    return {
        "number": missed.number,
        "short_description": missed.short_description,
        "opened_at": _iso(missed.opened_at),
        "p1_at": _iso(missed.p1_at),
        "reason": missed.reason,
        "detail": missed.detail,
        "evaluated_at": _iso(missed.nearest[0].at) if missed.nearest else None,
        "nearest_rules": [
            {
                "rule": near.rule,
                "failed": [{"condition": c.description, "actual": c.actual} for c in near.failed],
            }
            for near in missed.nearest
        ],
    }


def _stats_json(stats: TimeStats) -> dict[str, Any]:
    return {"count": stats.count, "median": stats.median, "p90": stats.p90, "max": stats.max}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None
