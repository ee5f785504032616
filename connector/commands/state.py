"""``mim-connector state``: look at and act on the state store (dead letters, watermarks, links).

``state show`` prints the store's totals, the instances sharing it (with the roles each holds) and
the work queue's depth per lane (:mod:`connector.commands.state_runtime`); ``state show INC0010001``
(a number or a sys_id) prints what the store knows of one incident: its link at each supplier (key,
URL, last sync, the supplier status last seen), open intents, dead letters and promotion decisions. A link whose
create never succeeded (``creating``) is shown as "not created" and never counted as linked.
Both print JSON with ``--json``. Reads only (opening the store migrates its schema).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from connector.commands.state_runtime import runtime_state, runtime_text
from connector.config import LoadedConfig, load_config
from connector.core.links import Link
from connector.core.times import format_servicenow_time
from connector.mirror.view import SUPPLIER_STATUS
from connector.runtime.assembly import open_store
from connector.store import Store
from connector.store.decisions import IMPLICATED, DecisionRecord
from connector.store.dlq import QUEUED, DeadLetter
from connector.store.intents import Intent
from connector.store.progress import IncidentRecord

LINK_STATES = {"linked": "linked", "creating": "not created", "unlinked": "unlinked"}
"""How a link's state reads: ``creating`` is a create that has not (yet) succeeded."""
INTENT_STATES = ("pending", "uncertain", "failed", "done", "abandoned")
_SYS_ID = re.compile(r"^[0-9a-f]{32}$")


def _open(config: Path) -> tuple[LoadedConfig, Store]:
    loaded = load_config(config)
    return loaded, open_store(loaded)


def _label(store: Store, entity: str) -> str:
    incident_sys_id, _, supplier = entity.rpartition(":")
    record = store.incidents.get(incident_sys_id)
    return f"{record.number if record else incident_sys_id} @ {supplier}"


