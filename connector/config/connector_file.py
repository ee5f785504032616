"""``config/connector.yaml``: where the systems are, how to reach them, and how the daemon runs.

Behaviour (rules, mappings) lives under ``mappings/``; this file holds endpoints, credential
references, the state store, poll intervals, rate budgets and observability settings.
Relative paths are relative to the folder of this file.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from connector.config.types import (
    ConfigModel,
    Duration,
    FieldPath,
    HttpUrl,
    SecretRefField,
    Slug,
    StoreUrl,
    parse_duration,
)
from connector.core.vocabulary import CORE_INCIDENT_STATES


class ServiceNowBasicAuth(ConfigModel):
    """HTTP basic authentication as the integration user."""

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretRefField


class ServiceNowOAuth2Auth(ConfigModel):
    """OAuth 2.0 password grant at ``/oauth_token.do``; tokens are refreshed before they expire."""

    type: Literal["oauth2_password"]
    client_id: str = Field(min_length=1)
    client_secret: SecretRefField
    username: str = Field(min_length=1)
    password: SecretRefField


class RateBudget(ConfigModel):
    """Client-side token bucket: we stay under it so the remote system never has to throttle us."""

    requests_per_second: float = Field(10.0, gt=0)
    burst: int = Field(20, ge=1)
    requests_per_hour: int | None = Field(None, ge=1)
    """Optional hourly cap, e.g. to stay below a ServiceNow ``sys_rate_limit_rules`` entry."""


class ServiceNowSite(ConfigModel):
    """The ServiceNow instance whose incidents we watch."""

    instance_url: HttpUrl
    """``https://<instance>.service-now.com``."""
    former_urls: tuple[HttpUrl, ...] = ()
    """Earlier URLs of this same instance (say, before a custom domain): supplier issues stamped
    under them are still ours. Without it, a changed ``instance_url`` makes them another
    environment's, and their links are released."""
    auth: Annotated[ServiceNowBasicAuth | ServiceNowOAuth2Auth, Field(discriminator="type")]
    timeout: Duration = timedelta(seconds=30)
    rate_budget: RateBudget = RateBudget()
    verify_tls: bool = True
    incident_states: dict[str, str] = Field(default_factory=lambda: dict(CORE_INCIDENT_STATES))
    """Value -> label of ``incident.state`` on this instance (default: the core state model)."""
    watch_fields: tuple[FieldPath, ...] = ()
    """Extra incident columns to read on every poll, on top of those the rules and mappings use."""
    push_secret: SecretRefField | None = None
    """The shared secret of the ServiceNow push (``servicenow/mim_connector_push.xml``): without it
    the push endpoint does not exist (docs/push.md)."""


class JiraApiTokenAuth(ConfigModel):
    """Jira Cloud: account e-mail and API token (HTTP basic)."""

    type: Literal["api_token"]
    email: str = Field(min_length=3)
    token: SecretRefField


class JiraPatAuth(ConfigModel):
    """Jira Data Center: personal access token (Bearer)."""

    type: Literal["pat"]
    token: SecretRefField


class JiraBasicAuth(ConfigModel):
    """Jira Data Center with basic authentication still enabled (off by default since Jira 11)."""

    type: Literal["basic"]
    username: str = Field(min_length=1)
    password: SecretRefField


class IssueWriteLimit(ConfigModel):
    """At most ``max`` writes to one issue within ``per`` (Jira Cloud allows 20 / 2 s and 100 / 30 s)."""

    max: int = Field(ge=1)
    per: Duration


class JiraSite(ConfigModel):
    """One supplier's Jira site."""

    url: HttpUrl
    """Base URL, e.g. ``https://acme.atlassian.net`` or ``https://jira.acme.example/jira``."""
    deployment: Literal["cloud", "datacenter"]
    auth: Annotated[JiraApiTokenAuth | JiraPatAuth | JiraBasicAuth, Field(discriminator="type")]
    timeout: Duration = timedelta(seconds=30)
    rate_budget: RateBudget = RateBudget()
    issue_write_limits: tuple[IssueWriteLimit, ...] = (
        IssueWriteLimit(max=15, per=timedelta(seconds=2)),
        IssueWriteLimit(max=80, per=timedelta(seconds=30)),
    )
    verify_tls: bool = True
    webhook_secret: SecretRefField | None = None
    """The secret of this site's admin webhook: without it the site has no push endpoint
    (docs/push.md)."""


class SupplierSite(ConfigModel):
    """A supplier: its Jira site here, its behaviour in ``mappings/suppliers/<name>.yaml``."""

    enabled: bool = True
    jira: JiraSite


