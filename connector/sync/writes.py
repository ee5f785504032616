"""The one write protocol: an intent before every external write, its outcome after, never a blind repeat.

Every write to ServiceNow or a supplier's Jira (mirroring, problems, promotion) goes through
:class:`Writes`: the intent is committed before the request is sent; the answer's outcome, its
audit entry and the store effects it makes true (shadows, links, ledger entries) land in **one**
transaction, so a crash leaves either all of them or an intent still open. A failure records the
intent ``failed``; a lost answer (:class:`~connector.core.errors.UncertainOutcome`) records it
``uncertain``: both the crash's ``pending`` and that are *open writes*, settled later by looking
for the write's stamp on the system written (:meth:`Writes.settle`), never sent again blindly.

A plan's writes defer what an answer settles (``deferred=True``): it waits in memory and lands in
the transaction that records the plan's next intent, or when the plan ends (:meth:`Writes.land`).
A crash in between leaves an open intent, settled like any other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection

from connector.core.errors import ConnectorError, UncertainOutcome
from connector.core.ports import OpenWrite, Settled, Write, Written
from connector.store import Store
from connector.store.intents import IntentState
from connector.telemetry import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")
_fence = threading.local()


@contextmanager
def fenced(check: Callable[[Connection], None]) -> Iterator[None]:
    """Run ``check`` in the transaction of every intent this thread records meanwhile.

    A worker holds its claim this way (:meth:`connector.store.queue.WorkQueue.check`): ``check``
    raises when the claim was lost, which rolls the intent back before its write is sent.
    """
    previous = getattr(_fence, "check", None)
    _fence.check = check
    try:
        yield
    finally:
        _fence.check = previous


Effect = Callable[[Connection], None]
"""A store change made in the transaction of a write's outcome."""


