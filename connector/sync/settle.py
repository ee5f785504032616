"""Settle what a crash or a lost answer left open, by looking for the write's stamp or marker.

An appending write whose outcome is unknown is never sent again blindly: a lost create is settled
by :class:`LostCreates` (its issue found by the stamp it carries, or given up after the search
lag), an unfinished comment or journal entry by :func:`settle_comments` (its marker found on the
issue or in the journal: done; provably absent: abandoned, so the next plan may send it again).
The :class:`~connector.sync.executor.Executor` calls these from ``reconcile``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from datetime import datetime, timedelta

from connector.core.errors import UncertainOutcome
from connector.core.links import Link
from connector.core.markers import own_ref
from connector.core.models import Incident
from connector.core.ports import IssueRef, OpenWrite, ServiceNowPort
from connector.store import Store
from connector.sync.supplier import Supplier
from connector.sync.writes import Writes

log = logging.getLogger(__name__)
LOST_CREATE_MARGIN = timedelta(minutes=5)
"""How far before a lost create's intent its issue is looked for (clocks may disagree)."""
FOUND_LIMIT = 10_000
"""Stamped issues a supplier's executor remembers from lost-create searches."""


class LostCreates:
    """Settles the creates of one supplier whose answers were lost; one per executor, shared by its threads.

    ``instance`` and ``known_as`` say which stamps are ours (see
    :class:`~connector.sync.executor.Executor`); outcomes are recorded through ``writes``.
    """

    def __init__(
        self, store: Store, writes: Writes, supplier: Supplier, instance: str, known_as: Collection[str]
    ) -> None:
        self.store = store
        self.writes = writes
        self.supplier = supplier
        self.instance = instance
        self.known_as = known_as
        self._found: dict[str, IssueRef] = {}
        """Stamp -> issue, as lost-create searches saw them (see :meth:`settle`)."""
        self._found_lock = threading.Lock()

    def settle(self, open_write: OpenWrite, link: Link, now: datetime) -> Link:
        """Find the issue of a create whose answer was lost, by its stamp; confirm the link or give up.

        Search pages carry each issue's stamp property, so this costs one search request per
        ``RECONCILE_PAGE`` issues we created since the intent (newest first, stopping at ours),
        never a read per issue. Issues seen on the way are remembered: the next lost create of
        the same burst is often found without a request.

        Raises:
            UncertainOutcome: the issue is not found and search may still lag; try later.
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
                    link.link_id, found.issue_id, found.key, self.supplier.browse(found.key), conn=conn
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


def settle_comments(
    store: Store, snow: ServiceNowPort, supplier: Supplier, incident: Incident, link: Link
) -> None:
    """Finish the link's unfinished comment-ledger entries: done where their marker landed, else abandoned.

    Outbound comments are looked for on the supplier's issue, inbound notes in the journal of the
    incident or of the problem they went to.
    """
    entries = store.comments.unfinished(link.link_id)
    if not entries:
        return
    outbound = [e for e in entries if e.direction == "out"]
    inbound = [e for e in entries if e.direction == "in"]
    if outbound and link.jira_key:
        issue = supplier.site.issue(link.jira_key, [], comments=True)
        bodies = {c.comment_id: c.body for c in issue.comments} if issue else {}
        for entry in outbound:
            found = next((cid for cid, body in bodies.items() if own_ref(body) == entry.marker), None)
            store.comments.finish(entry.comment_id, "done" if found else "abandoned", found)
    if inbound:
        texts: dict[str, list[str]] = {}
        for entry in inbound:
            record = _problem_of(entry.source_id) or incident.sys_id
            if record not in texts:
                journal = (
                    snow.journal_of(record) if record == incident.sys_id else snow.problem_journal(record)
                )
                texts[record] = [j.value for j in journal]
            landed = any(own_ref(text) == entry.marker for text in texts[record])
            store.comments.finish(
                entry.comment_id, "done" if landed else "abandoned", entry.marker if landed else None
            )


def _problem_of(source_id: str) -> str | None:
    """The problem a ledger entry's note went to (``problem:<sys_id>:…``), or ``None`` for the incident."""
    kind, _, rest = source_id.partition(":")
    return rest.split(":", 1)[0] if kind == "problem" and ":" in rest else None
