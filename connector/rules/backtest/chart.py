"""A back-test's result as a chart: bare SVG, or a self-contained HTML page around it. Pure.

Per ISO week, two bars side by side: the decisions, stacked by rule (``<g class="week">``), and
the incidents that reached priority 1 that week (``<g class="p1">``), caught by a decision (solid)
or missed (outlined), each bar's tooltip naming the incidents. The page adds the headline figures
and the lists of caught and missed P1 incidents. No script, nothing fetched from the network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from connector.rules.backtest.report import as_what, duration_text, period_text
from connector.rules.backtest.summary import BacktestResult, CaughtP1, MissedP1, iso_week

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
P1_CAUGHT, P1_MISSED = "#333333", "#ffffff"
"""Caught P1s solid dark, missed ones outlined: apart from every rule colour, and in greyscale."""
SLOT, BAR = 26, 11
"""Width of one week, and of each of its two bars."""


def chart_svg(result: BacktestResult) -> str:
    """Decisions per ISO week and rule beside the week's P1 incidents (caught, missed), with a legend."""
    weeks, rules, p1 = result.weeks, result.rules, result.p1
    caught_in, missed_in = _p1_weeks(weeks, p1.caught_incidents), _p1_weeks(weeks, p1.missed_incidents)
    left, top, plot_h = 56, 40, 240
    entries = len(rules) + 2
    width = max(640, left + SLOT * max(len(weeks), 1) + 40)
    height = top + plot_h + 90 + 20 * entries + 10
    totals = [sum(r.per_week.get(week, 0) for r in rules) for week in weeks]
    highest = max([*totals, *(len(caught_in[w]) + len(missed_in[w]) for w in weeks)], default=0)
    step = max(1, math.ceil(highest / 5))
    y_max = step * max(1, math.ceil(highest / step))
    scale = plot_h / y_max
    base = top + plot_h
    right = left + SLOT * len(weeks)
    title = f"Decisions and P1 incidents per week - {result.run.source}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" role="img">',
        f"<title>{_x(title)}</title>",
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">{_x(title)}</text>',
    ]
    for tick in range(0, y_max + 1, step):
        y = base - tick * scale
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    label_every = max(1, math.ceil(len(weeks) / 26))
    for i, week in enumerate(weeks):
        x = left + i * SLOT
        parts.append(f'<g class="week" data-week="{week}"><title>{week}: {totals[i]} decisions</title>')
        y = float(base)
        for colour, rule in zip(_colours(len(rules)), rules, strict=True):
            count = rule.per_week.get(week, 0)
            if count:
                h = count * scale
                y -= h
                parts.append(
                    f'<rect x="{x + 1}" y="{y:.1f}" width="{BAR}" height="{h:.1f}" fill="{colour}">'
                    f"<title>{week} {_x(rule.name)}: {count}</title></rect>"
                )
        parts.append("</g>")
        parts += _p1_bar(week, x + 2 + BAR, base, scale, caught_in[week], missed_in[week])
        if i % label_every == 0:
            cx = x + SLOT / 2
            parts.append(
                f'<text x="{cx:.1f}" y="{base + 10}" text-anchor="end" '
                f'transform="rotate(-60 {cx:.1f} {base + 10})">{week}</text>'
            )
    parts += [
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{base}" stroke="#333"/>',
        f'<line x1="{left}" x2="{right}" y1="{base}" y2="{base}" stroke="#333"/>',
        f'<text x="14" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.0f})">decisions / P1 incidents</text>',
        f'<text x="{(left + right) / 2:.0f}" y="{base + 75}" text-anchor="middle">ISO week</text>',
    ]
    legend = [
        *(
            ("rule", colour, f"{rule.name} ({rule.decisions} decisions)")
            for colour, rule in zip(_colours(len(rules)), rules, strict=True)
        ),
        ("p1-caught", P1_CAUGHT, f"P1 incidents caught by a decision ({p1.caught}), right of the decisions"),
        ("p1-missed", P1_MISSED, f"P1 incidents missed ({p1.missed}), on top of the caught ones"),
    ]
    legend_top = base + 95
    for i, (series, colour, label) in enumerate(legend):
        y = legend_top + 20 * i
        parts.append(
            f'<g class="legend" data-series="{series}"><rect x="{left}" y="{y - 10}" width="12" height="12" '
            f'fill="{colour}" stroke="#333"/><text x="{left + 18}" y="{y}">{_x(label)}</text></g>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _p1_bar(
    week: str, x: float, base: float, scale: float, caught: list[str], missed: list[str]
) -> list[str]:
    """One week's P1 incidents: caught (solid) at the bottom, missed (outlined) above."""
    named = [f"caught {', '.join(caught)}" if caught else "", f"missed {', '.join(missed)}" if missed else ""]
    count = len(caught) + len(missed)
    tip = f"{week}: {count} P1 incident{'' if count == 1 else 's'}" + "".join(f"; {n}" for n in named if n)
    parts = [
        f'<g class="p1" data-week="{week}" data-caught="{len(caught)}" data-missed="{len(missed)}">'
        f"<title>{_x(tip)}</title>"
    ]
    y = base
    for kind, colour, numbers in (("p1-caught", P1_CAUGHT, caught), ("p1-missed", P1_MISSED, missed)):
        if numbers:
            h = len(numbers) * scale
            y -= h
            parts.append(
                f'<rect class="{kind}" x="{x:.1f}" y="{y:.1f}" width="{BAR}" height="{h:.1f}" '
                f'fill="{colour}" stroke="#333"/>'
            )
    parts.append("</g>")
    return parts


