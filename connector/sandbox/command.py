"""``mim-connector sandbox``: serve both simulators until interrupted, announcing them in one JSON line.

The world comes from a connector config (default ``config/demo.yaml``): its suppliers become Jira
sites with their mappings' projects and workflows, and its credential references name the users'
secrets. Every secret is generated afresh (never read from the environment or a file: the
announcement and ``/_sandbox/info`` show them to anyone); the values of the config's ``${VAR}``
references are reported under ``environment``. Flags override where it listens, which suppliers
are served and their deployment.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

from connector.config import load_config
from connector.sandbox.fromconfig import plan_from_config
from connector.sandbox.runner import Sandbox
from connector.sandbox.spec import (
    DEFAULT_WORKFLOW,
    JiraProject,
    JiraSiteSpec,
    JiraUser,
    SandboxSpec,
    ServiceNowSpec,
    SnowUser,
)


@dataclass(frozen=True)
class SandboxOptions:
    """What the command line asked for; ``None`` keeps what the config says."""

    config: Path | None
    host: str = "127.0.0.1"
    servicenow_port: int = 8090
    jira_port: int = 8091
    suppliers: Sequence[str] | None = None
    deployment: Literal["cloud", "datacenter"] | None = None
    replay: str | None = None
    speed: float = 0.0
    seed: int = 0


def build(options: SandboxOptions) -> tuple[SandboxSpec, dict[str, str]]:
    """The spec to serve, and the config's ``${VAR}`` references with the values generated for them."""
    if options.config is not None and options.config.exists():
        plan = plan_from_config(load_config(options.config))
        spec, provided = plan.spec, dict(plan.provided)
    else:
        spec, provided = _default_spec(), {}
    sites = {site.name: site for site in spec.sites}
    wanted = list(options.suppliers) if options.suppliers else list(sites)
    chosen = [sites.get(name) or _default_site(name) for name in wanted]
    if options.deployment is not None:
        chosen = [dataclasses.replace(site, deployment=options.deployment) for site in chosen]
    spec = dataclasses.replace(
        spec,
        sites=tuple(chosen),
        host=options.host,
        servicenow_port=options.servicenow_port,
        jira_port=options.jira_port,
    )
    return spec, provided


def serve(options: SandboxOptions) -> int:
    """Start, print the JSON line, optionally replay, and wait for SIGINT or SIGTERM."""
    spec, provided = build(options)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = Sandbox(spec, seed=options.seed).start()
    try:
        announcement = sandbox.describe() | {"environment": provided}
        print(json.dumps(announcement), flush=True)
        if options.replay:
            sandbox.replay(options.replay, options.speed)
        while not stop.wait(0.5):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("sandbox stopped", file=sys.stderr)
    return 0


def _default_spec() -> SandboxSpec:
    user = SnowUser(
        "svc.mim-connector", secrets.token_urlsafe(18), "MIM Connector (integration)", ("itil", "mim_manager")
    )
    return SandboxSpec(servicenow=ServiceNowSpec(users=(user,)), sites=())


def _default_site(name: str) -> JiraSiteSpec:
    token = secrets.token_urlsafe(18)
    return JiraSiteSpec(
        name=name,
        deployment="cloud",
        users=(
            JiraUser(
                "MIM Connector", f"mim-connector@{name}.example", "mim-connector", api_token=token, pat=token
            ),
            JiraUser("Jane Doe", f"jane.doe@{name}.example", "jdoe", api_token=secrets.token_urlsafe(18)),
        ),
        projects=(
            JiraProject(
                name.upper().replace("-", "")[:10] or "SUP", name, ("Incident", "Task"), DEFAULT_WORKFLOW
            ),
        ),
    )
