"""Problem management for one incident x supplier. Pure: an :class:`EntityView` in, changes out.

* **link** - once the incident has a ``problem_id``, the supplier issue gets a remote link to the
  problem (``servicenow:problem:<sys_id>``) and one comment saying so;
* **root cause** - when the supplier records a root cause (the mapped field, or the issue linked
  with the configured description such as ``is caused by``), it goes to the problem: into its
  ``cause_notes`` while nobody else wrote there, else as a work note; without a problem, one is
  created and linked when the mapping says ``create_problem: on_root_cause``;
* **on resolve** - ``create_problem: on_resolve`` creates the problem for root-cause analysis when
  an accepted major incident is resolved, after which every supplier issue gets the link.

The problem is created at most once per incident: it is stamped ``mim-connector:problem:<incident>``
in ``correlation_id`` and looked up by that stamp before any create.
"""

from __future__ import annotations

import hashlib

from connector.core.markers import marker, stamp_line
from connector.core.plan import Change, CommentOnIssue, CreateProblem, RemoteLinkOnIssue, UpdateProblem
from connector.core.vocabulary import RESOLVED_OR_CLOSED_STATES
from connector.mirror.redaction import sanitize
from connector.mirror.view import (
    CAUSE_NOTES,
    PROBLEM_LINK,
    ROOT_CAUSE,
    TEXT_LIMIT,
    EntityView,
    clip,
    journal_safe,
    norm,
)


def problem_stamp(incident_sys_id: str) -> str:
    """The ``correlation_id`` of the problem created for an incident."""
    return f"mim-connector:problem:{incident_sys_id}"


def plan_problem(view: EntityView) -> list[Change]:
    """Problem links, root cause write-back and problem creation, as the mapping asks."""
    if view.issue is None:
        return []
    return [*_link(view), *_root_cause(view), *_on_resolve(view)]


def root_cause_of(view: EntityView) -> str:
    """The supplier's root cause as text: the mapped field, else the linked cause issue(s); or ``""``."""
    assert view.issue is not None
    settings = view.mapping.problem
    if settings.root_cause_field:
        text = norm(view.issue.fields.get(settings.root_cause_field, ""))
        if text:
            return text
    if settings.root_cause_link:
        wanted = settings.root_cause_link.casefold()
        causes = [
            f"{link.key}: {link.summary}" + (f" ({link.status})" if link.status else "")
            for link in sorted(view.issue.links, key=lambda link: link.key)
            if link.description.casefold() == wanted
        ]
        return "\n".join(causes)
    return ""


def _link(view: EntityView) -> list[Change]:
    assert view.issue is not None
    problem = view.incident.get("problem_id")
    if not problem or not view.mapping.problem.link_problem:
        return []
    number = view.incident.get("problem_id.number") or problem
    global_id = f"servicenow:problem:{problem}"
    changes: list[Change] = []
    if view.jira_shadow.get(PROBLEM_LINK) != global_id:
        changes.append(
            RemoteLinkOnIssue(
                global_id,
                view.record_url("problem", problem),
                f"ServiceNow problem {number}",
                f"{view.incident.number} is linked to problem {number}",
                shadow_key=PROBLEM_LINK,
            )
        )
    source = f"problem:{problem}"
    if source not in view.mirrored_out:
        ref = marker("p", view.incident.sys_id, problem, view.supplier)
        body = (
            f"The service desk linked {view.incident.number} to problem {number} for root-cause "
            f"analysis. Please record the root cause on this issue when you know it."
        )
        # The connector's own words and ServiceNow's record numbers, no user text: nothing for the
        # redaction patterns to find, and nothing they may rewrite (a number is a reference).
        text = sanitize(body) + f"\n\n{stamp_line(ref)}"
        changes.append(CommentOnIssue(source, text, ref, f"tell {view.issue.key} about problem {number}"))
    return changes


def _root_cause(view: EntityView) -> list[Change]:
    assert view.issue is not None
    text = root_cause_of(view)
    if not text:
        return []
    digest = _digest(text)
    if view.snow_shadow.get(ROOT_CAUSE) == digest:
        return []
    issue = view.issue
    attributed = clip(f"[{issue.key}] {view.mapping.display_name} root cause:\n{text}", TEXT_LIMIT)
    problem = view.incident.get("problem_id")
    reason = f"{view.supplier} recorded a root cause in {issue.key}"
    if not problem:
        if view.mapping.problem.create_problem != "on_root_cause":
            return []  # kept until the incident has a problem: the shadow is not advanced
        return [_create(view, attributed, f"{view.mapping.display_name}'s root cause in {issue.key}", reason)]
    shadow = {ROOT_CAUSE: digest}
    current = norm(view.incident.get("problem_id.cause_notes"))
    ours = view.snow_shadow.get(CAUSE_NOTES)
    if view.mapping.problem.root_cause_target == "cause_notes" and (not current or _digest(current) == ours):
        return [
            UpdateProblem(
                problem, {"cause_notes": attributed}, {**shadow, CAUSE_NOTES: _digest(attributed)}, reason
            )
        ]
    ref = marker("q", problem, issue.key, digest)
    return [
        UpdateProblem(
            problem,
            {},
            shadow,
            reason + (" (the cause notes hold someone else's text)" if current else ""),
            note=f"{journal_safe(attributed)}\n{stamp_line(ref)}",
            marker=ref,
            source_id=f"problem:{problem}:rc:{digest}",
        )
    ]


def _on_resolve(view: EntityView) -> list[Change]:
    incident = view.incident
    if (
        view.mapping.problem.create_problem != "on_resolve"
        or incident.get("problem_id")
        or incident.get("major_incident_state") != "accepted"
        or incident.get("state") not in RESOLVED_OR_CLOSED_STATES
    ):
        return []
    return [
        _create(
            view,
            "",
            f"the resolution of major incident {incident.number}",
            f"major incident {incident.number} is resolved: open its root-cause analysis",
        )
    ]


def _create(view: EntityView, cause_notes: str, why: str, reason: str) -> CreateProblem:
    incident = view.incident
    keys = ", ".join(sorted({*view.sibling_keys, *([view.issue.key] if view.issue else [])}))
    fields = {
        "short_description": clip(
            f"Root cause of {incident.number}: {incident.get('short_description')}", 160
        ),
        "description": (
            f"Opened by mim-connector for {why}.\nIncident: {incident.number}\nSupplier issues: {keys}"
        ),
        "first_reported_by_task": incident.sys_id,
        "correlation_id": problem_stamp(incident.sys_id),
    }
    for name in ("cmdb_ci", "business_service", "impact", "urgency"):
        if incident.get(name):
            fields[name] = incident.get(name)
    shadow: dict[str, str] = {}
    if cause_notes:
        fields["cause_notes"] = cause_notes
        shadow = {ROOT_CAUSE: _digest(root_cause_of(view)), CAUSE_NOTES: _digest(cause_notes)}
    ref = marker("n", incident.sys_id, "problem")
    note = f"mim-connector opened problem {{problem}} for {why}.\n{stamp_line(ref)}"
    return CreateProblem(problem_stamp(incident.sys_id), fields, note, ref, shadow, reason)


def _digest(text: str) -> str:
    return hashlib.sha1(norm(text).encode(), usedforsecurity=False).hexdigest()[:16]
