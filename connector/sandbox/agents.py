"""Simulated supplier engineers: one per Jira site, working the issues the connector creates there.

Each engineer is the site's seeded agent user (Jane Doe) talking to the Jira REST API over HTTP
through python-jira, exactly as a person's browser would. Every ``poll`` seconds it searches its
project for issues not yet done (in the sandbox only the connector creates issues there);
``acknowledge`` seconds after first seeing one it comments, moves it to the working status and
sets the ETA; ``resolve`` seconds after first seeing it, it records the root cause and resolves
it (:class:`~connector.sandbox.playbook.Playbook` says how). An issue already done (the service
desk resolved the incident first) is left alone.

Simulated people log under :data:`PEOPLE_LOGGER` (``sandbox.people.<supplier>``,
``sandbox.people.service-desk``), never under ``connector.*``: their lines are told apart from the
connector's at a glance, and the story quiets them as a whole (``sandbox.agents.log_level``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import requests
from jira import JIRA
from jira.exceptions import JIRAError

from connector.config import LoadedConfig
from connector.config.connector_file import SandboxAgents
from connector.sandbox.casting import stable_hash
from connector.sandbox.playbook import Playbook, Step
from connector.store.db import utcnow

PEOPLE_LOGGER = "sandbox.people"
"""The parent logger of every simulated person."""
AGENT_USERNAME = "jdoe"
"""The supplier-side user :mod:`connector.sandbox.fromconfig` seeds on every site."""
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Timing:
    """When simulated people act, in seconds."""

    poll: float = 1.0
    acknowledge: float = 5.0
    resolve: float = 30.0
    spread: float = 0.5
    service_desk: float = 4.0

    @classmethod
    def from_config(cls, agents: SandboxAgents) -> Timing:
        """The timing a configuration's ``sandbox.agents`` asks for."""
        return cls(
            poll=agents.poll_interval.total_seconds(),
            acknowledge=agents.acknowledge_after.total_seconds(),
            resolve=agents.resolve_after.total_seconds(),
            spread=agents.spread,
            service_desk=agents.service_desk_after.total_seconds(),
        )

    def delay(self, base: float, key: str) -> float:
        """``base`` stretched by up to ``spread`` of itself, stably per ``key``."""
        return base * (1 + self.spread * (stable_hash(key) % 1000) / 1000)


@dataclass
class _Ticket:
    key: str
    stage: Literal["new", "working", "finished"]
    acknowledge_at: float
    resolve_at: float
    attempts: int = 0
    commented: bool = False
    """The step's comment is posted: a retry of a step whose later part failed does not post it again."""


