"""A ServiceNow simulator on a free loopback port, shared by the session and reset before every test.

The server clock is frozen at ``T0`` (plus whatever skew a test sets through the control API), so
records written in one test share a second on purpose and token expiry is a clock move away.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pysnow
import pytest
import requests

from connector.sandbox.control import SandboxControl
from connector.sandbox.core import Clock
from connector.sandbox.server import AppServer
from connector.sandbox.servicenow import ServiceNowApp
from connector.sandbox.spec import OAuthClient, ServiceNowSpec, SnowUser

T0 = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
SVC = SnowUser("svc.mim-connector", "svc-secret", "MIM Connector", roles=("itil", "mim_manager"))
BERLIN = SnowUser("berta", "berta-secret", "Berta Berlin", time_zone="Europe/Berlin")
CLIENT = OAuthClient("mim-client-id", "mim-client-secret")
SPEC = ServiceNowSpec(
    users=(SVC, BERLIN), oauth_clients=(CLIENT,), custom_columns={"incident": ("u_supplier_eta",)}
)


@dataclass
class Snow:
    """Handles on the running simulator for one test."""

    app: ServiceNowApp
    url: str
    host: str
    control: SandboxControl

    def client(self, user: SnowUser = SVC) -> pysnow.Client:
        """A pysnow client logged in as ``user``."""
        return pysnow.Client(host=self.host, use_ssl=False, user=user.user_name, password=user.password)

    def incidents(self, user: SnowUser = SVC) -> pysnow.Resource:
        """A fresh pysnow Resource on the incident table (a fresh one per call, as the connector must)."""
        return self.client(user).resource(api_path="/table/incident")

    def session(self, user: SnowUser = SVC) -> requests.Session:
        """A plain requests session with basic auth and JSON headers."""
        session = requests.Session()
        session.auth = (user.user_name, user.password)
        session.headers.update({"Accept": "application/json"})
        return session

    def table(self, table: str, sys_id: str = "") -> str:
        """The Table API URL of a table or record."""
        return f"{self.url}/api/now/table/{table}" + (f"/{sys_id}" if sys_id else "")

    def skew(self, seconds: float) -> None:
        """Move the server clock to ``T0 + seconds``."""
        self.control.set_clock(seconds)


@pytest.fixture(scope="session")
def snow_server() -> Iterator[tuple[ServiceNowApp, AppServer]]:
    app = ServiceNowApp(SPEC, Clock(lambda: T0))
    server = AppServer(app).start()
    yield app, server
    server.stop()


@pytest.fixture
def snow(snow_server: tuple[ServiceNowApp, AppServer]) -> Snow:
    app, server = snow_server
    control = SandboxControl(server.url)
    control.reset()
    return Snow(app, server.url, f"{server.host}:{server.port}", control)
