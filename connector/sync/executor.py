"""Apply a plan safely: an intent before every external write, the outcome after, never a blind repeat.

Writes fall in two kinds:

* **idempotent** (set fields, transitions towards a target, remote-link upsert): if the answer is
  lost the next pass re-reads both sides and re-plans, which is always safe;
* **appending** (create an issue, add a comment, add a journal entry): each carries a stamp or a
  marker, and an uncertain outcome is settled by :meth:`Executor.reconcile` looking for it -
  found means done, provably absent means the write may be sent again.

Every write goes through the one write protocol (:mod:`connector.sync.writes`): the audit log gets
it with before, after, reason and outcome. What a write's answer settles (its outcome, audit entry,
the shadows and links it makes true) waits in memory and lands in the transaction that records the
plan's next intent, or at the end of the plan: a crash in between leaves a pending intent, which
:meth:`Executor.reconcile` settles like any other.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from connector.core.errors import (
    ConcurrentChange,
    ConnectorError,
    InvalidRequest,
    TransitionNotAvailable,
    UncertainOutcome,
)
from connector.core.links import Link, entity_key
from connector.core.markers import STAMP_PROPERTY, own_ref
from connector.core.models import Incident, Problem, SupplierIssue
from connector.core.plan import (
    Blocked,
    Change,
    CommentOnIssue,
    CreateIssue,
    CreateProblem,
    MoveIssue,
    NoteOnIncident,
    Operation,
    Plan,
    RecordShadow,
    RemoteLinkOnIssue,
    UpdateIncident,
    UpdateIssue,
    UpdateProblem,
)
from connector.core.ports import IssueRef, JiraPort, OpenWrite, ServiceNowPort, Write, Written
from connector.mirror.recognition import Landed
from connector.mirror.view import STATE_DONE, SUPPLIER_STATUS
from connector.store import Store
from connector.store.db import utcnow
from connector.store.links import CommentState
from connector.sync.writes import Effect, Writes
from connector.telemetry import metrics

log = logging.getLogger(__name__)
LOST_CREATE_MARGIN = timedelta(minutes=5)
"""How far before a lost create's intent its issue is looked for (clocks may disagree)."""
FOUND_LIMIT = 10_000
"""Stamped issues a supplier's executor remembers from lost-create searches."""


@dataclass(frozen=True)
class Supplier:
    """One supplier as the executor needs it: its site adapter and where its issues are browsed."""

    name: str
    site: JiraPort
    browse_base: str
    project: str
    search_lag: timedelta


