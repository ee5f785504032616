"""The Jira simulator for the adapter tests: a Cloud and a Data Center site, adapters built on them.

Plain helpers, no fixtures: each test module wraps :func:`serve` and :func:`make_jira` in its own.
Credentials reach the adapter as ``${VAR}`` references resolved from the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from connector.config.connector_file import JiraSite
from connector.http.retry import RetryPolicy
from connector.jira.adapter import JiraAdapter
from connector.sandbox.control import SandboxControl
from connector.sandbox.jira import JiraApp
from connector.sandbox.server import AppServer
from connector.sandbox.spec import (
    DEFAULT_WORKFLOW,
    JiraCustomField,
    JiraProject,
    JiraSiteSpec,
    JiraUser,
)

ACME_TOKEN = "acme-token-7f3c9d2e1b"
GLOBEX_PAT = "globex-pat-5a8e4c1f09"
GLOBEX_PASSWORD = "globex-password-91d2"
FIELDS = (JiraCustomField("customfield_10050", "SNOW Ref"),)
ACME = JiraSiteSpec(
    name="acme",
    deployment="cloud",
    users=(
        JiraUser("MIM Connector", "mim@acme.example", "mim", api_token=ACME_TOKEN, time_zone="Europe/Berlin"),
        JiraUser("Jane Doe", "jane@acme.example", "jane", api_token="jane-token-0000", time_zone="UTC"),
    ),
    projects=(JiraProject("ACME", "ACME Hosting", ("Incident", "Task"), DEFAULT_WORKFLOW),),
    custom_fields=FIELDS,
)
GLOBEX = JiraSiteSpec(
    name="globex",
    deployment="datacenter",
    users=(
        JiraUser(
            "MIM Connector",
            "mim@globex.example",
            "mim-connector",
            pat=GLOBEX_PAT,
            password=GLOBEX_PASSWORD,
            time_zone="Asia/Kolkata",
        ),
        JiraUser("John Roe", "john@globex.example", "jroe", pat="jroe-pat-0000", time_zone="UTC"),
    ),
    projects=(JiraProject("NET", "Globex Networks", ("Fault", "Task"), DEFAULT_WORKFLOW),),
    custom_fields=FIELDS,
)
FAST_RETRIES = RetryPolicy(attempts=3, initial=0.01, maximum=0.02, jitter=0.0)
NO_RETRIES = RetryPolicy(attempts=1)


@dataclass
class Served:
    """The running simulator."""

    app: JiraApp
    url: str
    control: SandboxControl


def serve() -> Iterator[Served]:
    """Start the simulator with both sites; stop it when the generator is closed."""
    app = JiraApp([ACME, GLOBEX])
    server = AppServer(app).start()
    try:
        yield Served(app, server.url, SandboxControl(server.url))
    finally:
        server.stop()


class FakeTime:
    """A monotonic clock that only moves when something sleeps; records every wait."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


@dataclass
class Jira:
    """One site as a test sees it: the adapter, its project and issue type, the simulator."""

    adapter: JiraAdapter
    name: str
    project: str
    issue_type: str
    served: Served
    time: FakeTime = field(default_factory=FakeTime)

    @property
    def cloud(self) -> bool:
        return self.adapter.deployment == "cloud"

    def seq(self) -> int:
        """The journal cursor: requests after it are the test's."""
        return self.served.control.last_seq()

    def requests(self, since: int) -> list[tuple[str, str]]:
        """``(method, path-after-/rest/api/2)`` of every request to this site after ``since``."""
        prefix = f"/{self.name}/rest/api/2/"
        return [
            (entry["method"], entry["path"].removeprefix(prefix))
            for entry in self.served.control.requests(since=since)
            if entry["path"].startswith(f"/{self.name}/")
        ]

    def journal(self, since: int) -> list[dict[str, Any]]:
        """Raw journal entries of this site after ``since``."""
        return [
            e for e in self.served.control.requests(since=since) if e["path"].startswith(f"/{self.name}/")
        ]

    def settings(self, **values: Any) -> None:
        self.served.control.post(f"sites/{self.name}/settings", values)

    def new_issue(self, summary: str = "Disk array degraded", **fields: Any) -> str:
        ref = self.adapter.create_issue(self.project, self.issue_type, {"summary": summary, **fields}, {})
        return ref.key


def site_config(served: Served, deployment: str, **overrides: Any) -> JiraSite:
    """A ``JiraSite`` as ``config/connector.yaml`` would give it, credentials by ``${VAR}``."""
    if deployment == "cloud":
        auth = {"type": "api_token", "email": "mim@acme.example", "token": "${ACME_JIRA_TOKEN}"}
        url = f"{served.url}/acme"
    else:
        auth = {"type": "pat", "token": "${GLOBEX_JIRA_PAT}"}
        url = f"{served.url}/globex"
    raw = {
        "url": url,
        "deployment": deployment,
        "auth": auth,
        "timeout": "5s",
        "rate_budget": {"requests_per_second": 1000, "burst": 1000},
    }
    return JiraSite.model_validate(raw | overrides)


def make_jira(
    served: Served,
    deployment: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    policy: RetryPolicy = FAST_RETRIES,
    **overrides: Any,
) -> Jira:
    """An adapter on the Cloud (``acme``) or Data Center (``globex``) site with a fake clock."""
    monkeypatch.setenv("ACME_JIRA_TOKEN", ACME_TOKEN)
    monkeypatch.setenv("GLOBEX_JIRA_PAT", GLOBEX_PAT)
    monkeypatch.setenv("GLOBEX_JIRA_PASSWORD", GLOBEX_PASSWORD)
    fake = FakeTime()
    name, project, issue_type = (
        ("acme", "ACME", "Incident") if deployment == "cloud" else ("globex", "NET", "Fault")
    )
    adapter = JiraAdapter(
        name,
        site_config(served, deployment, **overrides),
        policy=policy,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    return Jira(adapter, name, project, issue_type, served, fake)


def greeted_jira(served: Served, deployment: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Jira]:
    """An adapter that has already said hello (serverInfo, myself), on a freshly reset site; closed after."""
    served.control.reset()
    made = make_jira(served, deployment, monkeypatch)
    made.adapter.myself()
    yield made
    made.adapter.close()
