"""``mim-connector doctor``: live checks that the configuration fits the real systems.

ServiceNow: we can log in, and every incident column the configuration reads exists (ServiceNow
silently leaves unknown columns out of an answer). Each supplier: we can log in (and in which
time zone JQL dates will be read), the project is visible with the mapped issue type, every
status the mapping names exists, every custom field it names exists.

The systems are checked in parallel (a bounded pool of threads), each request tried once (a
diagnosis reports what it meets, it does not wait out an outage); the lines come out in a stable
order, ServiceNow first, then the suppliers as the configuration lists them. A failure says its
kind: a credential that cannot be resolved, DNS, refused, TLS, proxy, timeout, auth, or the HTTP
status.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from connector.config import LoadedConfig, load_config
from connector.config.supplier_file import SupplierMapping
from connector.core.errors import AuthError, ConnectorError, CredentialError, PermissionDenied
from connector.core.templates import placeholders
from connector.http.retry import RetryPolicy
from connector.jira.adapter import JiraAdapter
from connector.runtime.assembly import SERVICENOW, jira_adapter, servicenow_adapter, suppliers
from connector.sandbox.attach import prepare
from connector.servicenow.adapter import ServiceNowAdapter
from connector.sync.fields import incident_fields
from connector.telemetry.log import configure_logging

ALWAYS_PRESENT = {"sys_id", "number", "sys_mod_count", "sys_updated_on"}
PARALLEL = 8
"""Systems checked at once, at most."""
ONCE = RetryPolicy(attempts=1)


@dataclass
class Findings:
    """Check results in order: (passed, text)."""

    lines: list[tuple[bool, str]] = field(default_factory=list)

    def add(self, passed: bool, text: str) -> None:
        """Record one check."""
        self.lines.append((passed, text))

    def failed(self, where: str, exc: ConnectorError) -> None:
        """Record a failed check: ``where``, the failure's kind when known, the message."""
        kind = failure_kind(exc)
        self.add(False, f"{where}: {kind}: {exc}" if kind else f"{where}: {exc}")

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(passed for passed, _ in self.lines)


def failure_kind(exc: ConnectorError) -> str | None:
    """``DNS``, ``refused``, ``TLS``, ``proxy``, ``timeout``, ``auth``, ``HTTP 404``…, or ``None`` when unknown."""
    return exc.kind or ("auth" if isinstance(exc, AuthError) else None)


def doctor(config: Path, *, out: TextIO = sys.stdout) -> int:
    """Run every live check, print one line each; exit 0 when all pass, 1 otherwise."""
    loaded = load_config(config)
    # The findings say what failed; the transport's and the breaker's own lines about it (a refused
    # login is an ERROR in a daemon's log) would only repeat them. A bug still ends in one line.
    configure_logging(loaded.connector.logging.format, "CRITICAL")
    checks: list[Callable[[], Findings]] = [functools.partial(_servicenow, loaded)]
    checks += [functools.partial(_supplier, loaded, name) for name in suppliers(loaded)]
    sandbox = prepare(loaded)
    try:
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(checks)), thread_name_prefix="doctor") as pool:
            results = list(pool.map(lambda check: check(), checks))
    finally:
        if sandbox is not None:
            sandbox.stop()
    findings = Findings([line for result in results for line in result.lines])
    for passed, text in findings.lines:
        print(f"{'ok  ' if passed else 'FAIL'} {text}", file=out)
    print("all checks passed" if findings.ok else "some checks failed", file=out)
    return 0 if findings.ok else 1


def _servicenow(loaded: LoadedConfig) -> Findings:
    findings = Findings()
    try:
        snow = servicenow_adapter(loaded, ONCE)
    except CredentialError as exc:
        for problem in exc.problems:
            findings.add(False, problem)
        return findings
    try:
        _check_servicenow(loaded, snow, findings)
    finally:
        snow.close()
    return findings


def _check_servicenow(loaded: LoadedConfig, snow: ServiceNowAdapter, findings: Findings) -> None:
    url = loaded.connector.servicenow.instance_url
    fields = incident_fields(loaded)
    try:
        first = next(iter(snow.incidents_changed(datetime(1970, 1, 1, tzinfo=UTC), fields, 1)), None)
    except ConnectorError as exc:
        findings.failed(f"{SERVICENOW} {url}", exc)
        return
    findings.add(True, f"{SERVICENOW} {url}: logged in as {snow.integration_user}")
    if first is None:
        findings.add(True, f"{SERVICENOW}: no incident yet to check the field names against")
        return
    missing = [name for name in fields if name not in first.fields and name not in ALWAYS_PRESENT]
    if missing:
        findings.add(False, f"{SERVICENOW}: incident fields not on this instance: {', '.join(missing)}")
    else:
        findings.add(True, f"{SERVICENOW}: all {len(fields)} incident fields the configuration reads exist")


def _supplier(loaded: LoadedConfig, name: str) -> Findings:
    findings = Findings()
    try:
        site = jira_adapter(loaded, name, ONCE)
    except CredentialError as exc:
        for problem in exc.problems:
            findings.add(False, problem)
        return findings
    try:
        url = loaded.connector.suppliers[name].jira.url
        _check_supplier(f"{name} {url}", name, loaded.suppliers[name], site, findings)
        if f"jira:{name}" in loaded.connector.push_sources():
            _check_webhook(loaded, name, site, findings)
    finally:
        site.close()
    return findings


def _check_supplier(
    where: str, name: str, mapping: SupplierMapping, site: JiraAdapter, findings: Findings
) -> None:
    try:
        account = site.myself()
        described = site.describe(mapping.jira.project)
    except ConnectorError as exc:
        findings.failed(where, exc)
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


def _check_webhook(loaded: LoadedConfig, name: str, site: JiraAdapter, findings: Findings) -> None:
    """Push on for the site: an enabled admin webhook posts to our endpoint (where Jira lets us see).

    Without ``push.public_url`` any webhook whose URL ends in ``/push/jira/<name>`` counts.
    """
    path = f"/push/jira/{name}"
    public = loaded.connector.push.public_url
    wanted = f"{str(public).rstrip('/')}{path}" if public else None
    try:
        hooks = site.webhooks()
    except (AuthError, PermissionDenied):
        findings.add(True, f"{name}: webhooks not checked (listing them takes a Jira administrator)")
        return
    except ConnectorError as exc:
        findings.failed(f"{name}: webhooks", exc)
        return
    ours = [
        hook
        for hook in hooks
        if (hook.url.rstrip("/") == wanted if wanted else hook.url.rstrip("/").endswith(path))
    ]
    live = [hook for hook in ours if hook.enabled]
    if live:
        findings.add(True, f"{name}: webhook {live[0].name!r} posts to {live[0].url}")
    elif ours:
        findings.add(False, f"{name}: webhook {ours[0].name!r} posts to {ours[0].url} but is disabled")
    else:
        findings.add(
            False,
            f"{name}: no webhook posts to {wanted or '…' + path}: changes arrive only by polling "
            "(docs/push.md)",
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
