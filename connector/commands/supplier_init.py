"""``mim-connector supplier init NAME --project KEY``: draft a supplier mapping from the live Jira project.

The site comes from ``config/connector.yaml`` when NAME is configured there, else from ``--jira URL``
with credentials given by reference (``--token '${VAR}'`` or ``file:PATH``). What is read, all
through the adapter and without writing anything to Jira: the project and its issue types, the
issue type's statuses, the create screen's fields, and for each status one issue in it and the
transitions it offers (with their screens' required fields); the status new issues start in comes
from the oldest issue's changelog. Jira shows transitions per issue only (the workflow API needs
Jira administrator rights an integration account should not have), so a status no issue is in
keeps unknown transitions, marked TODO in the draft.

Exit codes: 0 written; 1 the site failed us (unreachable, credentials rejected, no such project);
2 usage (an existing file without ``--force``, an inline secret, no site to read from).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import TypeAdapter, ValidationError

from connector.config import LoadedConfig
from connector.config.connector_file import ConnectorConfig, JiraSite
from connector.config.loader import DEFAULT_CONFIG, SUPPLIERS_DIR
from connector.config.rules_file import RulesFile
from connector.config.supplier_checks import check_supplier
from connector.config.supplier_draft import SupplierDraft, render, workflow_of
from connector.config.supplier_file import SupplierMapping
from connector.config.types import Slug
from connector.config.validation import validate
from connector.config.yamlsource import read_yaml
from connector.core import vocabulary
from connector.core.errors import AuthError, ConnectorError, PermissionDenied, RateLimited, RetriableError
from connector.core.ports import JiraFieldInfo, WorkflowStep
from connector.core.problems import display_path
from connector.core.secrets import UnresolvedSecret
from connector.http.retry import RetryPolicy
from connector.jira.adapter import JiraAdapter
from connector.sandbox.attach import borrow
from connector.telemetry.log import configure_logging

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_ISSUE_TYPE = "Incident"
# An admin at a terminal: two tries, a second apart, rather than the daemon's patient five.
INTERACTIVE_RETRIES = RetryPolicy(attempts=2, initial=1.0, maximum=2.0, jitter=0.2)


class UsageError(Exception):
    """The command was asked something it cannot do as asked (exit 2)."""


@dataclass(frozen=True)
class InitOptions:
    """What ``supplier init`` was asked."""

    name: str
    project: str
    config: Path = DEFAULT_CONFIG
    jira_url: str | None = None
    deployment: str | None = None
    user: str | None = None
    token: str | None = None
    issue_type: str | None = None
    output: str | None = None
    """A file, ``-`` for stdout, or ``None`` for ``<mappings>/suppliers/NAME.yaml``."""
    force: bool = False


def supplier_init(options: InitOptions, *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Draft the mapping and write it; one line on stderr and an exit code on failure."""
    # The outcome is the command's own last line; the transport's "unreachable" warning and the
    # breaker's "credentials refused" error would repeat it.
    configure_logging("text", "CRITICAL")
    try:
        return _init(options, out, err)
    except UsageError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_USAGE


def _init(options: InitOptions, out: TextIO, err: TextIO) -> int:
    try:
        TypeAdapter(Slug).validate_python(options.name)
    except ValidationError:
        raise UsageError(
            f"'{options.name}' is not a supplier name (lower-case letters, digits, '-' and '_')"
        ) from None
    connector = _connector_config(options.config)
    site, site_entry = _site(options, connector)
    target = _target(options, connector)
    if target is not None and target.exists() and not options.force:
        raise UsageError(f"{display_path(target)} exists; --force replaces it")
    if connector is not None:
        # Like every live command: a sandbox serving at the config's URLs lends its credentials.
        borrow(LoadedConfig(options.config, connector, RulesFile(), {}, (), ""))
    try:
        adapter = JiraAdapter(
            options.name, site, base_dir=options.config.parent, policy=INTERACTIVE_RETRIES, cooldown=0
        )
    except UnresolvedSecret as exc:
        raise UsageError(f"{options.name}: credentials: {exc}") from None
    url = str(site.url)
    try:
        draft = _discover(adapter, options, site, connector, site_entry)
    except (RetriableError, AuthError) as exc:
        reason = {AuthError: "credentials rejected by", RateLimited: "still throttled by"}.get(
            type(exc), "cannot reach"
        )
        raise ConnectorError(f"{reason} {url}: {exc}") from None
    finally:
        adapter.close()
    text = render(draft)
    _self_check(text, options.name, connector)
    if target is None:
        out.write(text)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(target, text)
    _report(draft, target, options, err if target is None else out)
    return EXIT_OK


# --- the site ------------------------------------------------------------------------------------------


def _connector_config(path: Path) -> ConnectorConfig | None:
    """``config/connector.yaml`` checked for structure only (NAME's own mapping may not exist yet)."""
    if not path.exists():
        return None
    doc = read_yaml(path)
    connector, problems = validate(doc, ConnectorConfig) if doc.data is not None else (None, doc.problems)
    errors = [p for p in (*doc.problems, *problems) if p.severity == "error"]
    if connector is None or errors:
        first = errors[0] if errors else f"{display_path(path)}: unreadable"
        raise UsageError(f"{first} (run `mim-connector check -c {path}`)")
    return connector


