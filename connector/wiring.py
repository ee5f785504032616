"""Assemble a running connector from a configuration: store, adapters, engine. The one place that does."""

from __future__ import annotations

from dataclasses import dataclass

from connector.config import LoadedConfig
from connector.engine import Engine
from connector.jira.adapter import JiraAdapter
from connector.retry import RetryPolicy
from connector.servicenow.adapter import ServiceNowAdapter
from connector.store import Store


@dataclass
class Runtime:
    """Everything one configuration runs with; ``close()`` releases it all."""

    loaded: LoadedConfig
    store: Store
    snow: ServiceNowAdapter
    sites: dict[str, JiraAdapter]
    engine: Engine

    def close(self) -> None:
        """Close the adapters and the store."""
        self.snow.close()
        for site in self.sites.values():
            site.close()
        self.store.close()


def build(loaded: LoadedConfig, *, dry_run: bool = False) -> Runtime:
    """Open the store and connect to every enabled site (credentials are resolved here).

    Raises:
        connector.secrets.UnresolvedSecret: a credential reference cannot be resolved.
        connector.errors.ConnectorError: a site refuses us at connection time.
    """
    connector = loaded.connector
    store = Store.open(
        connector.store.url,
        loaded.base_dir,
        actor=connector.instance_name,
        retry_delay=connector.polling.dead_letter_retry,
    )
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
    engine = Engine(loaded, store, snow, sites, dry_run=dry_run)
    return Runtime(loaded, store, snow, sites, engine)
