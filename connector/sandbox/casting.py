"""Cast a replayed incident log onto the demo world, so that routing and promotion rules have parts to play.

The shipped log is anonymised: its groups (``Group 56``), categories and CIs match nothing in the
supplier mappings, so a faithful replay mirrors nothing. :func:`cast_demo` gives a share of the
incidents the demo world's names (seeded by :mod:`connector.sandbox.servicenow.seed`), the same
on every run: parts are dealt in the order of a hash of the incident number, never at random.

* ``critical``: a few incidents that reach priority 1 run on the most-critical CI ``web-lb-01``
  (vendor ACME): rule ``critical-ci-p1`` proposes them and ACME gets them;
* ``payments-major``: a few that reach priority 1 or 2 affect business service ``Payments`` on
  the Globex WAN link: ``payments-outage`` promotes them (engaging Initech), and as accepted
  major incidents on a Globex CI they go to Globex too;
* ``cluster``: five incidents open at the same time share the CI ``storage-array-02``:
  ``ci-cluster`` proposes the first, the others become its children;
* ``acme`` / ``payments``: of the rest, about a quarter are assigned to ``ACME Hosting L2``
  (ACME's routing) and about one in eight that stay below priority 2 affect ``Payments``
  (Initech's routing, with no rule firing).

Only references change (assignment group, CI, business service); timing, states, priorities
and every other field stay as logged, and an unassigned event stays unassigned. Few incidents
land on critical CIs on purpose: the rules' ``max_proposals_per_hour`` is a guardrail, and the
demo stays well within it. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from connector.core.vocabulary import FINISHED_STATES
from connector.rules.backtest.eventlog import IncidentEvent
from connector.sandbox.servicenow.rules import priority_of

Role = Literal["critical", "payments-major", "cluster", "acme", "payments"]
CastMode = Literal["none", "demo"]
NEVER_OPEN = 9
"""The peak priority of an incident the log never shows open (it sorts after every real one)."""


@dataclass(frozen=True)
class Part:
    """What an incident playing a role is given. ``assignment_group`` applies only where one is logged."""

    assignment_group: str = ""
    cmdb_ci: str = ""
    business_service: str = ""


PARTS: Mapping[Role, Part] = MappingProxyType(
    {
        "critical": Part("ACME Hosting L2", cmdb_ci="web-lb-01"),
        "payments-major": Part("Payments Team", cmdb_ci="wan-link-fra", business_service="Payments"),
        "cluster": Part("ACME Hosting L2", cmdb_ci="storage-array-02"),
        "acme": Part("ACME Hosting L2"),
        "payments": Part("Payments Team", business_service="Payments"),
    }
)


@dataclass(frozen=True)
class Casting:
    """How many incidents play each part (fewer when the log has fewer that qualify)."""

    critical: int = 2
    payments_major: int = 2
    cluster: int = 5
    acme_percent: int = 25
    payments_percent: int = 12


def stable_hash(number: str) -> int:
    """A hash of an incident number that is the same on every run and platform."""
    return int(hashlib.sha256(number.encode()).hexdigest()[:12], 16)


def cast_demo(events: Sequence[IncidentEvent], casting: Casting = Casting()) -> list[IncidentEvent]:
    """``events`` with the references of the incidents :func:`deal` gives a part replaced, order kept."""
    roles = deal(events, casting)
    return [
        _recast(event, PARTS[roles[event.number]]) if event.number in roles else event for event in events
    ]


def deal(events: Sequence[IncidentEvent], casting: Casting = Casting()) -> dict[str, Role]:
    """Incident number -> role. Deterministic: depends only on the events, never on the run."""
    history = _by_incident(events)
    peak = {number: _peak_priority(evs) for number, evs in history.items()}
    order = sorted(history, key=lambda number: (stable_hash(number), number))
    roles: dict[str, Role] = {}

    def take(role: Role, count: int, wanted: Iterable[str]) -> None:
        for number in [n for n in wanted if n not in roles][:count]:
            roles[number] = role

    take("critical", casting.critical, (n for n in order if peak[n] == 1))
    take("payments-major", casting.payments_major, (n for n in order if peak[n] <= 2))
    take("cluster", casting.cluster, _concurrent(history, order, peak, roles, casting.cluster))
    for number in order:
        if number in roles:
            continue
        bucket = stable_hash(number) % 100
        if bucket < casting.acme_percent:
            roles[number] = "acme"
        elif bucket < casting.acme_percent + casting.payments_percent and 3 <= peak[number] < NEVER_OPEN:
            roles[number] = "payments"
    return roles


def _by_incident(events: Iterable[IncidentEvent]) -> dict[str, list[IncidentEvent]]:
    history: dict[str, list[IncidentEvent]] = {}
    for event in sorted(events, key=lambda e: (e.updated_at, e.mod_count)):
        history.setdefault(event.number, []).append(event)
    return history


def _peak_priority(events: Iterable[IncidentEvent]) -> int:
    """The highest priority (lowest number) the incident has while open, as ServiceNow computes it."""
    return min(
        (
            int(priority_of(e.fields.get("impact", ""), e.fields.get("urgency", "")) or 5)
            for e in events
            if e.fields.get("state") not in FINISHED_STATES
        ),
        default=NEVER_OPEN,
    )


def _concurrent(
    history: Mapping[str, list[IncidentEvent]],
    order: Sequence[str],
    peak: Mapping[str, int],
    taken: Mapping[str, Role],
    size: int,
) -> list[str]:
    """``size`` incidents below priority 2, all still open when the last of them opens, or none.

    A cluster only gathers members the rules may still act on: ones resolved before the last
    member arrives would leave the major incident without children. The first incident in hash
    order that can lead such a group (with the incidents opened right after it) is chosen.
    """
    if size < 1:
        return []
    opened = sorted(
        (n for n in history if n not in taken and 3 <= peak[n] < NEVER_OPEN),
        key=lambda n: (history[n][0].updated_at, n),
    )
    for lead in (n for n in order if n in opened):
        start = opened.index(lead)
        group = opened[start : start + size]
        if len(group) < size:
            continue
        last_opening = history[group[-1]][0].updated_at
        if all(_open_at(history[n], last_opening) for n in group):
            return group
    return []


def _open_at(events: Sequence[IncidentEvent], moment: datetime) -> bool:
    state = next((e.fields.get("state") for e in reversed(events) if e.updated_at <= moment), None)
    return state is not None and state not in FINISHED_STATES


def _recast(event: IncidentEvent, part: Part) -> IncidentEvent:
    references = dict(event.references)
    if part.assignment_group and references.get("assignment_group"):
        references["assignment_group"] = part.assignment_group
    if part.cmdb_ci:
        references["cmdb_ci"] = part.cmdb_ci
    if part.business_service:
        references["business_service"] = part.business_service
    return replace(event, references=MappingProxyType(references))
