"""Start both simulators together, or find ones already running, and describe them.

``Sandbox(spec).start()`` serves the ServiceNow simulator and one Jira server hosting every site
of ``spec`` (each at ``/<site>``), each with its own clock so skew can be applied to one side
only. A started sandbox can replay an event log and run actors (simulated people, see
:mod:`connector.sandbox.agents`) in the background; :meth:`Sandbox.settled` tells when both are
done. ``probe()`` tells whether simulators already answer at an address, so that the daemon can
use a sandbox started by ``mim-connector sandbox`` in another terminal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import requests

from connector.config import LoadedConfig
from connector.config.connector_file import JiraApiTokenAuth, JiraBasicAuth, JiraPatAuth, ServiceNowOAuth2Auth
from connector.core.errors import ConnectorError
from connector.rules.backtest.eventlog import read_events
from connector.sandbox.casting import cast_demo
from connector.sandbox.control import SandboxControl
from connector.sandbox.core import Clock
from connector.sandbox.jira import JiraApp
from connector.sandbox.replay import Replayer, ReplayStats, first_incidents
from connector.sandbox.server import AppServer
from connector.sandbox.servicenow import ServiceNowApp
from connector.sandbox.spec import SandboxSpec, SnowUser

log = logging.getLogger(__name__)

ADMIN = "admin"


class SandboxError(ConnectorError):
    """The sandbox cannot start or be found (e.g. its port is taken by something else)."""


class Actor(Protocol):
    """Someone the sandbox plays in the background (a supplier engineer, the service desk)."""

    name: str

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; never raise for a failed request (log it and go on)."""

    def busy(self) -> bool:
        """Whether anything this actor has seen still awaits its next step."""


class Sandbox:
    """Both simulators of ``spec``, served on loopback. Use as a context manager or start/stop."""

    def __init__(self, spec: SandboxSpec, *, seed: int = 0) -> None:
        self.spec = spec
        self.servicenow = ServiceNowApp(spec.servicenow, Clock(), seed=seed)
        self.jira = JiraApp(spec.sites, Clock(), seed=seed)
        self._servers = (
            AppServer(self.servicenow, spec.host, spec.servicenow_port),
            AppServer(self.jira, spec.host, spec.jira_port),
        )
        self._background_stop = threading.Event()
        self._replay_thread: threading.Thread | None = None
        self.replay_stats: ReplayStats | None = None
        self._actors: list[tuple[Actor, threading.Thread]] = []

    def start(self) -> Sandbox:
        """Bind both servers. Raises :class:`SandboxError` when a port is taken."""
        try:
            for server in self._servers:
                server.start()
        except OSError as exc:
            self.stop()
            raise SandboxError(f"cannot start the sandbox on {self.spec.host}: {exc.strerror}") from None
        return self

    def stop(self) -> None:
        """Stop any replay and actors, then both servers."""
        self._background_stop.set()
        if self._replay_thread is not None:
            self._replay_thread.join(timeout=10)
        for _actor, thread in self._actors:
            thread.join(timeout=10)
        for server in self._servers:
            server.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def servicenow_url(self) -> str:
        """Base URL of the ServiceNow simulator."""
        return self._servers[0].url

    @property
    def jira_url(self) -> str:
        """Base URL of the Jira server (sites live below it)."""
        return self._servers[1].url

    def site_url(self, site: str) -> str:
        """Base URL of one Jira site, as python-jira's ``server`` option wants it."""
        return f"{self.jira_url}/{site}"

    @property
    def servicenow_control(self) -> SandboxControl:
        """Control API client of the ServiceNow simulator."""
        return SandboxControl(self.servicenow_url)

    @property
    def jira_control(self) -> SandboxControl:
        """Control API client of the Jira server."""
        return SandboxControl(self.jira_url)

    def describe(self) -> dict[str, Any]:
        """URLs, users and credentials of both simulators (what ``mim-connector sandbox`` prints)."""
        return {"servicenow": self.servicenow.info(), "jira": self.jira.info()}

    def admin(self) -> SnowUser:
        """The ServiceNow administrator the replay writes as."""
        return next(u for u in self.servicenow_users() if u.user_name == ADMIN)

    def admin_session(self) -> requests.Session:
        """A Table API session as :meth:`admin` (JSON answers): how tools act as the service desk."""
        admin = self.admin()
        session = requests.Session()
        session.auth = (admin.user_name, admin.password)
        session.headers["Accept"] = "application/json"
        return session

    def table_url(self, table: str, sys_id: str = "") -> str:
        """The Table API URL of ``table``, or of one of its records."""
        return f"{self.servicenow_url}/api/now/table/{table}" + (f"/{sys_id}" if sys_id else "")

    def servicenow_users(self) -> list[SnowUser]:
        """Everyone who can log in to the ServiceNow simulator."""
        return [
            SnowUser(u["user_name"], u["password"], u.get("name", u["user_name"]))
            for u in self.servicenow.info()["users"]
        ]

    def replay(
        self,
        source: str,
        speed: float,
        *,
        max_gap: float | None = None,
        limit: int | None = None,
        cast: Literal["none", "demo"] = "none",
    ) -> None:
        """Replay an event log (``builtin`` or a CSV path) in the background as ``admin``.

        ``limit`` keeps the first N incidents, ``cast="demo"`` casts them onto the demo world
        (:mod:`connector.sandbox.casting`), ``max_gap`` caps each pause in seconds.
        """
        events = first_incidents(read_events(source), limit)
        if cast == "demo":
            events = cast_demo(events)
        admin = self.admin()
        replayer = Replayer(
            self.servicenow_url, (admin.user_name, admin.password), speed=speed, max_gap=max_gap
        )

        def work() -> None:
            self.replay_stats = replayer.run(events, self._background_stop)
            log.info("sandbox replay finished: %s", self.replay_stats)

        self._replay_thread = threading.Thread(target=work, name="sandbox-replay", daemon=True)
        self._replay_thread.start()

    def add_actor(self, actor: Actor) -> None:
        """Run ``actor`` in the background until the sandbox stops."""
        thread = threading.Thread(
            target=actor.run, args=(self._background_stop,), name=f"sandbox-{actor.name}", daemon=True
        )
        self._actors.append((actor, thread))
        thread.start()

    def settled(self) -> bool:
        """True once the replay (if any) has finished and no actor has work in hand."""
        if self._replay_thread is not None and self._replay_thread.is_alive():
            return False
        return not any(actor.busy() for actor, _thread in self._actors)


