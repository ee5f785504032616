"""The request faults a scenario injects, as sandbox fault rules. Pure: choices in, rule JSON out.

A :class:`Target` is a class of requests the connector makes (a path regex, a method, whether
it writes); a fault *kind* is what happens to one of them:

=====================  ==========================================================================
``5xx``                answered 500/502/503/504 before the platform sees it (nothing applied)
``429-seconds``        429 with ``Retry-After: 1|2`` (and a Jira ``RateLimit-Reason``)
``429-http-date``      429 with an HTTP-date ``Retry-After`` 2 s ahead of the *server's* clock
``429-none``           429 without ``Retry-After`` (the connector's documented default applies)
``timeout``            the answer comes after the client's timeout; nothing applied
``timeout-applied``    a write is applied, its answer comes after the client's timeout
``drop``               the connection is closed before the platform sees the request
``drop-applied``       a write is applied, then the connection is closed (commit-then-drop)
``reset``              TCP reset before the platform sees the request
``reset-applied``      a write is applied, then the connection is reset
``502-applied``        a write is applied, a proxy answers 502 (the write's fate is unknown)
=====================  ==========================================================================

A 500/503 *after* a commit is not injected: the connector documents that platforms roll failed
writes back, so it treats those as "not applied" (``connector.core.errors.error_for_status``).
Every rule carries ``query`` :data:`~tests.scenarios.stage.NOT_HUMAN`: people are never faulted.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from tests.scenarios.stage import NOT_HUMAN

READ_KINDS = ("5xx", "429-seconds", "429-http-date", "429-none", "timeout", "drop", "reset")
WRITE_KINDS = (*READ_KINDS, "timeout-applied", "drop-applied", "reset-applied", "502-applied")
KINDS = WRITE_KINDS
WEIGHTS = {
    "5xx": 4.0,
    "drop": 3.0,
    "reset": 3.0,
    "drop-applied": 2.0,
    "reset-applied": 2.0,
    "502-applied": 2.0,
    "429-seconds": 1.0,
    "429-http-date": 1.0,
    "429-none": 0.5,
    "timeout": 1.0,
    "timeout-applied": 1.0,
}
"""How often each kind is picked: a 429 or a timeout stalls its scope for seconds, so those come
less often, or a run would spend its time waiting rather than recovering."""
JIRA_REASONS = ("jira-per-issue-on-write", "jira-burst-based", "")


@dataclass(frozen=True)
class Target:
    """A class of the connector's requests."""

    system: str
    name: str
    method: str
    path: str
    write: bool


def targets(sites: list[str]) -> list[Target]:
    """Every request class the connector sends, for each Jira site and for ServiceNow."""
    found = [
        Target("servicenow", "incident poll", "GET", r"^/api/now/table/incident$", False),
        Target("servicenow", "incident read", "GET", r"^/api/now/table/incident/[^/]+$", False),
        Target("servicenow", "journal read", "GET", r"^/api/now/table/sys_journal_field$", False),
        Target("servicenow", "problem read", "GET", r"^/api/now/table/problem", False),
        Target("servicenow", "incident write", "PATCH", r"^/api/now/table/incident/", True),
        Target("servicenow", "problem write", "PATCH", r"^/api/now/table/problem/", True),
        Target("servicenow", "problem create", "POST", r"^/api/now/table/problem$", True),
    ]
    for site in sites:
        api = rf"^/{site}/rest/api/2"
        found += [
            Target("jira", f"{site} search", "", api + r"/search", False),
            Target("jira", f"{site} issue read", "GET", api + r"/issue/[^/]+$", False),
            Target("jira", f"{site} transitions read", "GET", api + r"/issue/[^/]+/transitions$", False),
            Target("jira", f"{site} create", "POST", api + r"/issue$", True),
            Target("jira", f"{site} update", "PUT", api + r"/issue/[^/]+$", True),
            Target("jira", f"{site} comment", "POST", api + r"/issue/[^/]+/comment$", True),
            Target("jira", f"{site} transition", "POST", api + r"/issue/[^/]+/transitions$", True),
            Target("jira", f"{site} remote link", "POST", api + r"/issue/[^/]+/remotelink$", True),
        ]
    return found


def rule(
    kind: str,
    target: Target,
    rng: random.Random,
    *,
    server_now: datetime,
    timeout_ms: int,
    probability: float,
    count: int,
) -> dict[str, Any]:
    """The sandbox fault rule for ``kind`` on ``target`` (see the module docstring)."""
    base: dict[str, Any] = {
        "path": target.path,
        "query": NOT_HUMAN,
        "probability": probability,
        "count": count,
    }
    if target.method:
        base["method"] = target.method
    late = timeout_ms + 300
    if kind == "5xx":
        return base | {"status": rng.choice((500, 502, 503, 504))}
    if kind.startswith("429"):
        headers: dict[str, str] = {}
        if kind == "429-seconds":
            headers["Retry-After"] = rng.choice(("1", "2"))
        elif kind == "429-http-date":
            moment = server_now.astimezone(UTC) + timedelta(seconds=2)
            headers["Retry-After"] = format_datetime(moment.replace(microsecond=0), usegmt=True)
        if target.system == "jira":
            reason = rng.choice(JIRA_REASONS if target.write else JIRA_REASONS[1:])
            if reason:
                headers["RateLimit-Reason"] = reason
        return base | {"status": 429, "headers": headers}
    if kind == "timeout":
        return base | {"status": 503, "delay_ms": late}
    if kind == "timeout-applied":
        return base | {"status": 504, "delay_ms": late, "when": "after_commit"}
    if kind in ("drop", "reset"):
        return base | {"action": kind}
    if kind in ("drop-applied", "reset-applied"):
        return base | {"action": kind.removesuffix("-applied"), "when": "after_commit"}
    if kind == "502-applied":
        return base | {"status": 502, "when": "after_commit"}
    raise ValueError(f"unknown fault kind {kind}")


def boundary_rule(target: Target, when: str) -> dict[str, Any]:
    """Hold one write of ``target`` (``before`` it applies, or ``after_commit``) so a kill lands there."""
    return {
        "path": target.path,
        "method": target.method,
        "query": NOT_HUMAN,
        "when": when,
        "delay_ms": 5000,
        "status": 503,
        "count": 1,
    }


def server_time(skew_seconds: float) -> datetime:
    """A platform's clock given its skew."""
    return datetime.now(UTC) + timedelta(seconds=skew_seconds)