class Writes:
    """Intents, outcomes and audit entries of external writes, in the store (a :class:`~connector.core.ports.WriteLedger`).

    Not shared between threads when ``deferred``: make one per run of writes (one per applied plan).
    """

    def __init__(self, store: Store, *, deferred: bool = False) -> None:
        """``deferred``: land what an answer settles with the next transaction (see the module)."""
        self.store = store
        self.deferred = deferred
        self._waiting: list[Effect] = []

    # --- the protocol --------------------------------------------------------------------------------

    def write(self, write: Write, send: Callable[[], T], written: Callable[[T], Written] | None = None) -> T:
        """Record the intent, send, record the outcome; return ``send``'s answer (see :meth:`send`)."""
        return self.send(self.begin(write), write, send, written)

    def begin(self, write: Write, conn: Connection | None = None) -> int:
        """Record ``write``'s intent (in ``conn``'s transaction, else one of its own); return its id.

        Either way, the transaction first lands what earlier answers settled, and commits before
        the write is sent.
        """
        if conn is not None:
            return self._begin(write, conn)
        with self.transaction() as tx:
            return self._begin(write, tx)

    def send(
        self,
        intent_id: int,
        write: Write,
        send: Callable[[], T],
        written: Callable[[T], Written] | None = None,
        *,
        effects: Callable[[Connection, T], None] | None = None,
        failed: Callable[[Connection, ConnectorError], None] | None = None,
    ) -> T:
        """Send the write of intent ``intent_id`` and record its outcome; return ``send``'s answer.

        On an answer, ``written`` says what to record of it and ``effects(conn, answer)`` records
        what else it makes true in the store: both land in the outcome's transaction (now, or with
        the next one when deferred). On a :class:`~connector.core.errors.ConnectorError`, the
        intent is recorded ``failed`` (``uncertain`` when the answer was lost), with
        ``failed(conn, error)`` in the same transaction, then the error is re-raised.
        """
        try:
            answer = send()
        except ConnectorError as exc:
            self._failed(intent_id, write, exc, failed)
            raise
        settled = written(answer) if written is not None else Written()

        def record(conn: Connection) -> None:
            if effects is not None:
                effects(conn, answer)
            self._record(conn, intent_id, write, "done", settled)

        if self.deferred:
            self.later(record)
        else:
            with self.transaction() as conn:
                record(conn)
        metrics.WRITES.labels(write.system, write.operation, "done").inc()
        return answer

    def record(self, write: Write, written: Written | None = None, *, conn: Connection | None = None) -> None:
        """Audit a change of what the store knows that sends nothing (an adoption, a release).

        In ``conn``'s transaction if given (with the change itself), else in one of its own.
        """
        if conn is None:
            with self.transaction() as tx:
                self.record(write, written, conn=tx)
            return
        self._audit(conn, write, written or Written())

    # --- open writes ---------------------------------------------------------------------------------

    def open_writes(self, scope: str) -> list[OpenWrite]:
        """Open writes of the entities ``<incident_sys_id>:<scope>``, oldest first."""
        return [_open(intent) for intent in self.store.intents.unfinished_in_scope(scope)]

    def open_writes_of(self, entity: str) -> list[OpenWrite]:
        """Open writes of one entity, oldest first."""
        return [_open(intent) for intent in self.store.intents.unfinished(entity)]

    def settle(
        self,
        intent_id: int,
        state: Settled,
        outcome: Mapping[str, Any] | None = None,
        *,
        conn: Connection | None = None,
        effect: Effect | None = None,
    ) -> None:
        """Record what an open write turned out to be (``effect`` in the same transaction)."""
        if conn is not None:
            if effect is not None:
                effect(conn)
            self.store.intents.finish(intent_id, state, outcome, conn=conn)
            return
        with self.store.transaction() as tx:
            self.settle(intent_id, state, outcome, conn=tx, effect=effect)

    # --- transactions --------------------------------------------------------------------------------

    def later(self, effect: Effect) -> None:
        """Have ``effect`` land with the next transaction of these writes (at the latest :meth:`land`)."""
        self._waiting.append(effect)

    def land(self) -> None:
        """Commit now what earlier answers settled (the run of writes ends: no transaction follows to carry it)."""
        if self._waiting:
            with self.transaction():
                pass

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A store transaction that first lands what waits since the last answer.

        Never held across a request: it opens, writes and commits between two of them.
        """
        with self.store.transaction() as conn:
            waiting, self._waiting = self._waiting, []
            for effect in waiting:
                effect(conn)
            yield conn

    # --- records -------------------------------------------------------------------------------------

    def _begin(self, write: Write, conn: Connection) -> int:
        check = getattr(_fence, "check", None)
        if check is not None:
            check(conn)
        intent = self.store.intents.begin(
            write.entity, write.operation, write.intent_target, write.stamp, dict(write.payload), conn=conn
        )
        return intent.intent_id

    def _failed(
        self,
        intent_id: int,
        write: Write,
        exc: ConnectorError,
        failed: Callable[[Connection, ConnectorError], None] | None,
    ) -> None:
        state: IntentState = "uncertain" if isinstance(exc, UncertainOutcome) else "failed"
        error = {"error": type(exc).__name__, "message": str(exc)[:500]}
        with self.transaction() as conn:
            if failed is not None:
                failed(conn, exc)
            self._record(conn, intent_id, write, state, Written(error, after={"error": str(exc)[:500]}))
        metrics.WRITES.labels(write.system, write.operation, state).inc()

    def _record(
        self, conn: Connection, intent_id: int, write: Write, state: IntentState, written: Written
    ) -> None:
        """The intent's outcome and the audit entry that says so (whose outcome is the intent's ``state``)."""
        self.store.intents.finish(intent_id, state, written.outcome, conn=conn)
        self._audit(conn, write, written, intent_id=intent_id, outcome=state)

    def _audit(
        self,
        conn: Connection,
        write: Write,
        written: Written,
        *,
        intent_id: int | None = None,
        outcome: str = "done",
    ) -> None:
        """The audit entry of ``write``: of an intent's outcome when ``intent_id`` is given, else of a store change."""
        self.store.audit.record(
            write.system,
            write.operation,
            written.target or write.target,
            reason=write.reason,
            before=_plain(written.before),
            after=_plain(written.after),
            intent_id=intent_id,
            outcome=outcome,
            conn=conn,
        )


def _plain(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(values) if values is not None else None


def _open(intent: Any) -> OpenWrite:
    return OpenWrite(intent.intent_id, intent.entity, intent.operation, intent.stamp, intent.created_at)
