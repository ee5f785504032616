"""The promotion rules' context in the daemon: what their conditions read beyond the incident.

:class:`StoreContext` is the :class:`~connector.rules.conditions.Context` of a daemon cycle (and
of ``mim-connector explain``): since when a ``for:`` condition has held comes from the store
(read once per incident per cycle), and a cluster is counted among the recent incidents given
to it; :func:`cluster_members` names a cluster's incidents, the ones the rules may still gather
or all of them. It reads the store, never ServiceNow, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from connector.config.conditions import ClusterCondition
from connector.core.models import Incident
from connector.core.times import servicenow_precision, servicenow_time_or_none
from connector.rules.book import eligibility
from connector.rules.conditions import evaluate
from connector.store import Store


@dataclass
class StoreContext:
    """Rule context in the daemon: time conditions from the store, clusters among recent incidents."""

    now: datetime
    store: Store
    recent: Mapping[str, Incident]
    _held: dict[str, dict[str, datetime]] = field(default_factory=dict)

    def held_since(self, incident: Incident, key: str) -> datetime | None:
        """Since when ``key`` has held for ``incident`` (read once per incident per cycle)."""
        if incident.sys_id not in self._held:
            self._held[incident.sys_id] = self.store.conditions.all_for(incident.sys_id)
        return self._held[incident.sys_id].get(key)

    def cluster_size(self, incident: Incident, cluster: ClusterCondition) -> int:
        """How many incidents opened within the window (this one included, any state) share its value."""
        return len(cluster_members(incident, cluster, self.recent, self, gatherable_only=False))


def cluster_members(
    incident: Incident,
    cluster: ClusterCondition,
    recent: Mapping[str, Incident],
    context: StoreContext,
    *,
    gatherable_only: bool = True,
) -> list[Incident]:
    """The incidents of ``incident``'s cluster, earliest opened first (it included).

    Counting a cluster takes every incident with the value opened within the window; gathering
    one takes only those the rules may still act on (not already children or major incidents).
    """
    spec = cluster.cluster
    value = incident.get(spec.by)
    if not value:
        return []
    oldest = servicenow_precision(context.now - spec.within)
    members = {incident.sys_id: incident}
    for other in recent.values():
        if other.get(spec.by) != value:
            continue
        opened = servicenow_time_or_none(other.get("opened_at"))
        if opened is None or opened < oldest:
            continue
        if gatherable_only and not eligibility(other).eligible:
            continue
        if spec.where is not None and not evaluate(spec.where, other, context).matched:
            continue
        members[other.sys_id] = other
    return sorted(members.values(), key=lambda i: (i.get("opened_at"), i.number))
