"""The short report a scenario run prints: what was injected, what the checker found, how it settled."""

from __future__ import annotations

from tests.scenarios.checker import CATEGORIES
from tests.scenarios.scenario import Outcome

REQUIRED = (
    "0 duplicate issues, 0 duplicate or lost comments, 0 lost field changes, 0 leaks, "
    "convergence within 3 poll cycles, 0 writes in 10 idle cycles, 0 requests before Retry-After"
)


def verdicts(outcome: Outcome) -> dict[str, bool]:
    """Each required result of the gate, by name."""
    findings = outcome.findings.counts
    convergence = outcome.convergence
    return {
        "no duplicate issues": findings["issues:duplicated"] == 0,
        "no lost or unexpected issues": findings["issues:lost"] + findings["issues:unexpected"] == 0,
        "no duplicate comments": findings["comments-out:duplicated"] + findings["comments-in:duplicated"]
        == 0,
        "no lost comments": findings["comments-out:lost"] + findings["comments-in:lost"] == 0,
        "no unexpected comments": findings["comments-out:unexpected"] + findings["comments-in:unexpected"]
        == 0,
        "one link note per issue": findings["link-notes:wrong"] == 0,
        "no lost field changes": findings["fields:lost"] == 0,
        "no duplicate problems": findings["problems:duplicated"] == 0,
        "no leaks": findings["leaks"] == 0,
        "oracle covers every link": findings["oracle:gap"] == 0,
        "converged within 3 poll cycles": convergence is not None and convergence.cycles <= 3,
        "no writes in 10 idle cycles": not outcome.idle_writes,
        "no request before Retry-After": not outcome.throttle.violations
        and not outcome.throttle.across_restart,
    }


def render(outcome: Outcome) -> str:
    """The report as text (a few dozen lines; details of findings capped)."""
    tally = outcome.tally
    kills = {k.removeprefix("kill:"): n for k, n in tally.events.items() if k.startswith("kill:")}
    convergence = outcome.convergence
    lines = [
        f"Proof under faults: seed {outcome.seed}, {_daemons(outcome)}, {outcome.seconds:.0f}s, "
        f"{outcome.incidents} incidents, {outcome.issues} issues, "
        f"{sum(outcome.actions.values())} actions by people ({sum(outcome.refused.values())} refused)",
        f"  connector requests: {_pairs(outcome.requests)}",
        f"  request faults fired: {outcome.injected} ({_pairs(outcome.faults)})",
        f"  other faults: {tally.events['skew']} clock skews (+-90 s), {tally.events['index-lag']} index-lag "
        f"changes, {tally.kills} SIGKILLs ({_pairs(kills)}), {tally.epochs} fault epochs",
        f"  throttled: {outcome.throttle.throttled} 429s ({_pairs(outcome.throttle.by_scope)}); "
        f"{len(outcome.throttle.violations)} requests before Retry-After, "
        f"{len(outcome.throttle.across_restart)} more after a restart",
        "  checker: "
        + ", ".join(f"{name} {outcome.findings.counts[name]}" for name in CATEGORIES)
        + f" (checked {_pairs(outcome.findings.checked)})",
    ]
    if convergence is not None:
        lines.append(
            f"  convergence after the last fault: {convergence.cycles} poll cycles "
            f"({convergence.seconds:.1f}s, {convergence.writes} writes); "
            f"writes in 10 idle cycles: {len(outcome.idle_writes)}"
        )
    if outcome.kept is not None:
        lines.append(f"  journals, daemon log, store and story histories kept in {outcome.kept}")
    failed = [name for name, ok in verdicts(outcome).items() if not ok]
    lines.append(f"  verdict: {'PASS' if not failed else 'FAIL: ' + ', '.join(failed)}")
    details = [*outcome.findings.details, *outcome.throttle.violations, *outcome.throttle.across_restart]
    details += [f"idle write: {w.method} {w.path}" for w in outcome.idle_writes]
    lines += [f"    {line}" for line in details[:40]]
    if len(details) > 40:
        lines.append(f"    ... and {len(details) - 40} more")
    return "\n".join(lines)


def _daemons(outcome: Outcome) -> str:
    if outcome.size.instances == 1:
        return f"one daemon on {outcome.store}"
    killed = "+".join(str(n) for n in outcome.kills_by_instance)
    return f"{outcome.size.instances} instances on {outcome.store} (SIGKILLs {killed})"


def _pairs(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"