class Executor:
    """Applies plans for the entities of one supplier."""

    def __init__(
        self,
        store: Store,
        snow: ServiceNowPort,
        supplier: Supplier,
        instance: str,
        servicenow: str = "",
        *,
        known_as: Collection[str] = (),
    ) -> None:
        """Apply plans for ``supplier``; ``instance`` and ``servicenow`` go into every issue's stamp.

        ``instance`` is our ``instance_name``, ``servicenow`` the
        :func:`~connector.core.models.servicenow_identity` of the instance's URL; ``known_as`` the
        names a stamp of ours may give the instance besides it (``servicenow.former_urls``).
        """
        self.store = store
        self.snow = snow
        self.supplier = supplier
        self.instance = instance
        self.servicenow = servicenow
        self.known_as = frozenset({servicenow, *known_as})
        self._found: dict[str, IssueRef] = {}
        """Stamp -> issue, as lost-create searches saw them (see :meth:`_settle_create`)."""
        self._found_lock = threading.Lock()
        self.writes = Writes(store)
        """The write protocol for what is settled outside a plan (each plan gets its own, deferred)."""

    # --- settling what a crash or a lost answer left open ------------------------------------------

    def reconcile(self, incident: Incident, link: Link | None, now: datetime) -> Link | None:
        """Settle this entity's unfinished intents and comment-ledger entries; return the (updated) link.

        Raises:
            UncertainOutcome: a lost create cannot be settled yet (search may still lag); try later.
        """
        entity = entity_key(incident.sys_id, self.supplier.name)
        for open_write in self.writes.open_writes_of(entity):
            if (
                open_write.operation == Operation.CREATE_ISSUE
                and link is not None
                and link.state == "creating"
            ):
                link = self._settle_create(open_write, link, now)
            else:
                # Idempotent writes: re-planning from fresh reads redoes them if they did not land.
                self.writes.settle(open_write.intent_id, "abandoned", {"reason": "re-planned after restart"})
        if link is not None and link.state == "linked":
            self._settle_comments(incident, link)
        return link

    def _settle_create(self, open_write: OpenWrite, link: Link, now: datetime) -> Link:
        """Find the issue of a create whose answer was lost, by its stamp; confirm the link or give up.

        Search pages carry each issue's stamp property, so this costs one search request per
        ``RECONCILE_PAGE`` issues we created since the intent (newest first, stopping at ours),
        never a read per issue. Issues seen on the way are remembered: the next lost create of
        the same burst is often found without a request.
        """
        created_at = open_write.created_at
        ref = self._found.get(link.stamp)
        if ref is None or not self._ours(ref, link):
            ref = None
            site = self.supplier.site
            # `created` is stamped by Jira's clock, the intent by ours: the margin covers clocks that
            # disagree by minutes (the fault scenarios skew them by up to 90 s either way).
            for candidate in site.created_by_me_since(self.supplier.project, created_at - LOST_CREATE_MARGIN):
                if candidate.identity is None:
                    continue
                self._remember(candidate)
                if candidate.identity.stamp == link.stamp and self._ours(candidate, link):
                    ref = candidate
                    break
        if ref is not None:
            log.info(
                "lost create found: %s is ours",
                ref.key,
                extra={"supplier": self.supplier.name, "jira_key": ref.key},
            )
            found = ref
            with self.store.transaction() as conn:
                confirmed = self.store.links.confirm(
                    link.link_id, found.issue_id, found.key, self._browse(found.key), conn=conn
                )
                outcome = {"jira_key": found.key, "reconciled": True}
                self.writes.settle(open_write.intent_id, "done", outcome, conn=conn)
            return confirmed
        if now - created_at < self.supplier.search_lag:
            raise UncertainOutcome(
                f"create for {link.incident_sys_id} at {self.supplier.name} not visible yet; search may lag"
            )
        self.writes.settle(open_write.intent_id, "abandoned", {"reason": "not found after the search lag"})
        return link

    def _remember(self, ref: IssueRef) -> None:
        """Keep a stamped issue seen by a lost-create search (a positive finding never goes stale)."""
        assert ref.identity is not None
        with self._found_lock:
            if len(self._found) >= FOUND_LIMIT:
                self._found.pop(next(iter(self._found)))
            self._found[ref.identity.stamp] = ref

    def _ours(self, ref: IssueRef, link: Link) -> bool:
        """Whether a search hit is stamped for the link's incident of this ServiceNow instance."""
        identity = ref.identity
        return identity is not None and identity.belongs_to(
            link.incident_sys_id, self.known_as, self.instance
        )

    # --- adopting what the store did not know ----------------------------------------------------------

    def adopt(self, incident: Incident, issue: SupplierIssue) -> Link:
        """Link ``incident`` to ``issue``, which exists and is stamped for it: no create is sent.

        In one transaction: the link (``linked``, with the issue's stamp), this entity's
        unfinished creates (done: that issue is theirs) and an audit entry.
        """
        assert issue.identity is not None
        entity = entity_key(incident.sys_id, self.supplier.name)
        system = f"jira:{self.supplier.name}"
        reason = (
            f"{issue.key} already exists for {incident.number} (stamped {issue.identity.stamp}); "
            "the store did not know it"
        )
        stamp = issue.identity.stamp
        adoption = Write(entity, Operation.ADOPT_ISSUE, system, issue.key, reason, stamp)
        with self.store.transaction() as conn:
            link = self.store.links.adopt(
                incident.sys_id,
                self.supplier.name,
                stamp,
                issue.issue_id,
                issue.key,
                self._browse(issue.key),
                conn=conn,
            )
            for open_write in self.writes.open_writes_of(entity):
                if open_write.operation == Operation.CREATE_ISSUE:
                    outcome = {"jira_key": issue.key, "adopted": True}
                    self.writes.settle(open_write.intent_id, "done", outcome, conn=conn)
            self.writes.record(adoption, Written(after={"stamp": stamp}), conn=conn)
        metrics.WRITES.labels(system, Operation.ADOPT_ISSUE, "done").inc()
        log.warning(
            "adopted %s: %s", issue.key, reason, extra={"supplier": self.supplier.name, "jira_key": issue.key}
        )
        return link

    def release(self, incident: Incident, link: Link, issue: SupplierIssue) -> None:
        """Forget a link whose issue is stamped for another incident or ServiceNow instance.

        Such a link came with a store from another environment (or a restore of the wrong one):
        the issue is left alone, and the entity is recognised or created afresh.
        """
        assert issue.identity is not None
        stamped = issue.identity
        reason = (
            f"{issue.key} is stamped for incident {stamped.incident_number or stamped.incident_sys_id} "
            f"of {stamped.servicenow or stamped.instance}, not {incident.number} of {self.servicenow}: "
            "the store's link is another environment's; forgotten (if it is this instance under a former "
            "URL, list that URL in servicenow.former_urls)"
        )
        system = f"jira:{self.supplier.name}"
        release = Write(link.entity, Operation.RELEASE_LINK, system, issue.key, reason, stamped.stamp)
        with self.store.transaction() as conn:
            self.store.links.forget(link.link_id, conn=conn)
            self.writes.record(release, conn=conn)
        log.warning("%s", reason, extra={"supplier": self.supplier.name, "jira_key": issue.key})

    def recover(self, link: Link, landed: Sequence[Landed], shadow: Mapping[str, str]) -> None:
        """Record appends found already done and a rebuilt Jira-side shadow, in one transaction."""
        with self.store.transaction() as conn:
            for found in landed:
                entry, _fresh = self.store.comments.begin(
                    link.link_id, found.direction, found.source_id, found.marker, conn=conn
                )
                self.store.comments.finish(entry.comment_id, "done", found.target_id, conn=conn)
            self.store.shadows.put(link.link_id, "jira", shadow, conn=conn)
        if landed:
            log.info(
                "%s: %d comment(s) or note(s) already mirrored, recorded (the store did not know them)",
                link.jira_key,
                len(landed),
                extra={"supplier": self.supplier.name, "jira_key": link.jira_key},
            )

    def _settle_comments(self, incident: Incident, link: Link) -> None:
        entries = self.store.comments.unfinished(link.link_id)
        if not entries:
            return
        outbound = [e for e in entries if e.direction == "out"]
        inbound = [e for e in entries if e.direction == "in"]
        if outbound and link.jira_key:
            issue = self.supplier.site.issue(link.jira_key, [], comments=True)
            bodies = {c.comment_id: c.body for c in issue.comments} if issue else {}
            for entry in outbound:
                found = next((cid for cid, body in bodies.items() if own_ref(body) == entry.marker), None)
                self.store.comments.finish(entry.comment_id, "done" if found else "abandoned", found)
        if inbound:
            texts: dict[str, list[str]] = {}
            for entry in inbound:
                record = _problem_of(entry.source_id) or incident.sys_id
                if record not in texts:
                    journal = (
                        self.snow.journal_of(record)
                        if record == incident.sys_id
                        else self.snow.problem_journal(record)
                    )
                    texts[record] = [j.value for j in journal]
                landed = any(own_ref(text) == entry.marker for text in texts[record])
                self.store.comments.finish(
                    entry.comment_id, "done" if landed else "abandoned", entry.marker if landed else None
                )

    # --- notes outside a plan ---------------------------------------------------------------------------

    def note_on_incident(
        self, link: Link, incident: Incident, source_id: str, ref: str, text: str, reason: str
    ) -> None:
        """Append the work note ``text`` (carrying the marker ``ref``) to the incident, at most once.

        For what the connector itself has to tell the desk (a stuck mirror): recorded in the
        comment ledger under ``source_id`` with an intent and an audit entry, like a plan's notes.
        An earlier try whose answer was lost is settled first by looking for ``ref`` in the
        incident's journal, so the note is never written twice.

        Raises:
            ConnectorError: the note could not be written (its ledger entry says what is known).
        """
        entry = self.store.comments.get(link.link_id, "in", source_id)
        if entry is not None and entry.state == "done":
            return
        if entry is not None and entry.state in ("pending", "uncertain"):
            landed = any(own_ref(j.value) == ref for j in self.snow.journal_of(incident.sys_id))
            self.store.comments.finish(
                entry.comment_id, "done" if landed else "abandoned", ref if landed else None
            )
            if landed:
                return
        application = _Application(Writes(self.store, deferred=True))

        def send() -> str:
            self.snow.update_incident(incident.sys_id, {"work_notes": text})
            return ref

        try:
            self._append(application, link, incident, "in", source_id, ref, reason, send, system="servicenow")
        finally:
            application.writes.land()  # no plan follows to carry the outcome

    # --- applying ----------------------------------------------------------------------------------

    def apply(self, plan: Plan, incident: Incident, link: Link | None) -> tuple[Link | None, Incident]:
        """Apply ``plan`` in order; return the link and the incident as our writes left it.

        The link is new after a :class:`CreateIssue`; the incident carries the fields we wrote, so
        the next pass plans from what ServiceNow now holds.

        Raises the first :class:`~connector.core.errors.ConnectorError` a write meets; what was done
        before it stays done and recorded.
        """
        for conflict in plan.conflicts:
            metrics.CONFLICTS.labels(self.supplier.name).inc()
            log.warning("%s", conflict, extra={"incident": incident.number, "supplier": self.supplier.name})
        written: dict[str, str] = {}
        application = _Application(Writes(self.store, deferred=True))
        try:
            for change in plan.changes:
                metrics.PLANNED.labels(self.supplier.name, type(change).__name__).inc()
                link = self._apply(application, change, incident, link)
                if isinstance(change, UpdateIncident | NoteOnIncident):
                    written.update(change.fields)
                elif isinstance(change, CreateProblem) and application.problem is not None:
                    problem = application.problem
                    written.update(
                        {
                            "problem_id": problem.sys_id,
                            "problem_id.number": problem.number,
                            "problem_id.cause_notes": problem.cause_notes,
                        }
                    )
                elif isinstance(change, UpdateProblem) and "cause_notes" in change.fields:
                    written["problem_id.cause_notes"] = change.fields["cause_notes"]
        finally:
            application.writes.land()  # what the last writes settled, before anyone reads the store again
        if written or application.counts:
            incident = replace(
                incident, fields={**incident.fields, **written}, mod_count=application.advanced(incident)
            )
        return link, incident

    def _patch(self, application: _Application, incident: Incident, fields: Mapping[str, str]) -> None:
        application.counts.append(self.snow.update_incident(incident.sys_id, fields))

    def _apply(
        self, application: _Application, change: Change, incident: Incident, link: Link | None
    ) -> Link | None:
        if isinstance(change, CreateIssue):
            return self._create(application, change, incident, link)
        if isinstance(change, Blocked):
            raise TransitionNotAvailable(change.reason)
        assert link is not None
        if isinstance(change, RecordShadow):
            application.writes.later(_shadows(self.store, link, change.side, change.values))
        elif isinstance(change, UpdateIssue):
            self._write(
                application,
                link,
                incident,
                Operation.UPDATE_ISSUE,
                change.reason,
                change.before,
                change.after,
                lambda: self.supplier.site.update_issue(_key(link), change.fields),
                shadows=[("jira", change.after)],
            )
        elif isinstance(change, MoveIssue):
            self._write(
                application,
                link,
                incident,
                Operation.TRANSITION,
                change.reason,
                None,
                {"status": change.target},
                lambda: self._move(_key(link), change),
                # Our own move is not a supplier status change: it must not come back as one.
                shadows=[
                    ("jira", {STATE_DONE: change.state_shadow}),
                    ("servicenow", {SUPPLIER_STATUS: change.target}),
                ],
            )
        elif isinstance(change, RemoteLinkOnIssue):
            self._write(
                application,
                link,
                incident,
                Operation.REMOTE_LINK,
                change.reason,
                None,
                {"globalId": change.global_id},
                lambda: self.supplier.site.upsert_remote_link(
                    _key(link), change.global_id, change.url, change.title
                ),
                shadows=[("jira", {change.shadow_key: change.global_id})],
            )
        elif isinstance(change, UpdateIncident):
            self._write(
                application,
                link,
                incident,
                Operation.UPDATE_INCIDENT,
                change.reason,
                None,
                dict(change.fields),
                lambda: self._patch(application, incident, change.fields),
                system="servicenow",
                shadows=[("servicenow", change.shadow)],
            )
        elif isinstance(change, CreateProblem):
            self._create_problem(application, change, incident, link)
        elif isinstance(change, UpdateProblem):
            self._update_problem(application, change, incident, link)
        elif isinstance(change, CommentOnIssue):
            self._append(
                application,
                link,
                incident,
                "out",
                change.source_id,
                change.marker,
                change.reason,
                lambda: self.supplier.site.add_comment(_key(link), change.body).comment_id,
            )
        elif isinstance(change, NoteOnIncident):
            element = "comments" if change.element == "comments" else "work_notes"
            payload = {**change.fields, element: change.text}
            self._journal_once(
                application,
                link,
                incident,
                change.source_id,
                change.marker,
                change.reason,
                lambda: self._patch(application, incident, payload),
            )
        return link

    def _journal_once(
        self,
        application: _Application,
        link: Link,
        incident: Incident,
        source_id: str,
        ref: str,
        reason: str,
        write: Callable[[], object],
    ) -> None:
        """A ServiceNow write appending a journal entry marked ``ref``, sent once.

        It is recorded in the comment ledger, so a lost answer is settled by finding the marker.
        """

        def send() -> str:
            write()
            return ref

        self._append(application, link, incident, "in", source_id, ref, reason, send, system="servicenow")

    def _create_problem(
        self, application: _Application, change: CreateProblem, incident: Incident, link: Link
    ) -> None:
        """Find the problem by its stamp or create it; then link it to the incident with a work note."""
        problem = self.snow.problem_where("correlation_id", change.stamp)
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
                lambda: self.snow.create_problem(change.fields),
                lambda created: Written(
                    {"problem": created.number},
                    after={k: v for k, v in change.fields.items() if k != "cause_notes"},
                    target=created.number,
                ),
            )
            log.info(
                "created %s for %s", problem.number, incident.number, extra={"incident": incident.number}
            )
        application.problem = problem
        if incident.get("problem_id") != problem.sys_id:
            note = change.note.replace("{problem}", problem.number)
            payload = {"problem_id": problem.sys_id, "work_notes": note}
            self._journal_once(
                application,
                link,
                incident,
                f"problem-created:{incident.sys_id}",
                change.marker,
                f"link {problem.number} to {incident.number}",
                lambda: self._patch(application, incident, payload),
            )
        application.writes.later(_shadows(self.store, link, "servicenow", change.shadow))

    def _update_problem(
        self, application: _Application, change: UpdateProblem, incident: Incident, link: Link
    ) -> None:
        target = f"problem {incident.get('problem_id.number') or change.problem_sys_id}"
        if change.fields:
            self._write(
                application,
                link,
                incident,
                Operation.UPDATE_PROBLEM,
                change.reason,
                None,
                dict(change.fields),
                lambda: self.snow.update_problem(change.problem_sys_id, change.fields),
                system="servicenow",
            )
        if change.note:
            self._journal_once(
                application,
                link,
                incident,
                change.source_id,
                change.marker,
                change.reason,
                lambda: self.snow.update_problem(change.problem_sys_id, {"work_notes": change.note}),
            )
        log.info("%s: %s", target, change.reason, extra={"incident": incident.number})
        application.writes.later(_shadows(self.store, link, "servicenow", change.shadow))

    def _create(
        self, application: _Application, change: CreateIssue, incident: Incident, link: Link | None
    ) -> Link:
        writes = application.writes
        with writes.transaction() as conn:
            if link is None:
                link, _ = self.store.links.claim(
                    incident.sys_id, self.supplier.name, secrets.token_hex(8), conn=conn
                )
            creation = Write(
                link.entity,
                Operation.CREATE_ISSUE,
                f"jira:{self.supplier.name}",
                incident.number,
                change.reason,
                link.stamp,
                {"summary": change.shadow.get("summary", "")},
                destination=f"jira:{self.supplier.name}/{change.project}",
            )
            intent_id = writes.begin(creation, conn)
        properties = {
            STAMP_PROPERTY: {
                "stamp": link.stamp,
                "incident_sys_id": incident.sys_id,
                "incident_number": incident.number,
                "instance": self.instance,
                "servicenow": self.servicenow,
            }
        }
        claimed = link

        def linked(conn: Connection, ref: IssueRef) -> None:
            self.store.links.confirm(claimed.link_id, ref.issue_id, ref.key, self._browse(ref.key), conn=conn)
            self.store.shadows.put(claimed.link_id, "jira", change.shadow, conn=conn)

        ref = writes.send(
            intent_id,
            creation,
            lambda: self.supplier.site.create_issue(
                change.project, change.issue_type, change.fields, properties
            ),
            lambda ref: Written({"jira_key": ref.key}, after=dict(change.shadow), target=ref.key),
            effects=linked,
        )
        url = self._browse(ref.key)
        confirmed = replace(link, state="linked", jira_issue_id=ref.issue_id, jira_key=ref.key, jira_url=url)
        log.info(
            "created %s for %s",
            ref.key,
            incident.number,
            extra={"supplier": self.supplier.name, "jira_key": ref.key},
        )
        return confirmed

    def _move(self, jira_key: str, change: MoveIssue) -> None:
        """Walk ``change.hops``; the supplier moving the issue meanwhile is a :class:`ConcurrentChange`."""
        site = self.supplier.site
        for hop in change.hops:
            available = site.transitions(jira_key)
            chosen = next((t for t in available if t.name == hop.name and t.to_status == hop.to), None)
            chosen = chosen or next((t for t in available if t.to_status == hop.to), None)
            if chosen is None:
                self._moved_meanwhile(jira_key, change, hop.to)
                return
            try:
                site.transition(jira_key, chosen.transition_id, hop.fields)
            except InvalidRequest:
                # Offered a moment ago, refused now: the issue moved in between, unless it is still offered.
                if any(t.transition_id == chosen.transition_id for t in site.transitions(jira_key)):
                    raise
                self._moved_meanwhile(jira_key, change, hop.to)
                return

    def _moved_meanwhile(self, jira_key: str, change: MoveIssue, hop_to: str) -> None:
        """Return when the issue already is at the move's target; else raise :class:`ConcurrentChange`."""
        now = self.supplier.site.issue(jira_key, ["status"], comments=False)
        if now is not None and now.status == change.target:
            return  # the supplier got there first
        raise ConcurrentChange(
            f"{jira_key}: no way to '{hop_to}' from '{now.status if now else '?'}'; the issue moved since it was read"
        )

    def _write(
        self,
        application: _Application,
        link: Link,
        incident: Incident,
        operation: Operation,
        reason: str,
        before: Mapping[str, str] | None,
        after: Mapping[str, Any],
        send: Callable[[], object],
        system: str | None = None,
        shadows: Sequence[tuple[str, Mapping[str, str]]] = (),
    ) -> None:
        """Send one idempotent write between its intent and its outcome (see :mod:`connector.sync.writes`).

        The outcome, its audit entry and ``shadows`` (side, values: what the write makes synced)
        land in one transaction: a crash leaves either all of them or a pending intent.
        """
        system = system or f"jira:{self.supplier.name}"
        target = incident.number if system == "servicenow" else _key(link)
        write = Write(link.entity, operation, system, target, reason, secrets.token_hex(8), dict(after))

        def synced(conn: Connection, _: object) -> None:
            for side, values in shadows:
                self.store.shadows.put(link.link_id, side, values, conn=conn)

        application.writes.send(
            application.writes.begin(write),
            write,
            send,
            lambda _: Written(before=dict(before) if before else None, after=dict(after)),
            effects=synced,
        )

    def _append(
        self,
        application: _Application,
        link: Link,
        incident: Incident,
        direction: str,
        source_id: str,
        ref: str,
        reason: str,
        send: Callable[[], object],
        system: str | None = None,
    ) -> None:
        """Send one appending write (a comment, a journal entry) marked ``ref``, at most once.

        Its comment-ledger entry is begun with the intent and finished with the outcome, so a lost
        answer is settled by finding ``ref`` (:meth:`reconcile`).
        """
        system = system or f"jira:{self.supplier.name}"
        target = incident.number if system == "servicenow" else _key(link)
        operation = Operation.ADD_COMMENT if direction == "out" else Operation.ADD_JOURNAL
        write = Write(link.entity, operation, system, target, reason, ref, {"source": source_id})
        writes = application.writes
        with writes.transaction() as conn:
            entry, fresh = self.store.comments.begin(
                link.link_id,
                direction,  # type: ignore[arg-type]
                source_id,
                ref,
                conn=conn,
            )
            if not fresh and entry.state == "done":
                return
            intent_id = writes.begin(write, conn)

        def finished(conn: Connection, created_id: object) -> None:
            self.store.comments.finish(entry.comment_id, "done", str(created_id), conn=conn)

        def failed(conn: Connection, exc: ConnectorError) -> None:
            left: CommentState = "uncertain" if isinstance(exc, UncertainOutcome) else "abandoned"
            self.store.comments.finish(entry.comment_id, left, conn=conn)

        writes.send(
            intent_id,
            write,
            send,
            lambda created_id: Written(
                {"target_id": str(created_id)}, after={"source": source_id, "marker": ref}
            ),
            effects=finished,
            failed=failed,
        )

    def _browse(self, jira_key: str) -> str:
        return f"{self.supplier.browse_base}/browse/{jira_key}"


