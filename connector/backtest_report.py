"""A back-test's result for people (aligned text), for programs (JSON) and as a chart (SVG or HTML). Pure.

The chart is a self-contained page: inline SVG, stacked bars of decisions per ISO week and rule,
no script and nothing fetched from the network.
"""

from __future__ import annotations

import html
import json
import math
import textwrap
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from connector.backtest_summary import BacktestResult, RuleSummary, TimeStats
from connector.config.types import format_duration

SCHEMA_VERSION = 1
HOW_TO_READ = (
    "How to read this: decisions are what each rule would have written had it been live over this "
    "history (capped: held back by a cap). Many 'not P1' decisions mean a rule is too loose, many "
    "missed P1s that it is too strict or too slow. Tighten until 'major' stays rare, then turn dry_run off."
)
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


# --- text -------------------------------------------------------------------------------------------


def render_text(result: BacktestResult) -> str:
    """The human report: header, a summary table, one section per rule, the P1 comparison, weeks."""
    run, settings = result.run, result.settings
    lines = [
        f"Back-test of {len(result.rules)} promotion rules over {run.source or 'the given history'}",
        f"Replayed {run.events:,} events of {run.incidents:,} incidents, {_period(run.start, run.end)} "
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
            _duration(r.time_to_decision.median),
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
        ("median lead time (P1 time - decision)", _duration(lead, signed=True) + sense),
        ("missed", f"{p1.missed:,}"),
        ("decisions on incidents never at P1", f"{p1.decisions_not_p1:,} of {p1.decisions:,}"),
    ]
    return ["Comparison with history (priority 1 as recorded)", *_indent(table(("", ""), rows, header=False))]


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
    return f"median {_duration(stats.median)}, p90 {_duration(stats.p90)}, max {_duration(stats.max)}"


def _duration(seconds: float | None, *, signed: bool = False) -> str:
    if seconds is None:
        return "-"
    text = format_duration(timedelta(seconds=round(abs(seconds))))
    sign = "-" if seconds < 0 else ("+" if signed and seconds > 0 else "")
    return sign + text


def _period(start: datetime | None, end: datetime | None) -> str:
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


def _stats_json(stats: TimeStats) -> dict[str, Any]:
    return {"count": stats.count, "median": stats.median, "p90": stats.p90, "max": stats.max}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


# --- chart --------------------------------------------------------------------------------------------


def chart_svg(result: BacktestResult) -> str:
    """Decisions per ISO week, one stacked bar per week (a ``<g class="week">`` each), one colour per rule."""
    weeks, rules = result.weeks, result.rules
    bar, left, top, plot_h = 14, 56, 40, 240
    legend_h = 20 * len(rules) + 10
    width = max(640, left + bar * max(len(weeks), 1) + 40)
    height = top + plot_h + 90 + legend_h
    totals = [sum(r.per_week.get(week, 0) for r in rules) for week in weeks]
    step = max(1, math.ceil(max(totals, default=0) / 5))
    y_max = step * max(1, math.ceil(max(totals, default=0) / step))
    scale = plot_h / y_max
    base = top + plot_h
    title = f"Decisions per week - {result.run.source}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">',
        f"<title>{_x(title)}</title>",
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{_x(title)}</text>',
    ]
    for tick in range(0, y_max + 1, step):
        y = base - tick * scale
        parts.append(
            f'<line x1="{left}" x2="{left + bar * len(weeks)}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    label_every = max(1, math.ceil(len(weeks) / 26))
    for i, week in enumerate(weeks):
        x = left + i * bar
        parts.append(f'<g class="week" data-week="{week}"><title>{week}: {totals[i]} decisions</title>')
        y = float(base)
        for colour, rule in zip(_colours(len(rules)), rules, strict=True):
            count = rule.per_week.get(week, 0)
            if count:
                h = count * scale
                y -= h
                parts.append(
                    f'<rect x="{x + 1}" y="{y:.1f}" width="{bar - 2}" height="{h:.1f}" fill="{colour}">'
                    f"<title>{week} {_x(rule.name)}: {count}</title></rect>"
                )
        parts.append("</g>")
        if i % label_every == 0:
            cx = x + bar / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{base + 10}" text-anchor="end" '
                f'transform="rotate(-60 {cx:.1f} {base + 10})">{week}</text>'
            )
    parts += [
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{base}" stroke="#333"/>',
        f'<line x1="{left}" x2="{left + bar * len(weeks)}" y1="{base}" y2="{base}" stroke="#333"/>',
        f'<text x="14" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.0f})">decisions</text>',
        f'<text x="{left + bar * len(weeks) / 2:.0f}" y="{base + 75}" text-anchor="middle">ISO week</text>',
    ]
    legend_top = base + 95
    for i, (colour, rule) in enumerate(zip(_colours(len(rules)), rules, strict=True)):
        y = legend_top + 20 * i
        parts.append(
            f'<g class="legend"><rect x="{left}" y="{y - 10}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{left + 18}" y="{y}">{_x(rule.name)} ({rule.decisions} decisions)</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def chart_html(result: BacktestResult) -> str:
    """A self-contained page holding :func:`chart_svg` and the headline figures."""
    run, p1 = result.run, result.p1
    summary = (
        f"{run.events:,} events of {run.incidents:,} incidents, {_period(run.start, run.end)}. "
        f"{sum(r.decisions for r in result.rules):,} decisions; {p1.caught:,} of {p1.reached:,} "
        f"incidents that reached P1 caught; {p1.decisions_not_p1:,} decisions on incidents never at P1."
    )
    note = f"<p>{_x(run.note)}</p>\n" if run.note else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>mim-connector rules back-test - {_x(run.source)}</title>\n"
        "<style>body{font-family:sans-serif;margin:2em;color:#222}</style>\n</head>\n<body>\n"
        f"<h1>Promotion rules back-test</h1>\n<p>{_x(summary)}</p>\n{note}"
        f"{chart_svg(result)}</body>\n</html>\n"
    )


def render_chart(result: BacktestResult, suffix: str) -> str:
    """The chart for a file ending in ``suffix``: ``.svg`` gets bare SVG, anything else the HTML page."""
    return chart_svg(result) if suffix.lower() == ".svg" else chart_html(result)


def _colours(count: int) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(count)]


def _x(text: str) -> str:
    return html.escape(text, quote=True)
