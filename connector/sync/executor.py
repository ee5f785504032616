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

This module is the executor's face; the work lives beside it: :mod:`connector.sync.application`
(one apply's state and the write protocol per write), :mod:`connector.sync.changes` (what each
planned change writes), :mod:`connector.sync.settle` (settling open writes) and
:mod:`connector.sync.adoption` (links recognition found or refuted).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from connector.core.links import Link, entity_key
from connector.core.markers import own_ref
from connector.core.models import Incident, SupplierIssue
from connector.core.plan import CreateProblem, NoteOnIncident, Operation, Plan, UpdateIncident, UpdateProblem
from connector.core.ports import ServiceNowPort
from connector.mirror.recognition import Landed
from connector.store import Store
from connector.store.db import utcnow
from connector.sync import adoption
from connector.sync.application import Application
from connector.sync.changes import apply_change
from connector.sync.settle import LostCreates, settle_comments
from connector.sync.supplier import Supplier
from connector.sync.writes import Writes
from connector.telemetry import metrics

log = logging.getLogger(__name__)


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
        self.writes = Writes(store)
        """The write protocol for what is settled outside a plan (each plan gets its own, deferred)."""
        self._lost_creates = LostCreates(store, self.writes, supplier, instance, self.known_as)
        """Settles lost creates, remembering the stamped issues its searches saw."""

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
                link = self._lost_creates.settle(open_write, link, now)
            else:
                # Idempotent writes: re-planning from fresh reads redoes them if they did not land.
                self.writes.settle(open_write.intent_id, "abandoned", {"reason": "re-planned after restart"})
        if link is not None and link.state == "linked":
            settle_comments(self.store, self.snow, self.supplier, incident, link)
        return link

    # --- adopting what the store did not know ----------------------------------------------------------

    def adopt(self, incident: Incident, issue: SupplierIssue) -> Link:
        """Link ``incident`` to ``issue``, which exists and is stamped for it: no create is sent.

        See :func:`connector.sync.adoption.adopt`.
        """
        return adoption.adopt(self.store, self.writes, self.supplier, incident, issue)

    def release(self, incident: Incident, link: Link, issue: SupplierIssue) -> None:
        """Forget a link whose issue is stamped for another incident or ServiceNow instance.

        See :func:`connector.sync.adoption.release`.
        """
        adoption.release(self.store, self.writes, self.supplier, self.servicenow, incident, link, issue)

    def recover(self, link: Link, landed: Sequence[Landed], shadow: Mapping[str, str]) -> None:
        """Record appends found already done and a rebuilt Jira-side shadow, in one transaction."""
        adoption.recover(self.store, self.supplier, link, landed, shadow)

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
        application = self._application()

        def send() -> str:
            self.snow.update_incident(incident.sys_id, {"work_notes": text})
            return ref

        try:
            application.append(link, incident, "in", source_id, ref, reason, send, system="servicenow")
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
        application = self._application()
        try:
            for change in plan.changes:
                metrics.PLANNED.labels(self.supplier.name, type(change).__name__).inc()
                link = apply_change(application, change, incident, link)
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

    def _application(self) -> Application:
        """A fresh application, its writes deferred (the caller lands them)."""
        return Application(
            self.store,
            self.snow,
            self.supplier,
            self.instance,
            self.servicenow,
            Writes(self.store, deferred=True),
        )


def now_utc() -> datetime:
    """The store's notion of now (UTC)."""
    return utcnow()
