"""The sandbox a config with ``sandbox.embedded: true`` runs against: the one already serving, or a new one.

A sandbox started here also plays the configured story (:func:`start_story`): the event-log
replay and, with ``sandbox.agents``, the simulated supplier engineers and service desk.
:func:`discard_store` empties the state store for ``sandbox.fresh_store`` (the daemon calls it
when it started a sandbox: a new world).
"""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping
from pathlib import Path

from sqlalchemy.engine import make_url

from connector.config import LoadedConfig
from connector.sandbox.agents import Timing, supplier_agents
from connector.sandbox.fromconfig import plan_from_config
from connector.sandbox.runner import Sandbox, credentials_from, probe
from connector.sandbox.servicedesk import ServiceDesk

log = logging.getLogger(__name__)


def ensure_sandbox(loaded: LoadedConfig, environ: MutableMapping[str, str] | None = None) -> Sandbox | None:
    """Use the simulators at the config's URLs if they run, else start them (and the configured story).

    Credential variables the config references but the environment lacks are filled in from the
    sandbox. Returns the started sandbox (the caller stops it), or ``None`` when one was already
    running.

    Raises:
        connector.sandbox.runner.SandboxError: the addresses are taken by something else.
    """
    env = os.environ if environ is None else environ
    plan = plan_from_config(loaded, env)
    servicenow_url = loaded.connector.servicenow.instance_url
    jira_url = f"http://{plan.jira.host}:{plan.jira.port}"
    running = probe(servicenow_url, jira_url)
    if running is not None:
        log.info("using the sandbox already running at %s and %s", servicenow_url, jira_url)
        _fill(env, credentials_from(loaded, running))
        return None
    sandbox = Sandbox(plan.spec).start()
    _fill(env, dict(plan.provided))
    log.info(
        "embedded sandbox serving ServiceNow at %s and Jira at %s", sandbox.servicenow_url, sandbox.jira_url
    )
    start_story(sandbox, loaded)
    return sandbox


def start_story(sandbox: Sandbox, loaded: LoadedConfig) -> None:
    """Start what ``loaded``'s ``sandbox`` settings ask of ``sandbox``: the replay, then the agents."""
    settings = loaded.connector.sandbox
    if settings.replay:
        max_gap = settings.replay_max_gap.total_seconds() if settings.replay_max_gap else None
        sandbox.replay(
            settings.replay,
            settings.replay_speed,
            max_gap=max_gap,
            limit=settings.replay_limit,
            cast=settings.cast,
        )
        log.info(
            "replaying %s at %sx%s%s",
            settings.replay,
            settings.replay_speed,
            f", {settings.replay_limit} incidents" if settings.replay_limit else "",
            ", cast onto the demo world" if settings.cast == "demo" else "",
        )
    if settings.agents.enabled:
        timing = Timing.from_config(settings.agents)
        agents = supplier_agents(loaded, sandbox.describe(), timing)
        for agent in agents:
            sandbox.add_actor(agent)
        admin = sandbox.admin()
        sandbox.add_actor(ServiceDesk(sandbox.servicenow_url, (admin.user_name, admin.password), timing))
        log.info("sandbox agents at work: %s and the service desk", ", ".join(a.supplier for a in agents))


def discard_store(loaded: LoadedConfig) -> None:
    """Delete the configured SQLite store file (and its WAL files); any other store is kept, with a warning."""
    text = loaded.connector.store.url
    database = make_url(text).database if text.startswith("sqlite:") else None
    if not database or database == ":memory:":
        log.warning("sandbox.fresh_store only empties SQLite file stores; keeping the configured one")
        return
    path = Path(database)
    if not path.is_absolute():
        path = loaded.base_dir / path
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if stale.exists():
            stale.unlink()
            log.info("fresh store: removed %s", stale)


def _fill(env: MutableMapping[str, str], values: dict[str, str]) -> None:
    for name, value in values.items():
        if not env.get(name):
            env[name] = value