def probe(servicenow_url: str, jira_url: str, timeout: float = 1.0) -> dict[str, Any] | None:
    """What simulators already serve at these URLs, or ``None`` when nothing listens there.

    Raises:
        SandboxError: something answers but it is not our sandbox.
    """
    found: dict[str, Any] = {}
    for name, url in (("servicenow", servicenow_url), ("jira", jira_url)):
        try:
            response = requests.get(f"{url}/_sandbox/info", timeout=timeout)
        except requests.ConnectionError:
            continue
        except requests.RequestException as exc:
            raise SandboxError(f"{url} does not answer like a mim-connector sandbox: {exc}") from None
        info = response.json() if response.ok and "json" in response.headers.get("Content-Type", "") else {}
        if info.get("name") != name:
            raise SandboxError(f"{url} is in use by something that is not the {name} sandbox")
        found[name] = info
    if not found:
        return None
    if len(found) == 1:
        missing = "jira" if "servicenow" in found else "servicenow"
        raise SandboxError(f"only the {next(iter(found))} sandbox is running; the {missing} one is not")
    return found


def credentials_from(loaded: LoadedConfig, described: Mapping[str, Any]) -> dict[str, str]:
    """Values for the config's ``${VAR}`` credential references, taken from a running sandbox."""
    out: dict[str, str] = {}
    auth = loaded.connector.servicenow.auth
    users = {u["user_name"]: u for u in described["servicenow"].get("users", [])}
    if auth.password.kind == "env" and auth.username in users:
        out[auth.password.target] = users[auth.username]["password"]
    if isinstance(auth, ServiceNowOAuth2Auth) and auth.client_secret.kind == "env":
        clients = {c["client_id"]: c for c in described["servicenow"].get("oauth_clients", [])}
        if auth.client_id in clients:
            out[auth.client_secret.target] = clients[auth.client_id]["client_secret"]
    sites = described["jira"].get("sites", {})
    for supplier in loaded.connector.suppliers.values():
        site = sites.get(supplier.jira.url.rstrip("/").rsplit("/", 1)[-1], {})
        jira_auth = supplier.jira.auth
        for user in site.get("users", []):
            if isinstance(jira_auth, JiraApiTokenAuth) and user.get("email") == jira_auth.email:
                _take(
                    out,
                    jira_auth.token.target if jira_auth.token.kind == "env" else None,
                    user.get("api_token"),
                )
            elif isinstance(jira_auth, JiraPatAuth) and user.get("username") == "mim-connector":
                _take(out, jira_auth.token.target if jira_auth.token.kind == "env" else None, user.get("pat"))
            elif isinstance(jira_auth, JiraBasicAuth) and user.get("username") == jira_auth.username:
                _take(
                    out,
                    jira_auth.password.target if jira_auth.password.kind == "env" else None,
                    user.get("password"),
                )
    return out


def _take(out: dict[str, str], variable: str | None, value: str | None) -> None:
    if variable and value:
        out[variable] = value
