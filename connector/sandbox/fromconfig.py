"""Build the sandbox world an admin's configuration expects: users, sites, projects, workflows, fields.

The embedded sandbox serves what ``config/connector.yaml`` and ``mappings/`` describe, so that a
dry run exercises the admin's real mappings: each supplier gets a Jira site at its URL's path with
the project, issue type, workflow, priorities and custom fields its mapping uses, and the users
the config logs in as. Every credential is generated afresh for each sandbox, whatever the
environment or the referenced files hold: the sandbox serves its users' secrets to anyone on
``/_sandbox/info``, so it must never hold a real one. The values of the config's ``${VAR}``
references come back in ``provided`` for the caller to export; a ``file:`` reference cannot be
borrowed that way (``check`` refuses one in an embedded-sandbox config).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from connector.config import LoadedConfig
from connector.config.connector_file import (
    JiraApiTokenAuth,
    JiraBasicAuth,
    ServiceNowOAuth2Auth,
    SupplierSite,
)
from connector.config.supplier_file import SupplierMapping
from connector.core.secrets import SecretRef
from connector.core.templates import placeholders
from connector.sandbox.spec import (
    DEFAULT_WORKFLOW,
    JiraCustomField,
    JiraProject,
    JiraSiteSpec,
    JiraStatus,
    JiraTransition,
    JiraUser,
    JiraWorkflow,
    OAuthClient,
    SandboxSpec,
    ServiceNowSpec,
    SnowUser,
)

FieldKind = Literal["string", "text", "datetime", "number", "labels"]
CLOUD_PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
DATACENTER_PRIORITIES = ("Blocker", "Critical", "Major", "Minor", "Trivial")
_CUSTOM_FIELD = re.compile(r"^customfield_\d+$")
# The connector's API users get profile time zones away from UTC on purpose: JQL dates are read
# in the API user's zone, and the demo should exercise that (fidelity notes, pitfall 4).
SITE_TIME_ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC")


@dataclass(frozen=True)
class Address:
    """Where a simulator listens."""

    host: str
    port: int


@dataclass(frozen=True)
class SandboxPlan:
    """The world to build, where to serve it, and credentials generated for unset references."""

    spec: SandboxSpec
    servicenow: Address
    jira: Address
    provided: Mapping[str, str]
    """The config's ``${VAR}`` references -> the values generated for them (every one of them)."""


class _Credentials:
    """A generated value per reference (the same one each time a reference recurs); never resolves one."""

    def __init__(self, token: Callable[[], str]) -> None:
        self.token = token
        self._values: dict[SecretRef, str] = {}

    def value(self, ref: SecretRef) -> str:
        key = SecretRef(ref.kind, ref.target)  # a reference names the same secret from any folder
        if key not in self._values:
            self._values[key] = self.token()
        return self._values[key]

    @property
    def provided(self) -> dict[str, str]:
        """``${VAR}`` name -> the value generated for it."""
        return {ref.target: value for ref, value in self._values.items() if ref.kind == "env"}


def plan_from_config(
    loaded: LoadedConfig, *, token: Callable[[], str] = lambda: secrets.token_urlsafe(18)
) -> SandboxPlan:
    """The sandbox for ``loaded`` (which must have passed ``check``, incl. the embedded-sandbox URLs).

    Reads neither the environment nor any secret file: every credential is a new ``token()``.
    """
    credentials = _Credentials(token)
    connector = loaded.connector
    instance = urlsplit(connector.servicenow.instance_url)
    servicenow = ServiceNowSpec(
        users=(_snow_user(loaded, credentials),),
        oauth_clients=_oauth_clients(loaded, credentials),
        custom_columns={"incident": _custom_incident_columns(loaded)},
    )
    sites = []
    jira = Address("127.0.0.1", 0)
    for index, (name, site) in enumerate(connector.suppliers.items()):
        url = urlsplit(site.jira.url)
        jira = Address(url.hostname or "127.0.0.1", url.port or 0)
        mapping = loaded.suppliers.get(name)
        sites.append(
            _site(
                name,
                url.path.strip("/"),
                site,
                mapping,
                credentials,
                SITE_TIME_ZONES[index % len(SITE_TIME_ZONES)],
            )
        )
    spec = SandboxSpec(
        servicenow=servicenow,
        sites=tuple(sites),
        host=instance.hostname or "127.0.0.1",
        servicenow_port=instance.port or 0,
        jira_port=jira.port,
    )
    return SandboxPlan(spec, Address(spec.host, spec.servicenow_port), jira, credentials.provided)


