"""Assemble a running connector from a configuration: store, adapters, engine. The one place that does."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from connector.config import LoadedConfig
from connector.engine import Engine
from connector.jira.adapter import JiraAdapter
from connector.retry import RetryPolicy
from connector.servicenow.adapter import ServiceNowAdapter
from connector.store import Store
from connector.transport import Transport

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one configuration runs with; ``close()`` releases it all (the store only if it owns it)."""

    loaded: LoadedConfig
    store: Store
    snow: ServiceNowAdapter
    sites: dict[str, JiraAdapter]
    engine: Engine
    owns_store: bool = True

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
        connector.errors.StoreError: the store cannot be opened.
        connector.secrets.UnresolvedSecret: a credential reference cannot be resolved.
        connector.errors.ConnectorError: a site refuses us at connection time.
    """
    connector = loaded.connector
    opened = None
    if store is None:
        store = opened = Store.open(
            connector.store.url,
            loaded.base_dir,
            actor=connector.instance_name,
            retry_delay=connector.polling.dead_letter_retry,
        )
    try:
        return _assemble(loaded, store, dry_run=dry_run, owns_store=opened is not None)
    except BaseException:
        if opened is not None:
            opened.discard()
        raise


def _assemble(loaded: LoadedConfig, store: Store, *, dry_run: bool, owns_store: bool) -> Runtime:
    connector = loaded.connector
    retry = connector.retry
    policy = RetryPolicy(
        attempts=retry.attempts,
        initial=retry.initial_backoff.total_seconds(),
        maximum=retry.max_backoff.total_seconds(),
    )
    cooldown = retry.cooldown.total_seconds()
    snow = ServiceNowAdapter(connector.servicenow, base_dir=loaded.base_dir, policy=policy, cooldown=cooldown)
    sites = {
        name: JiraAdapter(name, supplier.jira, base_dir=loaded.base_dir, policy=policy, cooldown=cooldown)
        for name, supplier in connector.suppliers.items()
        if supplier.enabled and name in loaded.suppliers
    }
    for transport in [snow.transport, *(site.transport for site in sites.values())]:
        keep_throttles(store, transport)
    engine = Engine(loaded, store, snow, sites, dry_run=dry_run)
    return Runtime(loaded, store, snow, sites, engine, owns_store)


def keep_throttles(store: Store, transport: Transport) -> None:
    """Re-close the scopes a previous run was throttled on, and keep every new closure in ``store``."""
    prefix = f"{transport.system}|"
    gate = transport.limiter.gate
    for key, seconds in store.throttles.open_closures().items():
        if key.startswith(prefix):
            gate.close(key.removeprefix(prefix), seconds)

    def keep(scope: str, seconds: float) -> None:
        try:
            store.throttles.close(prefix + scope, seconds)
        except SQLAlchemyError as exc:  # the closure still holds in this process
            log.warning("could not keep the %s throttle on %s: %s", transport.system, scope, exc)

    gate.on_close = keep