class SupplierAgent:
    """A supplier engineer on one site; :meth:`run` works until stopped, :meth:`step` does one round."""

    def __init__(
        self,
        supplier: str,
        playbook: Playbook,
        connect: Callable[[], JIRA],
        timing: Timing,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.name = f"agent-{supplier}"
        self.log = logging.getLogger(f"{PEOPLE_LOGGER}.{supplier}")
        self.supplier = supplier
        self.playbook = playbook
        self.connect = connect
        self.timing = timing
        self.clock = clock
        self.now = now
        self._client: JIRA | None = None
        self._tickets: dict[str, _Ticket] = {}
        self._lock = threading.Lock()

    def run(self, stop: threading.Event) -> None:
        """Look for work every ``poll`` seconds until ``stop`` is set; a failed round is retried."""
        while not stop.is_set():
            try:
                self.step()
            except (JIRAError, requests.RequestException) as exc:
                self.log.warning("round failed, trying again: %s", _describe(exc))
            stop.wait(self.timing.poll)

    def busy(self) -> bool:
        """Whether an issue seen is not finished with yet."""
        with self._lock:
            return any(ticket.stage != "finished" for ticket in self._tickets.values())

    def step(self) -> None:
        """Notice new issues, then take every step that is due."""
        client = self._client = self._client or self.connect()
        self._notice(client)
        moment = self.clock()
        with self._lock:
            due = [t for t in self._tickets.values() if t.stage != "finished" and _due(t, moment)]
        for ticket in due:
            try:
                self._act(client, ticket)
            except JIRAError as exc:
                ticket.attempts += 1
                if ticket.attempts >= MAX_ATTEMPTS:
                    ticket.stage = "finished"
                    self.log.warning("gave up on %s: %s", ticket.key, _describe(exc))
                else:
                    self.log.info("%s refused, retrying: %s", ticket.key, _describe(exc))

    def _notice(self, client: JIRA) -> None:
        jql = f"project = {self.playbook.project} AND statusCategory != Done ORDER BY created ASC"
        found = client.search_issues(jql, maxResults=False, fields="status")
        moment = self.clock()
        with self._lock:
            for issue in found:
                if issue.key not in self._tickets:
                    acknowledge = moment + self.timing.delay(self.timing.acknowledge, issue.key)
                    resolve = max(
                        moment + self.timing.delay(self.timing.resolve, issue.key),
                        acknowledge + self.timing.poll,
                    )
                    self._tickets[issue.key] = _Ticket(issue.key, "new", acknowledge, resolve)

    def _act(self, client: JIRA, ticket: _Ticket) -> None:
        status = str(client.issue(ticket.key, fields="status").fields.status.name)
        if self.playbook.is_done(status):
            ticket.stage = "finished"
            return
        if ticket.stage == "new":
            self._acknowledge(client, ticket, status)
            ticket.stage, ticket.commented = "working", False
        else:
            self._resolve(client, ticket, status)
            ticket.stage = "finished"

    def _acknowledge(self, client: JIRA, ticket: _Ticket, status: str) -> None:
        playbook, key = self.playbook, ticket.key
        if not ticket.commented:
            client.add_comment(key, playbook.acknowledgement(key))
            ticket.commented = True
        if playbook.eta_fields:
            eta = playbook.eta(self.now())
            _edit(client, key, dict.fromkeys(playbook.eta_fields, eta))
        if playbook.working_status:
            self._walk(client, key, playbook.path(status, playbook.working_status))
        self.log.info("acknowledged %s", key, extra={"supplier": self.supplier, "jira_key": key})

    def _resolve(self, client: JIRA, ticket: _Ticket, status: str) -> None:
        playbook, key = self.playbook, ticket.key
        if playbook.root_cause_field:
            _edit(client, key, {playbook.root_cause_field: playbook.root_cause(key)})
        if not ticket.commented:
            client.add_comment(key, playbook.resolution_comment(key))
            ticket.commented = True
        if playbook.resolved_status:
            self._walk(client, key, playbook.path(status, playbook.resolved_status))
        self.log.info("resolved %s", key, extra={"supplier": self.supplier, "jira_key": key})

    def _walk(self, client: JIRA, key: str, steps: list[Step] | None) -> None:
        for step in steps or []:
            offered = {str(t["name"]): str(t["id"]) for t in client.transitions(key)}
            if step.name not in offered:
                self.log.info("%s offers no '%s' now; left where it is", key, step.name)
                return
            client.transition_issue(key, offered[step.name], fields=_screen(step.fields))


def supplier_agents(
    loaded: LoadedConfig, described: Mapping[str, Any], timing: Timing
) -> list[SupplierAgent]:
    """One engineer per enabled supplier whose site ``described`` (``Sandbox.describe()``) serves."""
    sites = described["jira"]["sites"]
    agents = []
    for name, supplier in loaded.connector.suppliers.items():
        mapping = loaded.suppliers.get(name)
        site = sites.get(supplier.jira.url.rstrip("/").rsplit("/", 1)[-1])
        if not supplier.enabled or mapping is None or site is None:
            continue
        user = next((u for u in site["users"] if u["username"] == AGENT_USERNAME), None)
        if user is None:
            continue
        connect = _connector(supplier.jira.url, site["deployment"], user)
        agents.append(SupplierAgent(name, Playbook.for_mapping(mapping), connect, timing))
    return agents


def _connector(url: str, deployment: str, user: Mapping[str, str]) -> Callable[[], JIRA]:
    def connect() -> JIRA:
        if deployment == "cloud":
            return JIRA(url, basic_auth=(user["email"], user["api_token"]), max_retries=0, timeout=10)
        return JIRA(url, token_auth=user["pat"], max_retries=0, timeout=10)

    return connect


def _edit(client: JIRA, key: str, fields: Mapping[str, str]) -> None:
    client.issue(key, fields="summary").update(fields=dict(fields))


def _screen(fields: Mapping[str, str]) -> dict[str, Any]:
    """Transition screen values as Jira wants them (a resolution by name)."""
    return {name: {"name": value} if name == "resolution" else value for name, value in fields.items()}


def _due(ticket: _Ticket, moment: float) -> bool:
    return moment >= (ticket.acknowledge_at if ticket.stage == "new" else ticket.resolve_at)


def _describe(exc: Exception) -> str:
    """A failed request in one line, never python-jira's full error (it can carry headers)."""
    if isinstance(exc, JIRAError):
        return f"HTTP {exc.status_code}: {str(exc.text)[:200]}"
    return type(exc).__name__