def _site(options: InitOptions, connector: ConnectorConfig | None) -> tuple[JiraSite, str | None]:
    """The site to read, and the ``suppliers:`` entry to suggest when the config lacks it."""
    configured = connector.suppliers.get(options.name) if connector else None
    if options.jira_url is None:
        if configured is None:
            where = display_path(options.config)
            raise UsageError(f"{options.name} has no site in {where}: give --jira URL (and --user/--token)")
        return configured.jira, None
    if options.token is None:
        raise UsageError("--jira needs --token '${VAR}' (or file:PATH) with the API token or PAT")
    deployment = options.deployment or (
        "cloud"
        if (options.jira_url.split("//", 1)[-1].split("/", 1)[0]).endswith(".atlassian.net")
        else "datacenter"
    )
    if deployment == "cloud":
        if not options.user:
            raise UsageError("Jira Cloud needs --user EMAIL (the account the API token belongs to)")
        auth = {"type": "api_token", "email": options.user, "token": options.token}
    elif options.user:
        auth = {"type": "basic", "username": options.user, "password": options.token}
    else:
        auth = {"type": "pat", "token": options.token}
    raw = {"url": options.jira_url, "deployment": deployment, "auth": auth}
    try:  # a file: reference on the command line is relative to where the admin stands
        site = JiraSite.model_validate(raw, context={"base_dir": Path.cwd()})
    except ValidationError as exc:
        raise UsageError(_first_error(exc)) from None
    lines = [f"{options.name}:", "  jira:", f"    url: {options.jira_url}", f"    deployment: {deployment}"]
    lines += ["    auth:", *(f"      {key}: {value}" for key, value in auth.items())]
    return site, None if configured is not None else "\n".join(lines)


def _first_error(exc: ValidationError) -> str:
    """The first complaint about the site the options describe, named by option where it can be."""
    options = {
        "url": "--jira",
        "token": "--token",
        "password": "--token",
        "email": "--user",
        "username": "--user",
    }
    for error in exc.errors(include_url=False):
        where = next((options[str(p)] for p in reversed(error["loc"]) if str(p) in options), "site")
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
    return "invalid site settings"


def _target(options: InitOptions, connector: ConnectorConfig | None) -> Path | None:
    if options.output == "-":
        return None
    if options.output is not None:
        return Path(options.output)
    folder = options.config.parent / connector.mappings if connector else Path("mappings")
    return folder / SUPPLIERS_DIR / f"{options.name}.yaml"


# --- what the site shows ------------------------------------------------------------------------------


def _discover(
    adapter: JiraAdapter,
    options: InitOptions,
    site: JiraSite,
    connector: ConnectorConfig | None,
    site_entry: str | None,
) -> SupplierDraft:
    adapter.myself()  # credentials first: a 401 here cannot be mistaken for a hidden project
    project = adapter.project(options.project)
    if project is None:
        raise ConnectorError(f"no project {options.project} on {site.url} (or the account may not browse it)")
    issue_type = options.issue_type or DEFAULT_ISSUE_TYPE
    if issue_type not in project.issue_type_ids:
        known = ", ".join(project.issue_type_ids) or "none"
        raise UsageError(
            f"project {project.key} has no issue type '{issue_type}'; choose one with --issue-type: {known}"
        )
    statuses = adapter.statuses_by_issue_type(project.key).get(issue_type, ())
    if not statuses:
        raise ConnectorError(f"project {project.key} lists no statuses for {issue_type}")
    steps: dict[str, list[WorkflowStep]] = {}
    for status in statuses:
        key = adapter.sample_issue(project.key, issue_type, status.name)
        if key is not None:
            steps[status.name] = adapter.workflow_steps(key)
    oldest = adapter.sample_issue(project.key, issue_type)
    initial = adapter.created_in_status(oldest) if oldest else None
    create_fields: list[JiraFieldInfo] = []
    with contextlib.suppress(PermissionDenied):  # no Create permission yet: no required fields listed
        create_fields = adapter.create_fields(project.key, project.issue_type_ids[issue_type])
    return SupplierDraft(
        supplier=options.name,
        display_name=project.name or project.key,
        url=str(site.url),
        deployment=site.deployment,
        project=project.key,
        issue_type=issue_type,
        other_issue_types=tuple(name for name in project.issue_type_ids if name != issue_type),
        workflow=workflow_of(statuses, steps, initial, oldest if initial else None),
        create_fields=tuple(create_fields),
        incident_states=dict(
            connector.servicenow.incident_states if connector else vocabulary.CORE_INCIDENT_STATES
        ),
        site_entry=site_entry,
    )


# --- the file -----------------------------------------------------------------------------------------


def _self_check(text: str, name: str, connector: ConnectorConfig | None) -> None:
    """Refuse to write a draft ``check`` would reject (a bug here, never the admin's doing)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        doc = read_yaml(path)
        mapping, problems = validate(doc, SupplierMapping) if doc.data is not None else (None, doc.problems)
        if mapping is not None:
            problems += check_supplier(doc, mapping, connector)
    errors = [p for p in problems if p.severity == "error"]
    if mapping is None or errors:
        raise ConnectorError(
            f"the draft would not pass check, so nothing was written: {errors[0] if errors else 'invalid'}"
        )


def _write_atomically(target: Path, text: str) -> None:
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)


def _report(
    draft: SupplierDraft,
    target: Path | None,
    options: InitOptions,
    out: TextIO,
) -> None:
    """What was written, and what the admin does next."""
    workflow = draft.workflow
    where = display_path(target) if target is not None else "to stdout"
    unseen = (
        f"; {len(workflow.unseen)} without an issue, their transitions unknown" if workflow.unseen else ""
    )
    print(
        f"wrote {where}: {draft.project} {draft.issue_type}, {len(workflow.statuses)} statuses, "
        f"{len(workflow.transitions)} transitions{unseen}",
        file=out,
    )
    config = display_path(options.config)
    steps = ["fill in its TODOs (routing decides which incidents it gets)"]
    if draft.site_entry is not None:
        steps.insert(0, f"add the site entry from its header to {config}")
    print(
        f"next: {', '.join(steps)}, then `mim-connector check -c {config}` and `mim-connector doctor -c {config}`",
        file=out,
    )
