"""Which suppliers an incident goes to, and why. Pure.

A supplier gets an incident when its routing conditions match and one of its triggers holds:
``assignment`` (as soon as the conditions match) or ``major_incident`` (once the incident is an
accepted major incident). A child incident is not mirrored on its own: its major incident speaks
for it, and reaches every supplier one of its children implicates (same triggers). Once linked, an
incident stays mirrored whatever later changes say.
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.config.supplier_file import SupplierMapping
from connector.core.models import Incident
from connector.rules.conditions import Context, evaluate


@dataclass(frozen=True)
class Route:
    """The routing decision for one supplier."""

    routed: bool
    reason: str


def route(mapping: SupplierMapping, incident: Incident, context: Context) -> Route:
    """Whether ``incident`` should be mirrored to the supplier of ``mapping`` now."""
    if incident.get("parent_incident"):
        return Route(False, "a child incident: its major incident is mirrored instead")
    outcome = evaluate(mapping.routing.match, incident, context, path="routing.match")
    if not outcome.matched:
        failed = outcome.failed[0] if outcome.failed else None
        detail = f": {failed.description} (actual {failed.actual})" if failed else ""
        return Route(False, f"routing conditions of {mapping.supplier} do not match{detail}")
    if "assignment" in mapping.routing.triggers:
        return Route(True, f"matches the routing of {mapping.supplier}")
    if triggered(mapping, incident):
        return Route(True, f"accepted major incident matching the routing of {mapping.supplier}")
    return Route(False, f"{mapping.supplier} is engaged for accepted major incidents only")


def implicates(mapping: SupplierMapping, child: Incident, context: Context) -> bool:
    """Whether a child incident's own fields match the supplier's routing conditions."""
    return evaluate(mapping.routing.match, child, context, path="routing.match").matched


def triggered(mapping: SupplierMapping, incident: Incident) -> bool:
    """Whether one of the supplier's triggers holds for ``incident`` (conditions aside)."""
    return "assignment" in mapping.routing.triggers or incident.get("major_incident_state") == "accepted"
