"""The sandbox a config with ``sandbox.embedded: true`` runs against: the one already serving, or a new one."""

from __future__ import annotations

import logging
import os
from collections.abc import MutableMapping

from connector.config import LoadedConfig
from connector.sandbox.fromconfig import plan_from_config
from connector.sandbox.runner import Sandbox, credentials_from, probe

log = logging.getLogger(__name__)


def ensure_sandbox(loaded: LoadedConfig, environ: MutableMapping[str, str] | None = None) -> Sandbox | None:
    """Use the simulators at the config's URLs if they run, else start them (and the configured replay).

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
    settings = loaded.connector.sandbox
    if settings.replay:
        sandbox.replay(settings.replay, settings.replay_speed)
        log.info("replaying %s at %sx", settings.replay, settings.replay_speed)
    return sandbox


def _fill(env: MutableMapping[str, str], values: dict[str, str]) -> None:
    for name, value in values.items():
        if not env.get(name):
            env[name] = value