@dataclass
class _Application:
    """What one :meth:`Executor.apply` (or one note outside a plan) gathers as it goes; made per call.

    The engine applies plans of different incidents at once, each in its own thread: nothing
    here is shared.
    """

    writes: Writes
    """Deferred: what an answer settles lands with the next intent, or at :meth:`Writes.land`."""
    counts: list[int | None] = field(default_factory=list)
    """The incident's ``sys_mod_count`` after each of our PATCHes, as their answers said."""
    problem: Problem | None = None
    """The incident's problem, once a :class:`CreateProblem` found or created it."""

    def advanced(self, incident: Incident) -> int:
        """The incident's version after our writes, if nobody else wrote in between; else the one we read.

        Each of our PATCHes adds exactly one to ``sys_mod_count``; any other jump means someone else
        changed the incident meanwhile, and that version must still be processed.
        """
        count = incident.mod_count
        for reported in self.counts:
            if reported != count + 1:
                return incident.mod_count
            count = reported
        return count


def _shadows(store: Store, link: Link, side: str, values: Mapping[str, str]) -> Effect:
    """Record ``values`` as synced to ``side`` (an effect landing with a write's outcome)."""
    return lambda conn: store.shadows.put(link.link_id, side, values, conn=conn)


def _problem_of(source_id: str) -> str | None:
    """The problem a ledger entry's note went to (``problem:<sys_id>:…``), or ``None`` for the incident."""
    kind, _, rest = source_id.partition(":")
    return rest.split(":", 1)[0] if kind == "problem" and ":" in rest else None


def _key(link: Link) -> str:
    assert link.jira_key is not None
    return link.jira_key


def now_utc() -> datetime:
    """The store's notion of now (UTC)."""
    return utcnow()
