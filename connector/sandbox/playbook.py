"""What a simulated supplier engineer does with an issue, read from the supplier's mapping. Pure.

The engineer acknowledges (a comment, the issue moved to a working status, an ETA where the
mapping pulls one back) and later resolves (the root cause where the mapping has a field for it,
a comment, the issue moved to the status the mapping's ``inbound.status_map`` turns into a
resolved incident). Statuses and transitions come from the mapping's declared workflow, never
from a per-supplier script: the working status is the nearest ``in_progress`` one, the resolved
status the nearest ``done`` one the inbound status map allow-lists (any ``done`` one otherwise),
and paths avoid passing through terminal statuses (:func:`connector.mirror.statuses.find_path`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.config.supplier_file import SupplierMapping, Workflow
from connector.core.templates import placeholders
from connector.mirror.statuses import find_path
from connector.sandbox.casting import stable_hash

RESOLUTION = "Fixed"
"""The resolution a transition screen gets when it asks for one."""
ACKNOWLEDGEMENTS = (
    "Investigating on our side - we can see the alerts and are on it.",
    "Acknowledged. Our on-call engineer is looking into it now.",
    "Investigating on our side; first findings within the hour.",
)
ROOT_CAUSES = (
    "Expired TLS certificate on the load-balancer pool",
    "Storage controller failover after a firmware fault",
    "Routing change in the last maintenance window dropped a prefix",
    "Connection pool exhausted after a configuration push",
)


@dataclass(frozen=True)
class Step:
    """One transition: its declared name, the status it leads to, the fields its screen requires."""

    name: str
    to: str
    fields: Mapping[str, str]


@dataclass(frozen=True)
class Playbook:
    """One supplier's way of working an issue, as its mapping declares it."""

    project: str
    display_name: str
    workflow: Workflow
    working_status: str | None
    """Where an acknowledged issue goes (``None``: the workflow has no reachable working status)."""
    resolved_status: str | None
    """Where a resolved issue goes (``None``: no reachable ``done`` status)."""
    eta_fields: tuple[str, ...]
    """Jira fields the mapping pulls back into an incident column named like ``*eta*``."""
    root_cause_field: str | None

    @classmethod
    def for_mapping(cls, mapping: SupplierMapping) -> Playbook:
        """Read statuses, paths and fields from ``mapping``."""
        workflow = mapping.jira.workflow
        working = _nearest(workflow, workflow.initial, _of_category(workflow, "in_progress"))
        allowed = [s for s in _of_category(workflow, "done") if s in mapping.inbound.status_map]
        resolved = _nearest(workflow, working or workflow.initial, allowed or _of_category(workflow, "done"))
        return cls(
            project=mapping.jira.project,
            display_name=mapping.display_name,
            workflow=workflow,
            working_status=working,
            resolved_status=resolved,
            eta_fields=eta_fields(mapping),
            root_cause_field=mapping.problem.root_cause_field,
        )

    def path(self, start: str, target: str) -> list[Step] | None:
        """The transitions from ``start`` to ``target`` with their screens' fields, or ``None``."""
        hops = find_path(self.workflow, start, target)
        if hops is None:
            return None
        return [Step(hop.name, hop.to, _screen_values(hop.fields)) for hop in hops]

    def is_done(self, status: str) -> bool:
        """Whether ``status`` is in the ``done`` category (the engineer leaves such issues alone)."""
        spec = self.workflow.statuses.get(status)
        return spec is not None and spec.category == "done"

    def acknowledgement(self, key: str) -> str:
        """The first comment on ``key`` (varies by issue, the same on every run)."""
        return _pick(ACKNOWLEDGEMENTS, key)

    def root_cause(self, key: str) -> str:
        """The root cause the engineer records on ``key``."""
        return _pick(ROOT_CAUSES, key)

    def resolution_comment(self, key: str) -> str:
        """The last comment on ``key``."""
        return f"Fixed on our side: {self.root_cause(key).lower()}. Please confirm the service is back."

    def eta(self, now: datetime) -> str:
        """The ETA the engineer promises at ``now``: the next full hour but one, in UTC."""
        due = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=2)
        return due.strftime("%Y-%m-%d %H:%M UTC")


def eta_fields(mapping: SupplierMapping) -> tuple[str, ...]:
    """Custom fields the inbound mapping copies into an incident column whose name mentions an ETA."""
    return tuple(
        name
        for column, template in mapping.inbound.fields.items()
        if "eta" in column.lower().replace(".", "_").split("_")
        for name in placeholders(template)
        if name.startswith("customfield_")
    )


def _of_category(workflow: Workflow, category: str) -> list[str]:
    return [status for status, spec in workflow.statuses.items() if spec.category == category]


def _nearest(workflow: Workflow, start: str, candidates: Sequence[str]) -> str | None:
    """The candidate with the shortest path from ``start``; ties go to non-terminal, then declared order."""
    reachable = []
    for order, status in enumerate(candidates):
        hops = find_path(workflow, start, status)
        if hops is not None:
            terminal = workflow.statuses[status].terminal
            reachable.append((len(hops), terminal, order, status))
    return min(reachable)[3] if reachable else None


def _screen_values(fields: Mapping[str, str]) -> dict[str, str]:
    """A screen's required fields as the engineer fills them in (a resolution of their own)."""
    return {name: RESOLUTION if name == "resolution" else value for name, value in fields.items()}


def _pick(options: Sequence[str], key: str) -> str:
    return options[stable_hash(key) % len(options)]