def _time(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z" if moment is not None else "-"


def _sn_time(moment: datetime | None) -> str | None:
    return format_servicenow_time(moment) if moment is not None else None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def dlq_list(config: Path, *, every: bool = False, out: TextIO = sys.stdout) -> int:
    """Print the dead letters (queued ones, or all with ``every``)."""
    _loaded, store = _open(config)
    try:
        letters = store.dlq.list(None if every else "queued")
        if not letters:
            print("the dead-letter queue is empty", file=out)
        for letter in letters:
            due = (
                "next cycle (retry asked)"
                if letter.manual
                else f"{letter.next_attempt_at:%Y-%m-%d %H:%M:%S}Z"
            )
            print(
                f"#{letter.letter_id} {_label(store, letter.entity)} [{letter.state}] attempts={letter.attempts} "
                f"held={letter.held_events} next={due}\n"
                f"    {letter.error_type}: {letter.error}",
                file=out,
            )
    finally:
        store.close()
    return 0


def dlq_act(config: Path, letter_id: int, action: str, *, out: TextIO = sys.stdout) -> int:
    """``retry`` (now, at the next cycle) or ``drop`` one queued letter; exit 1 if there is no such letter."""
    _loaded, store = _open(config)
    try:
        done = store.dlq.retry_now(letter_id) if action == "retry" else store.dlq.drop(letter_id)
    finally:
        store.close()
    message = {"retry": "will be retried at the next cycle", "drop": "dropped"}[action]
    print(f"#{letter_id} {message}" if done else f"no queued dead letter #{letter_id}", file=out)
    return 0 if done else 1


def show(
    config: Path, incident: str | None = None, *, as_json: bool = False, out: TextIO = sys.stdout
) -> int:
    """Print the store's totals, or everything it knows of ``incident``; exit 1 if it knows nothing of it."""
    loaded, store = _open(config)
    try:
        if incident is None:
            totals = _totals(store) | runtime_state(store, loaded.connector.store.lease.ttl)
            out.write(
                json.dumps(totals, indent=2) + "\n"
                if as_json
                else _totals_text(totals) + runtime_text(totals)
            )
            return 0
        found = incident_state(store, incident)
        if found is None:
            print(
                f"error: {incident} is not in the state store (this connector never processed it)",
                file=sys.stderr,
            )
            return 1
        if as_json:
            out.write(json.dumps(found.as_json(loaded), indent=2) + "\n")
        else:
            out.write(found.text(loaded))
        return 0
    finally:
        store.close()


# --- the whole store ----------------------------------------------------------------------------


def _totals(store: Store) -> dict[str, Any]:
    links = {
        supplier: {LINK_STATES.get(state, state).replace(" ", "_"): count for state, count in states.items()}
        for supplier, states in sorted(store.links.counts().items())
    }
    return {
        "watermarks": {
            source: _iso(mark.position) for source, mark in sorted(store.watermarks.all().items())
        },
        "links": {
            supplier: {name: counts.get(name, 0) for name in ("linked", "not_created", "unlinked")}
            for supplier, counts in links.items()
        },
        "intents": _ordered(store.intents.counts()),
        "dead_letters_queued": len(store.dlq.blocked()),
    }


def _ordered(counts: Mapping[str, int]) -> dict[str, int]:
    known = [state for state in INTENT_STATES if counts.get(state)]
    return {state: counts[state] for state in [*known, *sorted(set(counts) - set(INTENT_STATES))]}


def _totals_text(totals: Mapping[str, Any]) -> str:
    lines = [f"watermark {source}: {position}" for source, position in totals["watermarks"].items()]
    for supplier, counts in totals["links"].items():
        others = [
            f"{counts[name]} {name.replace('_', ' ')}" for name in ("not_created", "unlinked") if counts[name]
        ]
        lines.append(f"links {supplier}: {counts['linked']}" + (f" ({', '.join(others)})" if others else ""))
    intents = totals["intents"]
    lines.append("intents: " + (", ".join(f"{count} {state}" for state, count in intents.items()) or "none"))
    lines.append(f"dead letters queued: {totals['dead_letters_queued']}")
    return "\n".join(lines) + "\n"


# --- one incident -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SupplierState:
    """An incident at one supplier: its link, when it last synced, the supplier status last seen."""

    link: Link
    last_sync: datetime
    supplier_status: tuple[str, datetime] | None


@dataclass(frozen=True)
class IncidentState:
    """What the store knows of one incident."""

    sys_id: str
    record: IncidentRecord | None
    suppliers: Sequence[SupplierState]
    open_intents: Sequence[Intent]
    dead_letters: Sequence[DeadLetter]
    decisions: Sequence[DecisionRecord]
    numbers: Mapping[str, str]
    """sys_id -> number of the other incidents the decisions name (parents, children)."""

    @property
    def number(self) -> str:
        """The incident's number, or its sys_id when the store has no version of it."""
        return self.record.number if self.record else self.sys_id

    def linked(self) -> list[str]:
        """Suppliers where the incident's issue exists and is linked."""
        return [s.link.supplier for s in self.suppliers if s.link.state == "linked"]

    def totals(self) -> dict[str, Any]:
        """The counts of :meth:`text`'s last line."""
        by_state: dict[str, list[str]] = {}
        for supplier in self.suppliers:
            by_state.setdefault(LINK_STATES.get(supplier.link.state, supplier.link.state), []).append(
                supplier.link.supplier
            )
        return {
            "linked": by_state.get("linked", []),
            "not_created": by_state.get("not created", []),
            "unlinked": by_state.get("unlinked", []),
            "open_intents": len(self.open_intents),
            "dead_letters_queued": sum(1 for letter in self.dead_letters if letter.state == QUEUED),
            "decisions": len(self.decisions),
        }

    def text(self, loaded: LoadedConfig) -> str:
        """The human-readable view, one line per link, intent, letter and decision."""
        lines = [self._headline(loaded), "links:"]
        width = max((len(s.link.supplier) for s in self.suppliers), default=0)
        lines += [f"  {s.link.supplier:<{width}}  {_link_line(s)}" for s in self.suppliers] or ["  none"]
        lines.append("open intents:" + ("" if self.open_intents else " none"))
        lines += [
            f"  #{i.intent_id} {_supplier_of(i.entity)} {i.operation} {i.target} [{i.state}] "
            f"attempts={i.attempts} since {_time(i.created_at)}"
            for i in self.open_intents
        ]
        lines.append("dead letters:" + ("" if self.dead_letters else " none"))
        for letter in self.dead_letters:
            lines.append(
                f"  #{letter.letter_id} {_supplier_of(letter.entity)} [{letter.state}] attempts={letter.attempts} "
                f"held={letter.held_events} first={_time(letter.first_failed_at)} "
                f"last={_time(letter.last_failed_at)}"
                + (f" next={_time(letter.next_attempt_at)}" if letter.state == QUEUED else "")
            )
            lines.append(f"      {letter.error_type}: {letter.error}")
        lines.append("decisions:" + ("" if self.decisions else " none"))
        lines += [f"  {_time(d.at)} {self._decision_line(d)}" for d in self.decisions]
        totals = self.totals()
        parts = [
            f"{len(totals['linked'])} linked" + _names(totals["linked"]),
            *(
                [f"{len(totals['not_created'])} not created" + _names(totals["not_created"])]
                if totals["not_created"]
                else []
            ),
            *(
                [f"{len(totals['unlinked'])} unlinked" + _names(totals["unlinked"])]
                if totals["unlinked"]
                else []
            ),
            _plural(totals["open_intents"], "open intent"),
            _plural(totals["dead_letters_queued"], "queued dead letter"),
            _plural(totals["decisions"], "decision"),
        ]
        lines.append("totals: " + ", ".join(parts))
        return "\n".join(lines) + "\n"

    def as_json(self, loaded: LoadedConfig) -> dict[str, Any]:
        """The same as :meth:`text`, as JSON-ready data."""
        record = self.record
        return {
            "incident": {
                "sys_id": self.sys_id,
                "number": record.number if record else None,
                "mod_count": record.mod_count if record else None,
                "updated_on": _sn_time(record.sys_updated_on) if record else None,
                **{name: (record.snapshot.get(name) if record else None) for name in _FACTS},
            },
            "suppliers": [
                {
                    "supplier": s.link.supplier,
                    "state": LINK_STATES.get(s.link.state, s.link.state).replace(" ", "_"),
                    "jira_key": s.link.jira_key,
                    "jira_url": s.link.jira_url,
                    "since": _iso(s.link.created_at),
                    "last_sync": _iso(s.last_sync) if s.link.state != "creating" else None,
                    "supplier_status": s.supplier_status[0] if s.supplier_status else None,
                    "supplier_status_seen": _iso(s.supplier_status[1]) if s.supplier_status else None,
                }
                for s in self.suppliers
            ],
            "open_intents": [
                {
                    "intent_id": i.intent_id,
                    "supplier": _supplier_of(i.entity),
                    "operation": i.operation,
                    "target": i.target,
                    "state": i.state,
                    "attempts": i.attempts,
                    "since": _iso(i.created_at),
                }
                for i in self.open_intents
            ],
            "dead_letters": [
                {
                    "letter_id": letter.letter_id,
                    "supplier": _supplier_of(letter.entity),
                    "state": letter.state,
                    "attempts": letter.attempts,
                    "held_events": letter.held_events,
                    "error_type": letter.error_type,
                    "error": letter.error,
                    "first_failed_at": _iso(letter.first_failed_at),
                    "last_failed_at": _iso(letter.last_failed_at),
                    "next_attempt_at": _iso(letter.next_attempt_at) if letter.state == QUEUED else None,
                }
                for letter in self.dead_letters
            ],
            "decisions": [
                {
                    "decision_id": d.decision_id,
                    "at": _iso(d.at),
                    "rule": d.rule,
                    "action": d.action,
                    "mode": d.mode,
                    "state": d.state,
                    "engage": list(d.engage),
                    "parent": self.numbers.get(d.parent_sys_id or "", d.parent_sys_id),
                }
                for d in self.decisions
            ],
            "totals": self.totals(),
        }

    def _headline(self, loaded: LoadedConfig) -> str:
        record = self.record
        if record is None:
            return f"{self.sys_id}: no version of this incident in the store"
        labels = loaded.connector.servicenow.incident_states
        facts = []
        for name in _FACTS:
            value = str(record.snapshot.get(name) or "")
            if value:
                label = labels.get(value) if name == "state" else None
                facts.append(f"{name.replace('_', ' ')} {value}" + (f" ({label})" if label else ""))
        return (
            f"{record.number} (sys_id {record.sys_id}): version {record.mod_count} of "
            f"{_sn_time(record.sys_updated_on) or '-'} UTC" + (f"; {', '.join(facts)}" if facts else "")
        )

    def _decision_line(self, decision: DecisionRecord) -> str:
        if decision.state == IMPLICATED:
            child = str(decision.material.get("child", ""))
            return (
                f"a child incident, {self.numbers.get(child, child)}, implicates "
                f"{', '.join(decision.engage) or 'no supplier'}"
            )
        line = f"rule {decision.rule}: {decision.action} ({decision.mode}) -> {decision.state}"
        if decision.engage:
            line += f", engaging {', '.join(decision.engage)}"
        if decision.parent_sys_id:
            line += f", under {self.numbers.get(decision.parent_sys_id, decision.parent_sys_id)}"
        return line


_FACTS = ("state", "priority", "major_incident_state")


def _names(suppliers: Sequence[str]) -> str:
    return f" ({', '.join(suppliers)})" if suppliers else ""


def _supplier_of(entity: str) -> str:
    return entity.rpartition(":")[2]


def _link_line(supplier: SupplierState) -> str:
    link = supplier.link
    if link.state == "creating":
        return (
            f"not created: its create has not succeeded (tried since {_time(link.created_at)}); "
            "not counted as linked"
        )
    where = f"{link.jira_key or '-'} {link.jira_url or ''}".strip()
    status = supplier.supplier_status
    seen = f"; supplier status {status[0]} (seen {_time(status[1])})" if status else ""
    return f"{where} - {LINK_STATES.get(link.state, link.state)}; last sync {_time(supplier.last_sync)}{seen}"


def incident_state(store: Store, incident: str) -> IncidentState | None:
    """What ``store`` knows of ``incident`` (a number such as ``INC0010001``, or a sys_id); ``None`` if nothing."""
    record = store.incidents.by_number(incident) or store.incidents.by_number(incident.upper())
    if record is None and _SYS_ID.match(incident):
        record = store.incidents.get(incident)
    sys_id = record.sys_id if record else incident
    links = store.links.for_incident(sys_id)
    if record is None and not links:
        return None
    suppliers = [
        SupplierState(
            link,
            store.links.last_synced(link),
            store.shadows.dated(link.link_id, "servicenow", SUPPLIER_STATUS),
        )
        for link in links
    ]
    decisions = store.decisions.of_incident(sys_id)
    named = {d.parent_sys_id for d in decisions if d.parent_sys_id}
    named |= {
        str(d.material.get("child")) for d in decisions if d.state == IMPLICATED and d.material.get("child")
    }
    numbers = {other: found.number for other in named if (found := store.incidents.get(other)) is not None}
    return IncidentState(
        sys_id,
        record,
        suppliers,
        store.intents.unfinished_of_incident(sys_id),
        store.dlq.of_incident(sys_id),
        decisions,
        numbers,
    )
