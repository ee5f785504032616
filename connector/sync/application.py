"""One application of a plan (or one note outside a plan): its state, and how each write is sent.

An :class:`Application` is made per :meth:`~connector.sync.executor.Executor.apply` call and is
never shared between threads. Every write goes through the one write protocol
(:mod:`connector.sync.writes`), deferred: what an answer settles lands with the next intent or at
:meth:`~connector.sync.writes.Writes.land`, which the maker of the application calls at its end.

* :meth:`Application.write` sends an idempotent write (its shadows land with its outcome);
* :meth:`Application.append` sends an appending write marked with a ref, at most once, recorded
  in the comment ledger so a lost answer is settled by finding the ref
  (:func:`connector.sync.settle.settle_comments`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from connector.core.errors import ConnectorError, UncertainOutcome
from connector.core.links import Link
from connector.core.models import Incident, Problem
from connector.core.plan import Operation
from connector.core.ports import ServiceNowPort, Write, Written
from connector.store import Store
from connector.store.links import CommentState
from connector.sync.supplier import Supplier
from connector.sync.writes import Effect, Writes


@dataclass
class Application:
    """What one :meth:`Executor.apply` (or one note outside a plan) gathers as it goes; made per call.

    The engine applies plans of different incidents at once, each in its own thread: the state
    gathered here is not shared (the store and the ports are).
    """

    store: Store
    snow: ServiceNowPort
    supplier: Supplier
    instance: str
    """Our ``instance_name``, for the stamp of an issue created (see :class:`~connector.sync.executor.Executor`)."""
    servicenow: str
    """The ServiceNow identity, for the stamp of an issue created."""
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

    def patch(self, incident: Incident, fields: Mapping[str, str]) -> None:
        """PATCH the incident, keeping the version its answer reports (see :meth:`advanced`)."""
        self.counts.append(self.snow.update_incident(incident.sys_id, fields))

    def write(
        self,
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
        target = incident.number if system == "servicenow" else key(link)
        write = Write(link.entity, operation, system, target, reason, secrets.token_hex(8), dict(after))

        def synced(conn: Connection, _: object) -> None:
            for side, values in shadows:
                self.store.shadows.put(link.link_id, side, values, conn=conn)

        self.writes.send(
            self.writes.begin(write),
            write,
            send,
            lambda _: Written(before=dict(before) if before else None, after=dict(after)),
            effects=synced,
        )

    def append(
        self,
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
        answer is settled by finding ``ref`` (:meth:`Executor.reconcile`).
        """
        system = system or f"jira:{self.supplier.name}"
        target = incident.number if system == "servicenow" else key(link)
        operation = Operation.ADD_COMMENT if direction == "out" else Operation.ADD_JOURNAL
        write = Write(link.entity, operation, system, target, reason, ref, {"source": source_id})
        writes = self.writes
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

    def journal_once(
        self,
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

        self.append(link, incident, "in", source_id, ref, reason, send, system="servicenow")


def shadows(store: Store, link: Link, side: str, values: Mapping[str, str]) -> Effect:
    """Record ``values`` as synced to ``side`` (an effect landing with a write's outcome)."""
    return lambda conn: store.shadows.put(link.link_id, side, values, conn=conn)


def key(link: Link) -> str:
    """The Jira key of a linked entity."""
    assert link.jira_key is not None
    return link.jira_key
