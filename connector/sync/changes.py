"""What each kind of planned change writes, through one :class:`~connector.sync.application.Application`.

:func:`apply_change` sends the writes of one :class:`~connector.core.plan.Change` and returns the
entity's link (new after a :class:`~connector.core.plan.CreateIssue`). Idempotent writes go
through :meth:`Application.write`, appending ones (comments, journal entries) through
:meth:`Application.append`; an issue is created with its stamp property (so a lost answer is
settled by :class:`~connector.sync.settle.LostCreates`), a problem found by its stamp before it
is created.

Raises the first :class:`~connector.core.errors.ConnectorError` a write meets.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace

from sqlalchemy import Connection

from connector.core.errors import ConcurrentChange, InvalidRequest, TransitionNotAvailable
from connector.core.links import Link
from connector.core.markers import STAMP_PROPERTY
from connector.core.models import Incident
from connector.core.plan import (
    Blocked,
    Change,
    CommentOnIssue,
    CreateIssue,
    CreateProblem,
    MoveIssue,
    NoteOnIncident,
    Operation,
    RecordShadow,
    RemoteLinkOnIssue,
    UpdateIncident,
    UpdateIssue,
    UpdateProblem,
)
from connector.core.ports import IssueRef, JiraPort, Write, Written
from connector.mirror.view import STATE_DONE, SUPPLIER_STATUS
from connector.sync.application import Application, key, shadows

log = logging.getLogger(__name__)


def apply_change(
    application: Application, change: Change, incident: Incident, link: Link | None
) -> Link | None:
    """Send the writes of ``change``; return the link as they left it."""
    if isinstance(change, CreateIssue):
        return _create(application, change, incident, link)
    if isinstance(change, Blocked):
        raise TransitionNotAvailable(change.reason)
    assert link is not None
    if isinstance(change, RecordShadow):
        application.writes.later(shadows(application.store, link, change.side, change.values))
    elif isinstance(change, UpdateIssue):
        application.write(
            link,
            incident,
            Operation.UPDATE_ISSUE,
            change.reason,
            change.before,
            change.after,
            lambda: application.supplier.site.update_issue(key(link), change.fields),
            shadows=[("jira", change.after)],
        )
    elif isinstance(change, MoveIssue):
        application.write(
            link,
            incident,
            Operation.TRANSITION,
            change.reason,
            None,
            {"status": change.target},
            lambda: _move(application.supplier.site, key(link), change),
            # Our own move is not a supplier status change: it must not come back as one.
            shadows=[
                ("jira", {STATE_DONE: change.state_shadow}),
                ("servicenow", {SUPPLIER_STATUS: change.target}),
            ],
        )
    elif isinstance(change, RemoteLinkOnIssue):
        application.write(
            link,
            incident,
            Operation.REMOTE_LINK,
            change.reason,
            None,
            {"globalId": change.global_id},
            lambda: application.supplier.site.upsert_remote_link(
                key(link), change.global_id, change.url, change.title
            ),
            shadows=[("jira", {change.shadow_key: change.global_id})],
        )
    elif isinstance(change, UpdateIncident):
        application.write(
            link,
            incident,
            Operation.UPDATE_INCIDENT,
            change.reason,
            None,
            dict(change.fields),
            lambda: application.patch(incident, change.fields),
            system="servicenow",
            shadows=[("servicenow", change.shadow)],
        )
    elif isinstance(change, CreateProblem):
        _create_problem(application, change, incident, link)
    elif isinstance(change, UpdateProblem):
        _update_problem(application, change, incident, link)
    elif isinstance(change, CommentOnIssue):
        application.append(
            link,
            incident,
            "out",
            change.source_id,
            change.marker,
            change.reason,
            lambda: application.supplier.site.add_comment(key(link), change.body).comment_id,
        )
    elif isinstance(change, NoteOnIncident):
        element = "comments" if change.element == "comments" else "work_notes"
        payload = {**change.fields, element: change.text}
        application.journal_once(
            link,
            incident,
            change.source_id,
            change.marker,
            change.reason,
            lambda: application.patch(incident, payload),
        )
    return link


def _create_problem(application: Application, change: CreateProblem, incident: Incident, link: Link) -> None:
    """Find the problem by its stamp or create it; then link it to the incident with a work note."""
    snow = application.snow
    problem = snow.problem_where("correlation_id", change.stamp)
    if problem is None:
        creation = Write(
            link.entity,
            Operation.CREATE_PROBLEM,
            "servicenow",
            incident.number,
            change.reason,
            change.stamp,
            destination=f"servicenow/problem for {incident.number}",
        )
        problem = application.writes.write(
            creation,
            lambda: snow.create_problem(change.fields),
            lambda created: Written(
                {"problem": created.number},
                after={k: v for k, v in change.fields.items() if k != "cause_notes"},
                target=created.number,
            ),
        )
        log.info("created %s for %s", problem.number, incident.number, extra={"incident": incident.number})
    application.problem = problem
    if incident.get("problem_id") != problem.sys_id:
        note = change.note.replace("{problem}", problem.number)
        payload = {"problem_id": problem.sys_id, "work_notes": note}
        application.journal_once(
            link,
            incident,
            f"problem-created:{incident.sys_id}",
            change.marker,
            f"link {problem.number} to {incident.number}",
            lambda: application.patch(incident, payload),
        )
    application.writes.later(shadows(application.store, link, "servicenow", change.shadow))


def _update_problem(application: Application, change: UpdateProblem, incident: Incident, link: Link) -> None:
    snow = application.snow
    target = f"problem {incident.get('problem_id.number') or change.problem_sys_id}"
    if change.fields:
        application.write(
            link,
            incident,
            Operation.UPDATE_PROBLEM,
            change.reason,
            None,
            dict(change.fields),
            lambda: snow.update_problem(change.problem_sys_id, change.fields),
            system="servicenow",
        )
    if change.note:
        application.journal_once(
            link,
            incident,
            change.source_id,
            change.marker,
            change.reason,
            lambda: snow.update_problem(change.problem_sys_id, {"work_notes": change.note}),
        )
    log.info("%s: %s", target, change.reason, extra={"incident": incident.number})
    application.writes.later(shadows(application.store, link, "servicenow", change.shadow))


def _create(application: Application, change: CreateIssue, incident: Incident, link: Link | None) -> Link:
    store, supplier = application.store, application.supplier
    writes = application.writes
    with writes.transaction() as conn:
        if link is None:
            link, _ = store.links.claim(incident.sys_id, supplier.name, secrets.token_hex(8), conn=conn)
        creation = Write(
            link.entity,
            Operation.CREATE_ISSUE,
            f"jira:{supplier.name}",
            incident.number,
            change.reason,
            link.stamp,
            {"summary": change.shadow.get("summary", "")},
            destination=f"jira:{supplier.name}/{change.project}",
        )
        intent_id = writes.begin(creation, conn)
    properties = {
        STAMP_PROPERTY: {
            "stamp": link.stamp,
            "incident_sys_id": incident.sys_id,
            "incident_number": incident.number,
            "instance": application.instance,
            "servicenow": application.servicenow,
        }
    }
    claimed = link

    def linked(conn: Connection, ref: IssueRef) -> None:
        store.links.confirm(claimed.link_id, ref.issue_id, ref.key, supplier.browse(ref.key), conn=conn)
        store.shadows.put(claimed.link_id, "jira", change.shadow, conn=conn)

    ref = writes.send(
        intent_id,
        creation,
        lambda: supplier.site.create_issue(change.project, change.issue_type, change.fields, properties),
        lambda ref: Written({"jira_key": ref.key}, after=dict(change.shadow), target=ref.key),
        effects=linked,
    )
    url = supplier.browse(ref.key)
    confirmed = replace(link, state="linked", jira_issue_id=ref.issue_id, jira_key=ref.key, jira_url=url)
    log.info(
        "created %s for %s",
        ref.key,
        incident.number,
        extra={"supplier": supplier.name, "jira_key": ref.key},
    )
    return confirmed


def _move(site: JiraPort, jira_key: str, change: MoveIssue) -> None:
    """Walk ``change.hops``; the supplier moving the issue meanwhile is a :class:`ConcurrentChange`."""
    for hop in change.hops:
        available = site.transitions(jira_key)
        chosen = next((t for t in available if t.name == hop.name and t.to_status == hop.to), None)
        chosen = chosen or next((t for t in available if t.to_status == hop.to), None)
        if chosen is None:
            _moved_meanwhile(site, jira_key, change, hop.to)
            return
        try:
            site.transition(jira_key, chosen.transition_id, hop.fields)
        except InvalidRequest:
            # Offered a moment ago, refused now: the issue moved in between, unless it is still offered.
            if any(t.transition_id == chosen.transition_id for t in site.transitions(jira_key)):
                raise
            _moved_meanwhile(site, jira_key, change, hop.to)
            return


def _moved_meanwhile(site: JiraPort, jira_key: str, change: MoveIssue, hop_to: str) -> None:
    """Return when the issue already is at the move's target; else raise :class:`ConcurrentChange`."""
    now = site.issue(jira_key, ["status"], comments=False)
    if now is not None and now.status == change.target:
        return  # the supplier got there first
    raise ConcurrentChange(
        f"{jira_key}: no way to '{hop_to}' from '{now.status if now else '?'}'; the issue moved since it was read"
    )
