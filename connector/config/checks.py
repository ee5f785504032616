"""Semantic checks of each file and across files, run after the files validated structurally.

These are plain functions returning every problem with its exact location, rather than pydantic
validators: a validator stops at its first failure and can only point at its own model, while an
admin needs all mistakes at once, each on its own line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from connector.config.connector_file import ConnectorConfig
from connector.config.fieldcheck import (
    SETTABLE_EXCLUDED,
    condition_problems,
    field_problem,
    incident_placeholder,
    states_of,
    template_problems,
)
from connector.config.rules_file import RulesFile
from connector.config.supplier_file import SupplierMapping
from connector.config.yamlsource import SourceDoc
from connector.core.problems import Loc, Problem, display_path, one_of
from connector.core.secrets import SecretRef, UnresolvedSecret, env_references

RULE_TEMPLATE_VARS = ("rule.name", "rule.description", "rule.action", "matched")
# --- connector.yaml ---------------------------------------------------------------------------------


def check_connector(doc: SourceDoc, config: ConnectorConfig) -> list[Problem]:
    """Auth methods that fit each deployment, watched fields that exist, a mappings folder, no old names."""
    problems = []
    for name, supplier in config.suppliers.items():
        site = supplier.jira
        loc: Loc = ("suppliers", name, "jira", "auth", "type")
        if site.deployment == "cloud" and site.auth.type != "api_token":
            problems.append(
                doc.problem(loc, f"Jira Cloud uses api_token; '{site.auth.type}' is for datacenter")
            )
        if site.deployment == "datacenter" and site.auth.type == "api_token":
            problems.append(doc.problem(loc, "api_token is for Jira Cloud; Data Center uses pat (or basic)"))
    for index, field in enumerate(config.servicenow.watch_fields):
        if problem := field_problem(doc, ("servicenow", "watch_fields", index), field):
            problems.append(problem)
    labels = list(config.servicenow.incident_states.values())
    for value, label in config.servicenow.incident_states.items():
        if labels.count(label) > 1:
            problems.append(
                doc.problem(("servicenow", "incident_states", value), f"label '{label}' is used twice")
            )
    lease = config.store.lease
    if not lease.renew_every:
        problems.append(doc.problem(("store", "lease", "renew_every"), "must be longer than 0s"))
    elif lease.renew_every * 2 > lease.ttl:
        problems.append(
            doc.problem(
                ("store", "lease", "renew_every"),
                "must be at most half of store.lease.ttl: a renewal that is late once must not lose the lease",
            )
        )
    if doc.get(("polling", "sweep_interval")) is not None:
        replaced = (
            "reconcile.interval is set and wins"
            if doc.get(("reconcile", "interval")) is not None
            else "write that instead"
        )
        problems.append(
            doc.problem(
                ("polling", "sweep_interval"),
                f"deprecated: this is reconcile.interval now ({replaced})",
                key=True,
                severity="warning",
            )
        )
    mappings = doc.path.parent / config.mappings
    if not mappings.is_dir():
        problems.append(doc.problem(("mappings",), f"folder {mappings} does not exist"))
    if config.sandbox.embedded:
        problems += _sandbox_problems(doc, config)
    return problems


def _sandbox_problems(doc: SourceDoc, config: ConnectorConfig) -> list[Problem]:
    """With an embedded sandbox the URLs say where it listens, so they must be plain local addresses."""
    problems = []
    servicenow = urlsplit(config.servicenow.instance_url)
    if servicenow.scheme != "http" or not servicenow.port or servicenow.path not in ("", "/"):
        problems.append(
            doc.problem(("servicenow", "instance_url"), "with sandbox.embedded this must be http://HOST:PORT")
        )
    jira_addresses: dict[str, str] = {}
    sites: dict[str, str] = {}
    for name, supplier in config.suppliers.items():
        url = urlsplit(supplier.jira.url)
        loc: Loc = ("suppliers", name, "jira", "url")
        segments = [part for part in url.path.split("/") if part]
        if url.scheme != "http" or not url.port or len(segments) != 1:
            problems.append(doc.problem(loc, "with sandbox.embedded this must be http://HOST:PORT/SITE"))
            continue
        jira_addresses.setdefault(url.netloc, name)
        if url.netloc == servicenow.netloc:
            problems.append(doc.problem(loc, "the Jira sandbox needs a port of its own, not ServiceNow's"))
        if segments[0] in sites:
            problems.append(
                doc.problem(loc, f"site path /{segments[0]} is already used by {sites[segments[0]]}")
            )
        sites.setdefault(segments[0], name)
    if len(jira_addresses) > 1:
        first = next(iter(jira_addresses))
        for name, supplier in config.suppliers.items():
            if urlsplit(supplier.jira.url).netloc != first:
                problems.append(
                    doc.problem(
                        ("suppliers", name, "jira", "url"),
                        f"all sandbox Jira sites share one server ({first})",
                    )
                )
    # The sandbox makes up every credential and hands the connector its values through ${VAR}s;
    # a file could only hold a real secret, which must never reach a sandbox.
    for loc, value in iter_values(config):
        if isinstance(value, SecretRef) and value.kind == "file":
            problems.append(
                doc.problem(
                    loc, "with sandbox.embedded use a ${VAR} reference: the sandbox generates the value"
                )
            )
    return problems


def iter_values(model: BaseModel, loc: Loc = ()) -> Iterator[tuple[Loc, Any]]:
    """Every leaf value of a model with its YAML path (aliases used)."""
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        yield from _iter(value, (*loc, info.alias or name))


def _iter(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
    if isinstance(value, BaseModel):
        yield from iter_values(value, loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _iter(item, (*loc, key))
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            yield from _iter(item, (*loc, index))
    else:
        yield loc, value


def secret_problems(doc: SourceDoc, config: ConnectorConfig) -> list[Problem]:
    """Warnings for credentials and endpoints that cannot be resolved on this machine right now.

    With an embedded sandbox the sandbox supplies unset references itself, so nothing is reported.
    """
    if config.sandbox.embedded:
        return []
    problems = []
    for loc, value in iter_values(config):
        if isinstance(value, SecretRef):
            try:
                value.resolve()
            except UnresolvedSecret as exc:
                problems.append(doc.problem(loc, str(exc), severity="warning"))
        elif isinstance(value, str):
            for name in env_references(value):
                if not os.environ.get(name):
                    problems.append(
                        doc.problem(loc, f"environment variable {name} is not set", severity="warning")
                    )
    return problems


# --- rules.yaml -------------------------------------------------------------------------------------


def check_rules(
    doc: SourceDoc, rules: RulesFile, connector: ConnectorConfig | None, suppliers: list[str]
) -> list[Problem]:
    """Unique names, existing fields and suppliers, writable targets, known placeholders."""
    problems: list[Problem] = []
    states = states_of(connector)
    for index, field in enumerate(rules.settings.material_fields):
        if problem := field_problem(doc, ("settings", "material_fields", index), field):
            problems.append(problem)
    seen: dict[str, int] = {}
    placeholder_ok = incident_placeholder(RULE_TEMPLATE_VARS)
    for index, rule in enumerate(rules.rules):
        loc: Loc = ("rules", index)
        if rule.name in seen:
            first = doc.mark(("rules", seen[rule.name], "name")).line
            problems.append(doc.problem((*loc, "name"), f"duplicate rule name (first used at line {first})"))
        seen.setdefault(rule.name, index)
        problems.extend(condition_problems(doc, rule.when, (*loc, "when"), states))
        for position, supplier in enumerate(rule.then.engage):
            if supplier not in suppliers:
                problems.append(
                    doc.problem((*loc, "then", "engage", position), one_of(supplier, suppliers, "a supplier"))
                )
        for field, template in rule.then.set.items():
            where = (*loc, "then", "set", field)
            if field in SETTABLE_EXCLUDED or field.startswith("sys_"):
                problems.append(
                    doc.problem(where, SETTABLE_EXCLUDED.get(field, "system fields cannot be set"), key=True)
                )
            elif "." in field:
                problems.append(
                    doc.problem(
                        where, "only the incident's own fields can be set, not dot-walked ones", key=True
                    )
                )
            elif problem := field_problem(doc, where, field):
                problems.append(problem)
            problems.extend(template_problems(doc, where, template, placeholder_ok))
        problems.extend(
            template_problems(doc, (*loc, "then", "work_note"), rule.then.work_note, placeholder_ok)
        )
    return problems


# --- across files -----------------------------------------------------------------------------------------


def check_cross(
    connector_doc: SourceDoc,
    connector: ConnectorConfig,
    mapping_docs: Mapping[str, tuple[SourceDoc, SupplierMapping | None]],
    suppliers_dir: Path,
) -> list[Problem]:
    """Every configured supplier has a mapping file, and every mapping names a configured supplier."""
    problems = []
    configured = list(connector.suppliers)
    for name in configured:
        if name not in mapping_docs:
            problems.append(
                connector_doc.problem(
                    ("suppliers", name),
                    f"no mapping file {display_path(suppliers_dir / (name + '.yaml'))}",
                    key=True,
                )
            )
    for stem, (doc, mapping) in mapping_docs.items():
        if mapping is None:
            continue
        if mapping.supplier != stem:
            problems.append(
                doc.problem(("supplier",), f"'{mapping.supplier}' does not match the file name ({stem}.yaml)")
            )
        elif mapping.supplier not in configured:
            problems.append(
                doc.problem(
                    ("supplier",),
                    one_of(mapping.supplier, configured, f"a supplier in {connector_doc.display}"),
                )
            )
    return problems + _shared_inbound_fields(mapping_docs)


def _shared_inbound_fields(
    mapping_docs: Mapping[str, tuple[SourceDoc, SupplierMapping | None]],
) -> list[Problem]:
    """Two suppliers writing one incident field fight over it whenever an incident goes to both."""
    writers: dict[str, str] = {}
    problems = []
    for stem, (doc, mapping) in sorted(mapping_docs.items()):
        if mapping is None:
            continue
        written = [*mapping.inbound.fields, *(shared.servicenow for shared in mapping.shared)]
        for field in written:
            first = writers.setdefault(field, stem)
            if first != stem:
                loc = ("inbound", "fields", field) if field in mapping.inbound.fields else ("shared",)
                problems.append(
                    doc.problem(
                        loc,
                        f"{first} writes {field} too: an incident mirrored to both would see them "
                        "overwrite each other (give each supplier its own field)",
                        key=field in mapping.inbound.fields,
                        severity="warning",
                    )
                )
    return problems