class LeaseConfig(ConfigModel):
    """The leases of the store: one daemon per SQLite store, each singleton role, each claim on work.

    The daemon lease lets one process at a time write to a SQLite store (``run``, ``sync --once``);
    role leases say which instance polls ServiceNow, each supplier's Jira and runs the reconciler;
    claims say which instance works on an entity. Each is renewed every ``renew_every``; another
    process may take it over once it is ``ttl`` old without renewal (a daemon lease at once when its
    holder was a process on this machine that is gone), so ``ttl`` bounds how long a stopped
    instance's work waits for another.
    """

    ttl: Duration = timedelta(seconds=15)
    renew_every: Duration = timedelta(seconds=5)


class StoreConfig(ConfigModel):
    """The state store: links, shadows, ledgers, intents, dead letters, watermarks, audit."""

    url: StoreUrl = "sqlite:///../var/mim-connector.db"
    lease: LeaseConfig = LeaseConfig()


class PollingConfig(ConfigModel):
    """How often each side is read, and how far back each read reaches to absorb clock skew."""

    servicenow_interval: Duration = timedelta(seconds=30)
    supplier_interval: Duration = timedelta(seconds=30)
    overlap: Duration = timedelta(minutes=2)
    """Re-read window behind each watermark; duplicates are dropped by (sys_id, sys_mod_count)."""
    page_size: int = Field(200, ge=1, le=10000)
    initial_lookback: Duration = timedelta(hours=1)
    """On first start, how far back to pick up incident changes."""
    sweep_interval: Duration = timedelta(minutes=10)
    """Deprecated alias of ``reconcile.interval`` (a warning on load); always equal to it."""
    search_lag: Duration = timedelta(minutes=1)
    """How long Jira search may lag behind a write; a lost create is retried only after this."""
    dead_letter_retry: Duration = timedelta(seconds=30)
    """First retry of a failed entity; each further failure doubles the wait, up to an hour."""
    workers: int = Field(8, ge=1, le=64)
    """Incidents worked on at once in a cycle (an incident's suppliers always one after another)."""


class ReconcileConfig(ConfigModel):
    """The reconciler: every active link re-checked in turn, catching anything polling missed.

    It spreads its checks evenly and never takes more than ``share`` of any system's rate budget;
    when that share cannot re-check every link within ``interval``, a round simply takes longer.
    """

    interval: Duration = timedelta(minutes=10)
    """Each active link is re-checked once per interval (when the budget share allows)."""
    share: float = Field(0.1, gt=0, le=1)
    """The most of each system's ``rate_budget.requests_per_second`` the re-checks may use."""
    retire_after: Duration = timedelta(days=7)
    """A link whose incident is closed (or canceled) for longer than this gets one last check and is
    retired: never re-checked again, unless the incident is reopened."""


class RetryConfig(ConfigModel):
    """How hard each request is tried, and how long an unreachable system is then left alone."""

    attempts: int = Field(5, ge=1, le=20)
    """Tries per request in all (5xx, connection failures, 429s)."""
    initial_backoff: Duration = timedelta(milliseconds=500)
    """The first wait; each further one doubles (with jitter), never below a 429's Retry-After."""
    max_backoff: Duration = timedelta(seconds=30)
    cooldown: Duration = timedelta(seconds=30)
    """After every try failed to reach a system: how long its calls fail at once instead."""


class MetricsConfig(ConfigModel):
    """Prometheus metrics endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=1, le=65535)


class PushConfig(ConfigModel):
    """Where the daemon receives webhooks (docs/push.md); plain HTTP, TLS belongs to a reverse proxy."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9465, ge=1, le=65535)
    max_body: int = Field(1_048_576, ge=1024, le=64 * 1_048_576)
    """The largest delivery accepted, in bytes (larger ones are answered 413 unread)."""
    remember: Duration = timedelta(days=1)
    """How long a delivery's identifier is kept to recognise its retries and duplicates."""
    public_url: HttpUrl | None = None
    """Where the platforms reach the receiver (the proxy's URL, e.g. ``https://mim.example.com``):
    ``doctor`` looks for a webhook posting to ``<public_url>/push/jira/<supplier>`` on each site."""


class LoggingConfig(ConfigModel):
    """Log output; secrets are masked in every format."""

    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class SandboxAgents(ConfigModel):
    """People the embedded sandbox plays, through the same APIs as real ones (demo only).

    One engineer per supplier site answers the issues the connector creates, through the
    supplier's declared workflow; a service desk analyst writes on mirrored incidents.
    """

    enabled: bool = False
    poll_interval: Duration = timedelta(seconds=1)
    """How often each of them looks for new work."""
    acknowledge_after: Duration = timedelta(seconds=5)
    """A supplier engineer comments, starts work and gives an ETA this long after an issue appears."""
    resolve_after: Duration = timedelta(seconds=30)
    """...and resolves it this long after it appeared (root cause first, where the mapping has a field)."""
    spread: float = Field(0.5, ge=0, le=1)
    """Each issue's delays are stretched by up to this fraction (stable per issue): replies do not
    all come in lockstep."""
    service_desk_after: Duration = timedelta(seconds=4)
    """The service desk posts a customer update and an internal work note this long after an
    incident is first mirrored."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    """Their own log lines (logger ``sandbox.people``): ``WARNING`` shows only what went wrong for
    them, so the connector's lines stand out; ``INFO`` also each reply they post."""