def chart_html(result: BacktestResult) -> str:
    """A self-contained page: the headline figures, :func:`chart_svg`, the caught and missed P1 incidents."""
    run, p1 = result.run, result.p1
    summary = (
        f"{run.events:,} events of {run.incidents:,} incidents, {period_text(run.start, run.end)}. "
        f"{sum(r.decisions for r in result.rules):,} decisions; {p1.caught:,} of {p1.reached:,} "
        f"incidents that reached P1 caught; {p1.decisions_not_p1:,} decisions on incidents never at P1."
    )
    note = f"<p>{_x(run.note)}</p>\n" if run.note else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>mim-connector rules back-test - {_x(run.source)}</title>\n"
        "<style>body{font-family:sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;font-size:13px}"
        "th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
        "</style>\n</head>\n<body>\n"
        f"<h1>Promotion rules back-test</h1>\n<p>{_x(summary)}</p>\n{note}"
        f"{chart_svg(result)}{_caught_table(p1.caught_incidents)}{_missed_table(p1.missed_incidents)}"
        "</body>\n</html>\n"
    )


def _caught_table(caught: Sequence[CaughtP1]) -> str:
    rows = [
        (
            c.number,
            c.short_description,
            f"{c.opened_at:%Y-%m-%d %H:%M}",
            f"{c.p1_at:%Y-%m-%d %H:%M}",
            f"{c.decided_at:%Y-%m-%d %H:%M}",
            duration_text(c.seconds_from_open),
            duration_text(c.lead_seconds, signed=True),
            f"{c.rule} ({c.action})",
            as_what(c),
        )
        for c in caught
    ]
    headers = ("incident", "short description", "opened", "reached P1", "decided", "after open", "vs P1")
    return _table(f"P1 incidents caught ({len(caught)})", (*headers, "rule", "as"), rows, "p1-caught")


def _missed_table(missed: Sequence[MissedP1]) -> str:
    rows = []
    for m in missed:
        why = [f"{n.rule}: ✗ {c.description} — actual {c.actual}" for n in m.nearest for c in n.failed]
        rows.append(
            (
                m.number,
                m.short_description,
                f"{m.opened_at:%Y-%m-%d %H:%M}",
                f"{m.p1_at:%Y-%m-%d %H:%M}",
                "\n".join(why) if why else m.detail,
            )
        )
    headers = ("incident", "short description", "opened", "reached P1", "why not (nearest rules)")
    return _table(f"P1 incidents missed ({len(missed)})", headers, rows, "p1-missed")


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], kind: str) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_x(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_x(cell).replace(chr(10), '<br>')}</td>" for cell in row) + "</tr>\n"
        for row in rows
    )
    return f'<h2>{_x(title)}</h2>\n<table class="{kind}">\n<tr>{head}</tr>\n{body}</table>\n'


def render_chart(result: BacktestResult, suffix: str) -> str:
    """The chart for a file ending in ``suffix``: ``.svg`` gets bare SVG, anything else the HTML page."""
    return chart_svg(result) if suffix.lower() == ".svg" else chart_html(result)


def _p1_weeks(
    weeks: Sequence[str], incidents: Sequence[CaughtP1] | Sequence[MissedP1]
) -> dict[str, list[str]]:
    """Incident numbers by the ISO week they reached priority 1."""
    out: dict[str, list[str]] = {week: [] for week in weeks}
    for incident in incidents:
        out.setdefault(iso_week(incident.p1_at), []).append(incident.number)
    return out


def _colours(count: int) -> list[str]:
    return [PALETTE[i % len(PALETTE)] for i in range(count)]


def _x(text: str) -> str:
    return html.escape(text, quote=True)
