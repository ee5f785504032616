"""What becomes of an entity (incident x supplier) that failed: queued, logged, and told to the desk.

It goes to the dead-letter queue, one log line names its incident, and the incident gets a work
note once its mirror is stuck and another when it recovers.

The engine isolates failures per entity and hands each one here; the texts come from
:mod:`connector.mirror.outage` (pure), the notes go through the executor's intent protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from connector.core.errors import ConnectorError
from connector.core.links import Link, entity_key
from connector.core.models import Incident
from connector.mirror import outage
from connector.store import Store
from connector.store.dlq import DeadLetter
from connector.sync.executor import Executor
from connector.telemetry import metrics

log = logging.getLogger(__name__)


class Failures:
    """Dead letters and what the desk is told about them, for every supplier of one engine."""

    def __init__(self, store: Store, display_names: Mapping[str, str], clock: Callable[[], datetime]) -> None:
        """``clock`` is the engine's: a letter's next try is scheduled on the clock that finds it due."""
        self.store = store
        self.display_names = display_names
        self.clock = clock

    def failed(
        self,
        executor: Executor,
        incident_sys_id: str,
        incident: Incident | None,
        exc: BaseException,
        *,
        asked: bool = False,
    ) -> DeadLetter:
        """Queue the entity (or count another attempt), log it, and tell the incident once it is stuck.

        ``incident`` is ``None`` when it could not be read; ``asked``: the failed attempt was an
        operator's retry (its schedule is kept, see ``DeadLetters.fail``).
        """
        supplier = executor.supplier.name
        entity = entity_key(incident_sys_id, supplier)
        letter = self.store.dlq.fail(entity, type(exc).__name__, str(exc), now=self.clock())
        self._count(supplier)
        link = self.store.links.get(incident_sys_id, supplier)
        number = incident.number if incident else self._number(incident_sys_id)
        context = {"incident": number, "incident_sys_id": incident_sys_id, "supplier": supplier}
        if link is not None and link.jira_key:
            context["jira_key"] = link.jira_key
        when = f"{letter.next_attempt_at:%Y-%m-%d %H:%M:%S}Z"
        if asked:
            log.warning(
                "%s @ %s: the retry asked for failed; next automatic try at %s as planned: %s",
                number, supplier, when, exc, extra=context,
            )  # fmt: skip
        else:
            log.warning(
                "%s @ %s held in the dead-letter queue (attempt %s, next try at %s): %s",
                number, supplier, letter.attempts, when, exc, extra=context,
            )  # fmt: skip
        if incident is not None and link is not None and letter.attempts >= outage.STUCK_AFTER:
            self._note_stuck(executor, incident, link, letter, exc, context)
        return letter

    def succeeded(self, executor: Executor, incident: Incident) -> None:
        """The entity synced: release its dead letter, if any, and tell the incident if it was told it was stuck."""
        entity = entity_key(incident.sys_id, executor.supplier.name)
        letter = self.store.dlq.queued(entity)
        if letter is None:
            return
        self.store.dlq.resolve(entity)
        self._count(executor.supplier.name)
        link = self.store.links.get(incident.sys_id, executor.supplier.name)
        if link is None:
            return
        told = self.store.comments.get(link.link_id, "in", outage.stuck_source(letter.letter_id))
        if told is None or told.state != "done":
            return
        source = outage.recovered_source(letter.letter_id)
        ref = outage.note_ref(source, entity, letter.first_failed_at)
        display = self.display_names.get(executor.supplier.name, executor.supplier.name)
        text = outage.recovered_note(incident.number, display, letter.attempts, ref)
        try:
            executor.note_on_incident(link, incident, source, ref, text, f"the mirror to {display} recovered")
        except ConnectorError as exc:
            extra = {"incident": incident.number, "supplier": executor.supplier.name}
            log.warning("could not tell %s its mirror recovered: %s", incident.number, exc, extra=extra)

    def _note_stuck(
        self,
        executor: Executor,
        incident: Incident,
        link: Link,
        letter: DeadLetter,
        exc: BaseException,
        context: Mapping[str, str],
    ) -> None:
        """A work note (once per dead letter): the mirror to the supplier is stuck, why, and what comes next."""
        source = outage.stuck_source(letter.letter_id)
        ref = outage.note_ref(source, letter.entity, letter.first_failed_at)
        display = self.display_names.get(executor.supplier.name, executor.supplier.name)
        text = outage.stuck_note(incident.number, display, exc, letter.attempts, letter.next_attempt_at, ref)
        try:
            executor.note_on_incident(link, incident, source, ref, text, f"the mirror to {display} is stuck")
        except ConnectorError as note_error:
            log.warning(
                "could not tell %s its mirror is stuck: %s", incident.number, note_error, extra=context
            )

    def _count(self, supplier: str) -> None:
        publish_dead_letters(self.store, [supplier])

    def _number(self, incident_sys_id: str) -> str:
        """The incident's number as last seen (its sys_id if it was never seen)."""
        record = self.store.incidents.get(incident_sys_id)
        return record.number if record else incident_sys_id


def publish_dead_letters(store: Store, suppliers: Iterable[str]) -> None:
    """``mim_dead_letters`` of each of ``suppliers`` as the store has it now."""
    blocked = store.dlq.blocked()
    for supplier in suppliers:
        metrics.DEAD_LETTERS.labels(supplier).set(sum(1 for e in blocked if e.endswith(f":{supplier}")))