class SandboxConfig(ConfigModel):
    """Run the bundled ServiceNow and Jira simulators in-process (demo and dry runs only).

    They listen where ``servicenow.instance_url`` and the suppliers' ``jira.url`` point (one Jira
    server, a site per path). If simulators already answer there (``mim-connector sandbox`` in
    another terminal), the daemon uses those instead of starting its own; the replay, the agents,
    ``fresh_store`` and ``stop_when_idle`` only apply to a sandbox it starts itself.
    """

    embedded: bool = False
    replay: str | None = None
    """An incident event log to replay into the simulated ServiceNow: ``builtin`` or a CSV path."""
    replay_speed: float = Field(600.0, ge=0)
    """Replay pace as a multiple of real time (0 = as fast as possible)."""
    replay_max_gap: Duration | None = None
    """Longest pause between two replayed events: quiet nights and weeks of the log pass in this."""
    replay_limit: int | None = Field(None, ge=1)
    """Replay only the first N incidents of the log (with all their updates)."""
    cast: Literal["none", "demo"] = "none"
    """``demo``: give a share of the replayed incidents the demo world's assignment groups, CIs and
    business services, so that supplier routing and promotion rules have work; ``none`` replays
    the log as it is."""
    agents: SandboxAgents = SandboxAgents()
    fresh_store: bool = False
    """``run`` starts from an empty state store (a SQLite store file is deleted) when it starts its
    own sandbox: that is a new world, and links to the issues of a previous one would point nowhere."""
    stop_when_idle: Duration | None = None
    """Stop the daemon once the replay and the agents are done and no cycle saw or wrote anything
    for this long (the demo's end). Unset: run until stopped."""
    keep_serving: bool = False
    """When the story is over (``stop_when_idle``), stop syncing and print the summary, then keep
    the simulators serving, with their URLs and credentials printed, until SIGINT or SIGTERM: time
    to look at the incidents and issues the story left behind."""


class ConnectorConfig(ConfigModel):
    """The root of ``config/connector.yaml``."""

    version: Literal[1] = 1
    instance_name: Slug = "mim-connector"
    """Who we are: stamped on every write, shown in the audit log."""
    mappings: Path = Path("../mappings")
    """Folder holding ``rules.yaml`` and ``suppliers/<name>.yaml``."""
    servicenow: ServiceNowSite
    suppliers: dict[Slug, SupplierSite] = Field(default_factory=dict)
    store: StoreConfig = StoreConfig()
    polling: PollingConfig = PollingConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    retry: RetryConfig = RetryConfig()
    metrics: MetricsConfig = MetricsConfig()
    push: PushConfig = PushConfig()
    logging: LoggingConfig = LoggingConfig()
    sandbox: SandboxConfig = SandboxConfig()

    def push_sources(self) -> set[str]:
        """The sources push is on for: ``servicenow`` and ``jira:<supplier>`` with a secret, when enabled."""
        if not self.push.enabled:
            return set()
        sources = {"servicenow"} if self.servicenow.push_secret is not None else set()
        return sources | {
            f"jira:{name}"
            for name, site in self.suppliers.items()
            if site.enabled and site.jira.webhook_secret is not None
        }

    @model_validator(mode="before")
    @classmethod
    def _sweep_interval_alias(cls, data: Any) -> Any:
        """``polling.sweep_interval`` is ``reconcile.interval`` by its former name; both always agree.

        ``reconcile.interval`` wins when both are given (the check warns about the old name). A
        value that is no duration is left where it was written, to be reported there alone.
        """
        if not isinstance(data, dict):
            return data
        polling, reconcile = data.get("polling", {}), data.get("reconcile", {})
        if not isinstance(polling, dict) or not isinstance(reconcile, dict):
            return data  # the wrong shape is reported where it is
        if "interval" in reconcile:
            source, target = reconcile, {**polling}
            data = {**data, "polling": target}
            source_key, target_key = "interval", "sweep_interval"
        elif "sweep_interval" in polling:
            source, target = polling, {**reconcile}
            data = {**data, "reconcile": target}
            source_key, target_key = "sweep_interval", "interval"
        else:
            return data
        with contextlib.suppress(ValueError):
            target[target_key] = parse_duration(source[source_key])
        return data
