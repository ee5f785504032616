"""A site's admin webhooks: the registrations and the dispatcher their deliveries go to.

Plain data (the site owns one :class:`Webhooks`; a reset forgets the registrations). Registration
is served by :mod:`.routes_webhooks`, deliveries are made by :mod:`.webhook_events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from connector.sandbox.jira.errors import JiraApiError
from connector.sandbox.push import Dispatcher

JQL_FILTER = "issue-related-events-section"
"""The key of ``filters`` holding a webhook's JQL."""


@dataclass
class Webhook:
    """One registration; ``owner`` is the user who registered it (its JQL is evaluated as them)."""

    webhook_id: int
    name: str
    url: str
    events: tuple[str, ...]
    jql: str | None
    exclude_body: bool
    secret: str | None
    enabled: bool
    owner: str
    updated: datetime


class Webhooks:
    """The webhooks of one site by id, and the dispatcher of the app (``None``: deliveries go nowhere)."""

    def __init__(self) -> None:
        self.hooks: dict[int, Webhook] = {}
        self.dispatcher: Dispatcher | None = None
        self._next_id = 1

    def next_id(self) -> int:
        """The id the next registration gets (from 1, per site)."""
        value = self._next_id
        self._next_id += 1
        return value

    def put(self, hook: Webhook) -> None:
        """Store a new or replaced webhook."""
        self.hooks[hook.webhook_id] = hook

    def get(self, webhook_id: str) -> Webhook:
        """The webhook with this id, or the 404 Jira answers."""
        hook = self.hooks.get(int(webhook_id)) if webhook_id.isdigit() else None
        if hook is None:
            raise JiraApiError(404, f"Webhook with id {webhook_id} does not exist.")
        return hook

    def remove(self, webhook_id: str) -> None:
        """Delete a webhook, or 404."""
        del self.hooks[self.get(webhook_id).webhook_id]

    def subscribed(self, event: str) -> list[Webhook]:
        """The enabled webhooks that subscribe to ``event``, oldest first."""
        return [hook for hook in self.hooks.values() if hook.enabled and event in hook.events]

    def clear(self) -> None:
        """Forget every registration (reset); ids start again from 1."""
        self.hooks.clear()
        self._next_id = 1
