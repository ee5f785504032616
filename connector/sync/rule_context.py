"""The promotion rules' context in the daemon: what their conditions read beyond the incident.

:class:`StoreContext` is the :class:`~connector.rules.conditions.Context` of a daemon cycle (and
of ``mim-connector explain``): since when a ``for:`` condition has held comes from the store
(read once per incident per cycle), and a cluster is counted among the recent incidents given
to it; :func:`cluster_members` names a cluster's incidents, the ones the rules may still gather
or all of them. It reads the store, never ServiceNow, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from connector.config.conditions import ClusterCondition
from connector.core.models import Incident
from connector.core.times import servicenow_precision, servicenow_time_or_none
from connector.rules.book import eligibility
from connector.rules.conditions import evaluate
from connector.store import Store
from connector.store.progress import IncidentRecord


class RecentIncidents:
    """The incidents opened within the rules' widest window, kept small.

    Each is remembered as its ``opened_at`` and the values of the fields clusters group by (a
    few hundred bytes, not its snapshot of a few kB); the whole incident (this cycle's version,
    else the store's) is read only when a cluster must look at its fields or gather it. Built
    from the store a page at a time. The window holds what opens in it (at a storm's rate, or a
    replay's), so it must not hold whole incidents.
    """

    def __init__(
        self,
        store: Store,
        fresh: Mapping[str, Incident] | None = None,
        records: Iterable[IncidentRecord] = (),
        fields: Iterable[str] = (),
    ) -> None:
        """``records`` are the stored incidents of the window, ``fresh`` this cycle's versions (they win)."""
        self.store = store
        self.fields = tuple(dict.fromkeys(fields))
        self._seen: dict[str, tuple[str, tuple[str, ...]]] = {}
        for record in records:
            self._remember(incident_of(record))
        self.fresh: dict[str, Incident] = {}
        self.take(fresh or {})

    def take(self, fresh: Mapping[str, Incident]) -> None:
        """This cycle's versions: they replace the last cycle's and are remembered."""
        self.fresh = dict(fresh)
        for incident in self.fresh.values():
            self._remember(incident)

    def forget_opened_before(self, opened_at: str) -> None:
        """Drop the incidents opened before ``opened_at`` (ServiceNow's text, whose order is time's)."""
        for sys_id in [s for s, seen in self._seen.items() if not seen[0] or seen[0] < opened_at]:
            del self._seen[sys_id]

    def _remember(self, incident: Incident) -> None:
        values = tuple(incident.get(name) for name in self.fields)
        self._seen[incident.sys_id] = (incident.get("opened_at"), values)

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, sys_id: object) -> bool:
        return sys_id in self._seen

    def get(self, sys_id: str) -> Incident | None:
        """The incident, if it is in the window: this cycle's version, else the store's."""
        if sys_id in self.fresh:
            return self.fresh[sys_id]
        if sys_id not in self._seen:
            return None
        record = self.store.incidents.get(sys_id)
        return incident_of(record) if record is not None else None

    def sharing(self, name: str, value: str) -> list[tuple[str, str]]:
        """``(sys_id, opened_at)`` of the incidents whose field ``name`` is ``value``."""
        if name in self.fields:
            index = self.fields.index(name)
            return [(sys_id, seen[0]) for sys_id, seen in self._seen.items() if seen[1][index] == value]
        # A field no rule was seen to group by: read the incidents themselves (correct, slower).
        found = (self.get(sys_id) for sys_id in list(self._seen))
        return [(i.sys_id, i.get("opened_at")) for i in found if i is not None and i.get(name) == value]


@dataclass
class StoreContext:
    """Rule context in the daemon: time conditions from the store, clusters among recent incidents."""

    now: datetime
    store: Store
    recent: RecentIncidents
    _held: dict[str, dict[str, datetime]] = field(default_factory=dict)

    def held_since(self, incident: Incident, key: str) -> datetime | None:
        """Since when ``key`` has held for ``incident`` (read once per incident per cycle)."""
        if incident.sys_id not in self._held:
            self._held[incident.sys_id] = self.store.conditions.all_for(incident.sys_id)
        return self._held[incident.sys_id].get(key)

    def cluster_size(self, incident: Incident, cluster: ClusterCondition) -> int:
        """How many incidents opened within the window (this one included, any state) share its value."""
        if cluster.cluster.where is not None:
            return len(cluster_members(incident, cluster, self.recent, self, gatherable_only=False))
        value = incident.get(cluster.cluster.by)
        if not value:
            return 0
        others = _in_window(incident, cluster, self.recent, self.now)
        return 1 + len(others)


def cluster_members(
    incident: Incident,
    cluster: ClusterCondition,
    recent: RecentIncidents,
    context: StoreContext,
    *,
    gatherable_only: bool = True,
) -> list[Incident]:
    """The incidents of ``incident``'s cluster, earliest opened first (it included).

    Counting a cluster takes every incident with the value opened within the window; gathering
    one takes only those the rules may still act on (not already children or major incidents).
    """
    spec = cluster.cluster
    if not incident.get(spec.by):
        return []
    members = {incident.sys_id: incident}
    for sys_id in _in_window(incident, cluster, recent, context.now):
        other = recent.get(sys_id)
        if other is None:
            continue
        if gatherable_only and not eligibility(other).eligible:
            continue
        if spec.where is not None and not evaluate(spec.where, other, context).matched:
            continue
        members[other.sys_id] = other
    return sorted(members.values(), key=lambda i: (i.get("opened_at"), i.number))


def _in_window(
    incident: Incident, cluster: ClusterCondition, recent: RecentIncidents, now: datetime
) -> list[str]:
    """The sys_ids of the other incidents sharing ``incident``'s value, opened within the cluster's window."""
    spec = cluster.cluster
    oldest = servicenow_precision(now - spec.within)
    found = []
    for sys_id, opened_at in recent.sharing(spec.by, incident.get(spec.by)):
        opened = servicenow_time_or_none(opened_at)
        if sys_id != incident.sys_id and opened is not None and opened >= oldest:
            found.append(sys_id)
    return found


def incident_of(record: IncidentRecord) -> Incident:
    """The incident a stored version describes."""
    return Incident(
        record.sys_id, record.number, record.mod_count, record.sys_updated_on, dict(record.snapshot)
    )
