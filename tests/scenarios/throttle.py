"""The throttling property: after a 429, no request by the connector to that scope before it expires.

For every 429 the connector received, the checker derives, from the sandbox's answer:

* **the wait**: ``Retry-After`` in seconds from the answer; an HTTP-date is an instant on the
  server's clock (converted with the skew the server had); without the header the connector's
  documented default of 5 s (``connector.http.transport.DEFAULT_THROTTLE_SECONDS``). A 429 the sandbox's
  own limiters sent (no injected rule) is taken as 1 s, the least they ever ask;
* **the scope** (Jira's ``RateLimit-Reason``): ``jira-per-issue-on-write`` - writes to that issue;
  ``jira-burst-based`` - that endpoint (method and path with the issue left out); anything else,
  or none - the whole site. A ServiceNow 429 closes the whole instance.

A *violation* is a request by the connector in that scope that the server received after the 429
was answered and before the wait was over. Violations are split by whether the daemon was
restarted in between (a new process that forgot the throttle) or not. A 429 answered less than
``IN_FLIGHT`` before a SIGKILL binds no later process: the one it was meant for may have died
before it read the answer (or before it could keep the closure in its store).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from tests.scenarios.journal import Request
from tests.scenarios.nemesis import Installed
from tests.scenarios.stage import JIRA_USER, SN_USER

DEFAULT_WAIT = 5.0
SANDBOX_LIMITER_WAIT = 1.0
TOLERANCE = 0.005
"""Journal times have millisecond precision."""
IN_FLIGHT = 0.2
"""A request that reached the server this soon after the 429 was answered may have been sent
before the connector read the 429 (parallel workers); the journal cannot tell, so it is not counted."""
WRITES = ("POST", "PUT", "PATCH", "DELETE")
_ISSUE = re.compile(r"/issue/([^/]+)")


@dataclass
class ThrottleReport:
    """What the throttling check found."""

    throttled: int = 0
    """429 answers the connector received."""
    by_scope: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    across_restart: list[str] = field(default_factory=list)


def check_throttling(
    requests: Iterable[Request],
    rules: Mapping[tuple[str, int], Installed],
    issue_keys: Mapping[str, str],
    starts: list[float],
    kills: Sequence[float] = (),
) -> ThrottleReport:
    """Check every 429; ``issue_keys`` maps ``site/issue id`` to the key, ``starts`` and ``kills``
    are the daemon's starts and SIGKILLs (wall clock)."""
    report = ThrottleReport()
    by_system: dict[str, list[Request]] = {}
    for request in requests:
        if request.user in (SN_USER, JIRA_USER):
            by_system.setdefault(request.system, []).append(request)
    for system, ours in by_system.items():
        ours.sort(key=lambda r: r.seq)
        for index, refused in enumerate(ours):
            if refused.status != 429:
                continue
            report.throttled += 1
            rule = rules.get((system, refused.fault)) if refused.fault is not None else None
            deadline = _deadline(refused, rule)
            scope_name, in_scope = _scope(refused, rule, issue_keys)
            report.by_scope[scope_name] = report.by_scope.get(scope_name, 0) + 1
            for later in ours[index + 1 :]:
                if later.start >= deadline - TOLERANCE:
                    if later.end > deadline + 2:
                        break
                    continue
                if later.start <= refused.end + IN_FLIGHT or not in_scope(later):
                    continue
                early = deadline - later.start
                line = (
                    f"{later.method} {later.path} {early:.3f}s before the Retry-After of the 429 "
                    f"to {refused.method} {refused.path} ({scope_name}), "
                    f"{later.start - refused.end:.3f}s after it"
                )
                restarted = any(refused.end < start < later.start for start in starts)
                if restarted and any(refused.end <= kill < refused.end + IN_FLIGHT for kill in kills):
                    continue  # the answer may never have been read by the process it was for
                (report.across_restart if restarted else report.violations).append(line)
    return report


def _deadline(refused: Request, rule: Installed | None) -> float:
    if rule is None:
        return refused.end + SANDBOX_LIMITER_WAIT
    value = rule.headers.get("Retry-After")
    if value is None:
        return refused.end + DEFAULT_WAIT
    if value.strip().isdigit():
        return refused.end + float(value)
    # An HTTP-date on the server's clock; real time = server time - skew.
    return parsedate_to_datetime(value).timestamp() - refused.skew


def _scope(refused: Request, rule: Installed | None, issue_keys: Mapping[str, str]) -> tuple[str, object]:
    if refused.system == "servicenow":
        return "instance", lambda r: r.system == "servicenow"
    site = refused.path.split("/")[1]
    issue = _issue(refused.path, site, issue_keys)
    if rule is not None:
        reason = rule.headers.get("RateLimit-Reason", "")
    else:
        reason = "jira-per-issue-on-write" if refused.method in WRITES and issue else "jira-burst-based"
    if reason == "jira-per-issue-on-write" and issue and refused.method in WRITES:
        return (
            "issue",
            lambda r: (
                r.method in WRITES
                and r.path.split("/")[1] == site
                and _issue(r.path, site, issue_keys) == issue
            ),
        )
    if reason == "jira-burst-based":
        endpoint = (refused.method, _template(refused.path))
        return "endpoint", lambda r: (r.method, _template(r.path)) == endpoint
    return "site", lambda r: r.path.split("/")[1] == site


def _issue(path: str, site: str, issue_keys: Mapping[str, str]) -> str | None:
    found = _ISSUE.search(path)
    if not found:
        return None
    ref = found.group(1)
    return issue_keys.get(f"{site}/{ref}", ref).upper()


def _template(path: str) -> str:
    return re.sub(r"/\d+(?=/|$)", "/{n}", _ISSUE.sub("/issue/{issue}", path))
