"""The data one sync cycle works with: why entities are looked at, what the cycle gathers, what it reports.

Plain records, no I/O: :class:`connector.sync.engine.Engine` makes a :class:`Cycle` per cycle and lets it
go after; observation (:mod:`connector.sync.observe`) fills its work and commit steps, the entity passes
(:mod:`connector.sync.entity`) its report and gatherings. ``Cycle.lock`` guards what incidents worked on
in parallel share (the report, the progress); everything else is keyed by incident.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection

from connector.config import LoadedConfig
from connector.core.models import Incident, JournalEntry
from connector.core.plan import Preview
from connector.core.ports import JiraPort, ServiceNowPort
from connector.store import Store
from connector.sync.executor import Executor


@dataclass
class Work:
    """Why an entity is looked at this cycle."""

    incident_sys_id: str
    supplier: str
    full_journal: bool = False
    reason: str = ""
    """What named it (``servicenow``, ``journal``, ``jira``...): the queue item's reason."""
    ours: bool = False
    """Named only by incident versions our own writes made (it goes to the bulk lane)."""
    journal: list[JournalEntry] = field(default_factory=list)
    stamped: list[str] = field(default_factory=list)
    """Keys of issues a search showed stamped for this entity while the store links none of them."""


@dataclass
class CycleReport:
    """What one cycle saw and did."""

    new_versions: int = 0
    journal_entries: int = 0
    issues_seen: int = 0
    entities: int = 0
    writes: int = 0
    held: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    plans: dict[str, Preview] = field(default_factory=dict)
    """Dry runs: ``INC… @ supplier`` -> the plan as a reviewer reads it."""
    decisions: dict[str, str] = field(default_factory=dict)
    """What the promotion rules decided, by incident number."""

    def absorb(self, other: CycleReport) -> None:
        """Add ``other``'s counts and records to this report (the caller serialises the calls)."""
        self.new_versions += other.new_versions
        self.journal_entries += other.journal_entries
        self.issues_seen += other.issues_seen
        self.entities += other.entities
        self.writes += other.writes
        self.held += other.held
        self.failed.update(other.failed)
        self.plans.update(other.plans)
        self.decisions.update(other.decisions)


@dataclass
class SupplierRuntime:
    """One enabled supplier as a cycle works with it: its executor, its site, the fields read from it."""

    name: str
    executor: Executor
    site: JiraPort
    account_id: str
    """Our account on the site, asked once (empty until then)."""
    issue_fields: tuple[str, ...]


@dataclass(frozen=True)
class Scope:
    """What one engine works with, shared read-only by its observer and its entity passes."""

    loaded: LoadedConfig
    store: Store
    snow: ServiceNowPort
    suppliers: Mapping[str, SupplierRuntime]
    """The enabled suppliers (the engine's own dict, so a supplier's account learnt once is seen by both)."""
    fields: list[str]
    """The incident columns every read asks for."""
    servicenow_names: frozenset[str]
    """Every name our stamps may give this instance (its URL now and before)."""
    dry_run: bool


@dataclass
class Progress:
    """Counts processed entities for an ``on_progress(done, total)`` callback."""

    callback: Callable[[int, int], None] | None
    total: int
    done: int = 0

    def step(self, lock: threading.Lock) -> None:
        """Count one more entity done (under ``lock``) and tell the callback."""
        with lock:
            self.done += 1
            if self.callback is not None:
                self.callback(self.done, self.total)


@dataclass
class Cycle:
    """What one cycle observes, works against and gathers: made per cycle by the engine, let go after it.

    Incidents are worked on in parallel: ``lock`` guards the report and the progress; the other
    gatherings are keyed by incident, and one incident's entities are worked on by one thread.
    """

    now: datetime
    report: CycleReport = field(default_factory=CycleReport)
    work: dict[str, Work] = field(default_factory=dict)
    """Entities to look at, by entity key, as observation named them."""
    snapshots: dict[str, Incident] = field(default_factory=dict)
    """New incident versions as the poll read them."""
    polled_at: datetime | None = None
    """When the poll of :attr:`snapshots` began to read (:func:`~connector.store.db.utcnow`)."""
    commit: list[Callable[[Connection], None]] = field(default_factory=list)
    """What stores the observation's progress (watermarks, processed versions), in the transaction
    that enqueues its work."""
    blocked: set[str] = field(default_factory=set)
    """Entities in the dead-letter queue..."""
    due: set[str] = field(default_factory=set)
    """...of which these are due for a retry now..."""
    asked: set[str] = field(default_factory=set)
    """...of which an operator asked for these (sent past any cool-down)."""
    progress: Progress = field(default_factory=lambda: Progress(None, 0))
    seen: dict[str, set[str]] = field(default_factory=dict)
    """Per supplier, issue versions read after our last write to them in this cycle."""
    latest: dict[str, Incident] = field(default_factory=dict)
    """Incidents as this cycle left them (our own writes included when nobody else wrote)."""
    followups: dict[str, Work] = field(default_factory=dict)
    """Entities to look at again this cycle because a sibling's write changed their incident."""
    journals: dict[str, list[JournalEntry]] = field(default_factory=dict)
    """Full journals read this cycle, by incident."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def issue_version(issue_id: str, updated: datetime | None) -> str:
    """How a search result and a direct read name the same issue version."""
    return f"{issue_id}@{updated.astimezone(UTC).isoformat(timespec='milliseconds') if updated else ''}"
