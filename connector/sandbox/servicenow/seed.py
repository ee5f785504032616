"""Reference data of the simulated instance, all in one readable place.

Users (the spec's plus ``admin``), assignment groups, vendor companies, business services,
configuration items and the choice lists the connector reads. sys_ids are derived from the
table and name, so they are the same after every reset and in every test run; ``admin`` has the
sys_id it has on every real instance.
"""

from __future__ import annotations

import hashlib

from connector.core.vocabulary import CLOSE_CODES, CORE_INCIDENT_STATES, IMPACTS, PRIORITIES, URGENCIES
from connector.sandbox.servicenow.tables import Database
from connector.sandbox.spec import ServiceNowSpec, SnowUser

ADMIN = SnowUser("admin", "admin", "System Administrator", roles=("admin",))
ADMIN_SYS_ID = "6816f79cc0a8016401c5a33be04be441"

GROUPS = (
    "Service Desk",
    "MIM Team",
    "ACME Hosting L2",
    "Network Operations",
    "Payments Team",
    "Database Team",
)
COMPANIES = ("ACME Corp", "Globex", "Initech")
SERVICES = {
    "Payments": "1 - most critical",
    "Email": "2 - somewhat critical",
    "Intranet": "3 - less critical",
    "Website": "1 - most critical",
}
CONFIGURATION_ITEMS = (
    # name, vendor, business criticality, support group
    ("web-lb-01", "ACME Corp", "1 - most critical", "ACME Hosting L2"),
    ("db-cluster-01", "ACME Corp", "1 - most critical", "Database Team"),
    ("storage-array-02", "ACME Corp", "2 - somewhat critical", "ACME Hosting L2"),
    ("wan-link-fra", "Globex", "2 - somewhat critical", "Network Operations"),
    ("wan-link-ams", "Globex", "2 - somewhat critical", "Network Operations"),
    ("payment-gateway", "Initech", "1 - most critical", "Payments Team"),
    ("mail-01", "", "3 - less critical", "Service Desk"),
    ("intranet-web", "", "4 - not critical", "Service Desk"),
)
CHOICES: dict[tuple[str, str], dict[str, str]] = {
    ("incident", "state"): dict(CORE_INCIDENT_STATES),
    ("incident", "incident_state"): dict(CORE_INCIDENT_STATES),
    **{(table, "priority"): dict(PRIORITIES) for table in ("incident", "problem")},
    **{(table, "impact"): dict(IMPACTS) for table in ("incident", "problem")},
    **{(table, "urgency"): dict(URGENCIES) for table in ("incident", "problem")},
    ("incident", "major_incident_state"): {
        "proposed": "Proposed",
        "accepted": "Accepted",
        "rejected": "Rejected",
        "canceled": "Canceled",
    },
    ("incident", "close_code"): {code: code for code in CLOSE_CODES},
    ("incident", "hold_reason"): {
        "1": "Awaiting Caller",
        "3": "Awaiting Problem",
        "4": "Awaiting Vendor",
        "5": "Awaiting Change",
    },
    ("problem", "state"): {
        "101": "New",
        "102": "Assess",
        "103": "Root Cause Analysis",
        "104": "Fix in Progress",
        "106": "Resolved",
        "107": "Closed",
    },
}
"""(table, column) -> value -> label, seeded as ``sys_choice`` rows (readable, and editable, through the API)."""


def reference_sys_id(table: str, key: str) -> str:
    """The stable sys_id of seeded record ``key`` of ``table``."""
    return hashlib.md5(f"{table}:{key}".encode(), usedforsecurity=False).hexdigest()


def users_of(spec: ServiceNowSpec) -> tuple[SnowUser, ...]:
    """The users who can log in: the spec's, plus ``admin`` unless the spec defines it."""
    if any(user.user_name == ADMIN.user_name for user in spec.users):
        return spec.users
    return (*spec.users, ADMIN)


def user_sys_id(user_name: str) -> str:
    """The sys_id of a seeded user."""
    return ADMIN_SYS_ID if user_name == ADMIN.user_name else reference_sys_id("sys_user", user_name)


def _put(database: Database, table: str, key: str, values: dict[str, str], now: str, sys_id: str = "") -> str:
    record = {name: value for name, value in values.items() if value}
    record.update(
        sys_id=sys_id or reference_sys_id(table, key),
        sys_created_on=now,
        sys_created_by="system",
        sys_updated_on=now,
        sys_updated_by="system",
        sys_mod_count="0",
    )
    database.table(table).put(record)
    return record["sys_id"]


def seed(database: Database, spec: ServiceNowSpec, now: str) -> None:
    """Fill ``database`` with the reference data (users always; the rest when the spec asks for it)."""
    for user in users_of(spec):
        first, _, last = user.name.partition(" ")
        values = {
            "user_name": user.user_name,
            "name": user.name,
            "first_name": first,
            "last_name": last,
            "email": user.email,
            "time_zone": user.time_zone,
            "active": "true",
        }
        _put(database, "sys_user", user.user_name, values, now, user_sys_id(user.user_name))
    if not spec.seed_reference_data:
        return
    groups = {
        name: _put(database, "sys_user_group", name, {"name": name, "active": "true"}, now) for name in GROUPS
    }
    companies = {
        name: _put(database, "core_company", name, {"name": name, "vendor": "true"}, now)
        for name in COMPANIES
    }
    for name, criticality in SERVICES.items():
        values = {"name": name, "business_criticality": criticality, "operational_status": "1"}
        _put(database, "cmdb_ci_service", name, values, now)
    for name, vendor, criticality, group in CONFIGURATION_ITEMS:
        values = {
            "name": name,
            "business_criticality": criticality,
            "vendor": companies.get(vendor, ""),
            "support_group": groups[group],
            "operational_status": "1",
        }
        _put(database, "cmdb_ci", name, values, now)
    for (table, element), labels in CHOICES.items():
        for sequence, (value, label) in enumerate(labels.items(), start=1):
            values = {
                "name": table,
                "element": element,
                "value": value,
                "label": label,
                "sequence": str(sequence),
                "language": "en",
                "inactive": "false",
            }
            _put(database, "sys_choice", f"{table}.{element}.{value}", values, now)