def _snow_user(loaded: LoadedConfig, credentials: _Credentials) -> SnowUser:
    auth = loaded.connector.servicenow.auth
    return SnowUser(
        user_name=auth.username,
        password=credentials.value(auth.password),
        name="MIM Connector (integration)",
        roles=("itil", "mim_manager", "rest_api_explorer"),
    )


def _oauth_clients(loaded: LoadedConfig, credentials: _Credentials) -> tuple[OAuthClient, ...]:
    auth = loaded.connector.servicenow.auth
    if isinstance(auth, ServiceNowOAuth2Auth):
        return (OAuthClient(auth.client_id, credentials.value(auth.client_secret)),)
    return ()


def _custom_incident_columns(loaded: LoadedConfig) -> tuple[str, ...]:
    """The ``u_``/``x_`` incident columns the configuration reads or writes."""
    names: set[str] = set(loaded.connector.servicenow.watch_fields)
    for rule in loaded.rules.rules:
        names.update(rule.then.set)
    for mapping in loaded.suppliers.values():
        names.update(mapping.inbound.fields)
        names.update(mapping.outbound.redaction.allow_fields)
    return tuple(sorted(n for n in names if n.startswith(("u_", "x_")) and "." not in n))


def _site(
    name: str,
    path: str,
    site: SupplierSite,
    mapping: SupplierMapping | None,
    credentials: _Credentials,
    zone: str,
) -> JiraSiteSpec:
    jira = site.jira
    auth = jira.auth
    domain = f"{name}.example"
    if isinstance(auth, JiraApiTokenAuth):
        integration = JiraUser(
            "MIM Connector",
            auth.email,
            "mim-connector",
            api_token=credentials.value(auth.token),
            time_zone=zone,
        )
    elif isinstance(auth, JiraBasicAuth):
        integration = JiraUser(
            "MIM Connector",
            f"{auth.username}@{domain}",
            auth.username,
            password=credentials.value(auth.password),
            time_zone=zone,
        )
    else:
        integration = JiraUser(
            "MIM Connector",
            f"mim-connector@{domain}",
            "mim-connector",
            pat=credentials.value(auth.token),
            time_zone=zone,
        )
    agent_secret = secrets.token_urlsafe(18)
    agent = JiraUser(
        "Jane Doe",
        f"jane.doe@{domain}",
        "jdoe",
        api_token=agent_secret if jira.deployment == "cloud" else None,
        pat=agent_secret if jira.deployment == "datacenter" else None,
        time_zone="UTC",
    )
    defaults = CLOUD_PRIORITIES if jira.deployment == "cloud" else DATACENTER_PRIORITIES
    return JiraSiteSpec(
        name=path,
        deployment=jira.deployment,
        users=(integration, agent),
        projects=(_project(mapping, name),),
        custom_fields=_custom_fields(mapping),
        priorities=tuple(
            dict.fromkeys([*(mapping.outbound.priority_map.values() if mapping else ()), *defaults])
        ),
    )


def _project(mapping: SupplierMapping | None, name: str) -> JiraProject:
    if mapping is None:
        return JiraProject(name.upper()[:10], name, ("Incident", "Task"), DEFAULT_WORKFLOW)
    workflow = mapping.jira.workflow
    return JiraProject(
        key=mapping.jira.project,
        name=mapping.display_name,
        issue_types=tuple(dict.fromkeys([mapping.jira.issue_type, "Task"])),
        workflow=JiraWorkflow(
            initial=workflow.initial,
            statuses=tuple(JiraStatus(status, spec.category) for status, spec in workflow.statuses.items()),
            transitions=tuple(
                JiraTransition(t.name, t.to, t.from_, t.requires) for t in workflow.transitions
            ),
        ),
    )


def _custom_fields(mapping: SupplierMapping | None) -> tuple[JiraCustomField, ...]:
    if mapping is None:
        return ()
    fields: dict[str, JiraCustomField] = {}

    def add(field_id: str | None, label: str, kind: FieldKind = "string") -> None:
        if field_id and _CUSTOM_FIELD.match(field_id) and field_id not in fields:
            fields[field_id] = JiraCustomField(field_id, label, kind)

    for field_id, template in mapping.outbound.fields.items():
        add(field_id, "ServiceNow " + (" ".join(placeholders(template)) or "value"))
    mim = mapping.outbound.mim
    add(mim.field, "Major incident state")
    add(mim.bridge_field, "Bridge / war room", "string")
    add(mim.next_update_field, "Next update due", "datetime")
    add(mapping.problem.root_cause_field, "Root cause", "text")
    for shared in mapping.shared:
        add(shared.jira, f"Shared with ServiceNow ({shared.servicenow})", "text")
    for template in mapping.inbound.fields.values():
        for name in placeholders(template):
            add(name, f"Supplier field {name.removeprefix('customfield_')}")
    return tuple(fields.values())
