"""The one path every live command takes to its systems: find (or, embedded, start) the sandbox first.

``run``, ``sync``, ``doctor``, ``rules test INC…`` and ``rules backtest --since`` call
:func:`prepare` before they resolve a credential, so a sandbox serving at the configured URLs
lends its credentials to each of them alike. A configuration that points at no loopback address
(production) costs nothing here: the simulators are imported only when a sandbox may be involved.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from connector.config import LoadedConfig
from connector.config.checks import iter_values
from connector.core.errors import CredentialError
from connector.core.secrets import SecretRef, UnresolvedSecret
from connector.core.urls import is_loopback

if TYPE_CHECKING:
    from connector.sandbox.runner import Sandbox

log = logging.getLogger(__name__)


def prepare(loaded: LoadedConfig, environ: MutableMapping[str, str] | None = None) -> Sandbox | None:
    """Make ``loaded``'s systems reachable with credentials; every live command calls this before connecting.

    With ``sandbox.embedded``: :func:`~connector.sandbox.embedded.ensure_sandbox` (use the sandbox
    serving at the config's URLs, else start one). Otherwise, when a credential variable is unset
    and the config points at loopback where a sandbox answers (``mim-connector sandbox`` in
    another terminal), its credentials fill the unset variables (:func:`borrow`); nothing is
    started. Returns the sandbox started here (the caller stops it), else ``None``.

    Raises:
        connector.sandbox.runner.SandboxError: (embedded) the addresses are taken by something else.
        connector.core.errors.CredentialError: (embedded) a ``file:`` reference cannot be read.
    """
    if not loaded.connector.sandbox.embedded:
        borrow(loaded, environ)
        return None
    from connector.sandbox.embedded import ensure_sandbox

    try:
        return ensure_sandbox(loaded, environ)
    except UnresolvedSecret as exc:
        raise CredentialError([f"sandbox: {exc.brief}"]) from None


def borrow(loaded: LoadedConfig, environ: MutableMapping[str, str] | None = None) -> bool:
    """Fill unset credential variables from a sandbox already serving at ``loaded``'s loopback URLs.

    Asks only when a ``${VAR}`` credential is unset and ServiceNow and every supplier site are on
    loopback; something else answering there is left alone (the unset variable is then reported
    as usual). Returns whether a sandbox was found.
    """
    env = os.environ if environ is None else environ
    urls = _loopback_urls(loaded)
    if urls is None or not _unset(loaded, env):
        return False
    from connector.sandbox.runner import SandboxError, credentials_from, probe

    try:
        running = probe(*urls)
    except SandboxError as exc:
        log.debug("not borrowing credentials: %s", exc)
        return False
    if running is None:
        return False
    log.info("using the credentials of the sandbox running at %s and %s", *urls)
    for name, value in credentials_from(loaded, running).items():
        if not env.get(name):
            env[name] = value
    return True


def _loopback_urls(loaded: LoadedConfig) -> tuple[str, str] | None:
    """ServiceNow's URL and the one Jira server's, when all are on loopback (where a sandbox may run)."""
    connector = loaded.connector
    servicenow = urlsplit(connector.servicenow.instance_url)
    jira = {
        urlsplit(site.jira.url)._replace(path="", query="", fragment="")
        for site in connector.suppliers.values()
    }
    if len(jira) != 1 or not all(is_loopback(url.hostname) for url in (servicenow, *jira)):
        return None
    return f"{servicenow.scheme}://{servicenow.netloc}", next(iter(jira)).geturl()


def _unset(loaded: LoadedConfig, env: Mapping[str, str]) -> bool:
    """Whether a ``${VAR}`` credential of ``loaded`` has no value in ``env``."""
    return any(
        isinstance(value, SecretRef) and value.kind == "env" and not env.get(value.target)
        for _loc, value in iter_values(loaded.connector)
    )
