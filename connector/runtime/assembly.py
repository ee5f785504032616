"""Assemble a running connector from a configuration: store, adapters, engine. The one place that does.

The adapters (and with them pysnow, python-jira and requests) are imported when :func:`build`
makes them, not with this module: importing the daemon loads no HTTP client
(``tests/unit/test_layers.py``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from connector.config import LoadedConfig
from connector.core.errors import CredentialError
from connector.core.secrets import UnresolvedSecret
from connector.http.retry import RetryPolicy
from connector.runtime.membership import honour_closures
from connector.store import Store
from connector.sync.engine import Engine
from connector.sync.observe import POLLS_FAILED

if TYPE_CHECKING:
    from connector.http.transport import Transport
    from connector.jira.adapter import JiraAdapter
    from connector.servicenow.adapter import ServiceNowAdapter

log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICENOW = "ServiceNow"
"""How messages name the ServiceNow instance (suppliers go by their configured names)."""


@dataclass
class Runtime:
    """Everything one configuration runs with; ``close()`` releases it all (the store only if it owns it)."""

    loaded: LoadedConfig
    store: Store
    snow: ServiceNowAdapter
    sites: dict[str, JiraAdapter]
    engine: Engine
    owns_store: bool = True

    def problems(self) -> dict[str, list[str]]:
        """What is failing, by system (``servicenow``, or a supplier's name), one line per problem.

        A system is failing while its breakers say so (unreachable, an endpoint failing every retry,
        credentials refused) or, for a supplier, while its last :data:`~connector.sync.observe.POLLS_FAILED`
        polls failed.
        """
        failing: dict[str, list[str]] = {}
        if lines := self.snow.transport.breakers.problems():
            failing["servicenow"] = lines
        for name, site in self.sites.items():
            lines = site.transport.breakers.problems()
            polls, error = self.engine.poll_failures.get(f"jira:{name}", (0, ""))
            if polls >= POLLS_FAILED:
                lines.append(f"its last {polls} polls failed: {error}")
            if lines:
                failing[name] = lines
        return failing

    def close(self) -> None:
        """Close the adapters, and the store unless it was lent by the caller of :func:`build`."""
        self.snow.close()
        for site in self.sites.values():
            site.close()
        if self.owns_store:
            self.store.close()


def build(loaded: LoadedConfig, *, dry_run: bool = False, store: Store | None = None) -> Runtime:
    """Open the store (or use ``store``, which stays the caller's) and connect to every enabled site.

    Credentials are resolved here. A store file this call created is removed again if a site fails.

    Raises:
        connector.core.errors.StoreError: the store cannot be opened.
        connector.core.errors.CredentialError: credential references cannot be resolved; it names
            every one (store, ServiceNow, each supplier), not only the first.
        connector.core.errors.ConnectorError: a site refuses us at connection time.
    """
    problems: list[str] = []
    opened = None
    if store is None:
        store = opened = _resolving(problems, "store", functools.partial(open_store, loaded))
    snow: ServiceNowAdapter | None = None
    sites: dict[str, JiraAdapter] = {}
    try:
        policy = retry_policy(loaded)
        snow = _resolving(problems, SERVICENOW, lambda: servicenow_adapter(loaded, policy))
        for name in suppliers(loaded):
            site = _resolving(problems, name, functools.partial(jira_adapter, loaded, name, policy))
            if site is not None:
                sites[name] = site
        if store is None or snow is None or problems:
            raise CredentialError(problems)
        for transport in [snow.transport, *(site.transport for site in sites.values())]:
            keep_throttles(store, transport)
        engine = Engine(loaded, store, snow, sites, dry_run=dry_run)
        if opened is not None and not dry_run and store.dialect == "sqlite":
            # A SQLite store takes one process: claims a killed predecessor left are stale.
            store.queue.forget_claims()
    except BaseException:
        for opened_site in sites.values():
            opened_site.close()
        if snow is not None:
            snow.close()
        if opened is not None:
            opened.discard()
        raise
    return Runtime(loaded, store, snow, sites, engine, opened is not None)


def open_store(loaded: LoadedConfig) -> Store:
    """The state store of ``loaded``, migrated.

    Raises:
        connector.core.errors.CredentialError: a ``${VAR}`` in its URL is unset.
    """
    connector = loaded.connector
    return _labelled(
        "store",
        lambda: Store.open(
            connector.store.url,
            loaded.base_dir,
            actor=connector.instance_name,
            retry_delay=connector.polling.dead_letter_retry,
            idle_timeout=connector.store.lease.ttl,
        ),
    )


def retry_policy(loaded: LoadedConfig) -> RetryPolicy:
    """The configured retry policy of every call."""
    retry = loaded.connector.retry
    return RetryPolicy(
        attempts=retry.attempts,
        initial=retry.initial_backoff.total_seconds(),
        maximum=retry.max_backoff.total_seconds(),
    )


def suppliers(loaded: LoadedConfig) -> list[str]:
    """The suppliers the connector talks to: enabled in the config and with a mapping, in config order."""
    return [
        name
        for name, supplier in loaded.connector.suppliers.items()
        if supplier.enabled and name in loaded.suppliers
    ]


def servicenow_adapter(loaded: LoadedConfig, policy: RetryPolicy) -> ServiceNowAdapter:
    """The ServiceNow adapter of ``loaded`` (no request sent yet).

    Raises:
        connector.core.errors.CredentialError: its credentials cannot be resolved.
    """
    from connector.servicenow.adapter import ServiceNowAdapter

    connector = loaded.connector
    cooldown = connector.retry.cooldown.total_seconds()
    return _labelled(
        SERVICENOW,
        lambda: ServiceNowAdapter(
            connector.servicenow, base_dir=loaded.base_dir, policy=policy, cooldown=cooldown
        ),
    )


def jira_adapter(loaded: LoadedConfig, name: str, policy: RetryPolicy) -> JiraAdapter:
    """The adapter of the supplier site ``name`` (no request sent yet).

    Raises:
        connector.core.errors.CredentialError: its credentials cannot be resolved.
    """
    from connector.jira.adapter import JiraAdapter

    connector = loaded.connector
    cooldown = connector.retry.cooldown.total_seconds()
    site = connector.suppliers[name].jira
    return _labelled(
        name, lambda: JiraAdapter(name, site, base_dir=loaded.base_dir, policy=policy, cooldown=cooldown)
    )


def _labelled(system: str, make: Callable[[], T]) -> T:
    """``make()``, an unresolvable credential becoming a :class:`CredentialError` that names ``system``."""
    try:
        return make()
    except UnresolvedSecret as exc:
        raise CredentialError([f"{system}: {exc.brief}"]) from None


def _resolving(problems: list[str], system: str, make: Callable[[], T]) -> T | None:
    """``make()``, or ``None`` with the unresolvable credentials added to ``problems``."""
    try:
        return _labelled(system, make)
    except CredentialError as exc:
        problems.extend(exc.problems)
        return None


def keep_throttles(store: Store, transport: Transport) -> None:
    """Re-close the scopes a previous run (or another instance) was throttled on; keep new closures in ``store``.

    Closures read back are not written again; :meth:`~connector.runtime.membership.Membership.beat`
    reads them again at every heartbeat, so a 429 one instance receives closes the scope for all.
    """
    honour_closures(store.throttles.open_closures(), [transport])
    prefix = f"{transport.system}|"

    def keep(scope: str, seconds: float) -> None:
        try:
            store.throttles.close(prefix + scope, seconds)
        except SQLAlchemyError as exc:  # the closure still holds in this process
            log.warning("could not keep the %s throttle on %s: %s", transport.system, scope, exc)

    transport.limiter.gate.on_close = keep
