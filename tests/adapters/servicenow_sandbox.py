"""The ServiceNow simulator for the adapter tests: a frozen, movable clock and recognisable credentials.

Plain helpers, no fixtures: the test module wraps :func:`serve` and :func:`site` in its own.
Credentials reach the adapter as ``${VAR}`` references resolved from the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.config.connector_file import ServiceNowSite
from connector.http.retry import RetryPolicy
from connector.sandbox.control import SandboxControl
from connector.sandbox.core import Clock
from connector.sandbox.server import AppServer
from connector.sandbox.servicenow import ServiceNowApp
from connector.sandbox.spec import OAuthClient, ServiceNowSpec, SnowUser

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
PASSWORD = "Recognisable-Snow-Pa55-7f3a9c"
CLIENT_SECRET = "Recognisable-Client-Secret-2b8e41"
SVC = SnowUser("svc.mim-connector", PASSWORD, "MIM Connector", roles=("itil", "mim_manager"))
CLIENT = OAuthClient("mim-client-id", CLIENT_SECRET)
SPEC = ServiceNowSpec(users=(SVC,), oauth_clients=(CLIENT,))
ENV = {"SN_TEST_PASSWORD": PASSWORD, "SN_TEST_CLIENT_SECRET": CLIENT_SECRET}
FAST = RetryPolicy(attempts=3, initial=0.01, maximum=0.05, jitter=0.0)
"""Real retries with waits short enough for a test run."""


def stamp(when: datetime) -> str:
    """A ServiceNow date-time: ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class Served:
    """A running simulator and handles on it."""

    app: ServiceNowApp
    server: AppServer
    control: SandboxControl

    @property
    def url(self) -> str:
        return self.server.url

    def at(self, seconds: float) -> None:
        """Move the server clock to ``T0 + seconds``."""
        self.app.clock.set_skew(seconds)

    def insert(self, seconds: float, **fields: str) -> dict[str, str]:
        """Insert an incident as the integration user at ``T0 + seconds``; returns its stored values."""
        self.at(seconds)
        return self.app.insert("incident", {"short_description": "test", **fields}, user=SVC.user_name)

    def records(self, table: str) -> list[dict[str, str]]:
        """Every stored record of ``table``."""
        with self.app.lock:
            return [dict(record) for record in self.app.database.table(table).records.values()]

    def requests_since(self, seq: int) -> list[dict[str, Any]]:
        """Platform requests journaled after ``seq`` as (method, path, status, query, body) dicts."""
        return self.control.requests(since=seq)


def serve() -> Served:
    """Start a simulator on a free loopback port with its clock frozen at ``T0``."""
    app = ServiceNowApp(SPEC, Clock(lambda: T0))
    server = AppServer(app).start()
    return Served(app, server, SandboxControl(server.url))


def site(url: str, *, oauth: bool = False, **overrides: Any) -> ServiceNowSite:
    """A site config for the simulator; secrets as ``${VAR}`` references (set :data:`ENV` first)."""
    auth: dict[str, Any] = {"type": "basic", "username": SVC.user_name, "password": "${SN_TEST_PASSWORD}"}
    if oauth:
        auth = {
            "type": "oauth2_password",
            "client_id": CLIENT.client_id,
            "client_secret": "${SN_TEST_CLIENT_SECRET}",
            "username": SVC.user_name,
            "password": "${SN_TEST_PASSWORD}",
        }
    document = {
        "instance_url": url,
        "auth": auth,
        "timeout": "2s",
        "rate_budget": {"requests_per_second": 1000, "burst": 1000},
        **overrides,
    }
    return ServiceNowSite.model_validate(document)


@dataclass
class FakeTime:
    """A monotonic clock that only moves when someone sleeps on it (or a test moves it)."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, delta: timedelta) -> None:
        self.now += delta.total_seconds()
