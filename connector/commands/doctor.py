"""``mim-connector doctor``: live checks that the configuration fits the real systems.

ServiceNow: we can log in, and every incident column the configuration reads exists (ServiceNow
silently leaves unknown columns out of an answer). Each supplier: we can log in (and in which
time zone JQL dates will be read), the project is visible with the mapped issue type, every
status the mapping names exists, every custom field it names exists.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from connector.config import LoadedConfig, load_config
from connector.config.supplier_file import SupplierMapping
from connector.errors import ConnectorError
from connector.jira.adapter import JiraAdapter
from connector.log import configure_logging
from connector.needs import incident_fields
from connector.templates import placeholders
from connector.wiring import Runtime, build

ALWAYS_PRESENT = {"sys_id", "number", "sys_mod_count", "sys_updated_on"}


@dataclass
class Findings:
    """Check results in order: (passed, text)."""

    lines: list[tuple[bool, str]] = field(default_factory=list)

    def add(self, passed: bool, text: str) -> None:
        """Record one check."""
        self.lines.append((passed, text))

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(passed for passed, _ in self.lines)


def doctor(config: Path, *, out: TextIO = sys.stdout) -> int:
    """Run every live check, print one line each; exit 0 when all pass, 1 otherwise."""
    loaded = load_config(config)
    configure_logging(loaded.connector.logging.format, "WARNING")
    sandbox = None
    if loaded.connector.sandbox.embedded:
        from connector.sandbox.embedded import ensure_sandbox

        sandbox = ensure_sandbox(loaded)
    runtime = build(loaded)
    findings = Findings()
    try:
        _servicenow(loaded, runtime, findings)
        for name, site in runtime.sites.items():
            _supplier(name, loaded.suppliers[name], site, findings)
    finally:
        runtime.close()
        if sandbox is not None:
            sandbox.stop()
    for passed, text in findings.lines:
        print(f"{'ok  ' if passed else 'FAIL'} {text}", file=out)
    print("all checks passed" if findings.ok else "some checks failed", file=out)
    return 0 if findings.ok else 1


def _servicenow(loaded: LoadedConfig, runtime: Runtime, findings: Findings) -> None:
    url = loaded.connector.servicenow.instance_url
    fields = incident_fields(loaded)
    try:
        first = next(iter(runtime.snow.incidents_changed("1970-01-01 00:00:00", fields, 1)), None)
    except ConnectorError as exc:
        findings.add(False, f"ServiceNow {url}: {exc}")
        return
    findings.add(True, f"ServiceNow {url}: logged in as {runtime.snow.integration_user}")
    if first is None:
        findings.add(True, "ServiceNow: no incident yet to check the field names against")
        return
    missing = [name for name in fields if name not in first.fields and name not in ALWAYS_PRESENT]
    if missing:
        findings.add(False, f"ServiceNow: incident fields not on this instance: {', '.join(missing)}")
    else:
        findings.add(True, f"ServiceNow: all {len(fields)} incident fields the configuration reads exist")


def _supplier(name: str, mapping: SupplierMapping, site: JiraAdapter, findings: Findings) -> None:
    try:
        account = site.myself()
        described = site.describe(mapping.jira.project)
    except ConnectorError as exc:
        findings.add(False, f"{name}: {exc}")
        return
    findings.add(
        True,
        f"{name} ({site.deployment}): logged in as {account.display_name}, JQL dates in {account.time_zone}",
    )
    project = mapping.jira.project
    if not described.project_visible:
        findings.add(False, f"{name}: project {project} is not visible to the integration account")
    elif mapping.jira.issue_type not in described.issue_types:
        known = ", ".join(described.issue_types) or "none"
        findings.add(
            False, f"{name}: project {project} has no issue type {mapping.jira.issue_type} (has: {known})"
        )
    else:
        findings.add(True, f"{name}: project {project} with issue type {mapping.jira.issue_type}")
    wanted = set(mapping.jira.workflow.statuses)
    missing_statuses = sorted(wanted - set(described.statuses))
    findings.add(
        not missing_statuses,
        f"{name}: statuses missing on the site: {', '.join(missing_statuses)}"
        if missing_statuses
        else f"{name}: all {len(wanted)} mapped statuses exist",
    )
    used = _custom_fields(mapping)
    missing_fields = sorted(used - described.field_ids)
    findings.add(
        not missing_fields,
        f"{name}: custom fields missing on the site: {', '.join(missing_fields)}"
        if missing_fields
        else f"{name}: all {len(used)} custom fields exist",
    )


def _custom_fields(mapping: SupplierMapping) -> set[str]:
    names = set(mapping.outbound.fields)
    mim = mapping.outbound.mim
    names |= {
        f for f in (mim.field, mim.bridge_field, mim.next_update_field, mapping.problem.root_cause_field) if f
    }
    for template in mapping.inbound.fields.values():
        names |= {n for n in placeholders(template) if n.startswith("customfield_")}
    return {n for n in names if n.startswith("customfield_")}
