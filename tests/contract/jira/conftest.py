"""One Jira simulator for the contract tests: a Cloud site and a Data Center site on a free port.

The server starts once per session; every test starts from empty sites (``POST /_sandbox/reset``).
Clients are the real python-jira 3.10.5, always with ``max_retries=0`` and a timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from jira import JIRA

from connector.sandbox.control import SandboxControl
from connector.sandbox.jira import JiraApp
from connector.sandbox.server import AppServer
from connector.sandbox.spec import (
    DEFAULT_WORKFLOW,
    JiraCustomField,
    JiraProject,
    JiraSiteSpec,
    JiraStatus,
    JiraTransition,
    JiraUser,
    JiraWorkflow,
)

TIMEOUT = 10
CUSTOM_FIELDS = (
    JiraCustomField("customfield_10050", "SNOW Ref"),
    JiraCustomField("customfield_10061", "Supplier ETA", "datetime"),
    JiraCustomField("customfield_10070", "Root cause", "text"),
)
GLOBEX_WORKFLOW = JiraWorkflow(
    initial="New",
    statuses=(
        JiraStatus("New", "todo"),
        JiraStatus("Investigating", "in_progress"),
        JiraStatus("Restored", "done"),
        JiraStatus("Closed", "done"),
    ),
    transitions=(
        JiraTransition("Investigate", "Investigating", ("New",)),
        JiraTransition("Restore Service", "Restored", ("New", "Investigating"), ("resolution",)),
        JiraTransition("Reopen", "Investigating", ("Restored",)),
        JiraTransition("Close", "Closed", ("Restored",)),
    ),
)
ACME = JiraSiteSpec(
    name="acme",
    deployment="cloud",
    users=(
        JiraUser(
            "MIM Connector", "mim@acme.example", "mim", api_token="acme-token", time_zone="Europe/Berlin"
        ),
        JiraUser("Jane Doe", "jane@acme.example", "jane", api_token="jane-token", time_zone="UTC"),
    ),
    projects=(JiraProject("ACME", "ACME Hosting", ("Incident", "Task"), DEFAULT_WORKFLOW),),
    custom_fields=CUSTOM_FIELDS,
)
GLOBEX = JiraSiteSpec(
    name="globex",
    deployment="datacenter",
    users=(
        JiraUser(
            "MIM Connector",
            "mim@globex.example",
            "mim-connector",
            pat="globex-pat",
            password="pw",
            time_zone="Asia/Kolkata",
        ),
        JiraUser("John Roe", "john@globex.example", "jroe", pat="jroe-pat", time_zone="UTC"),
    ),
    projects=(JiraProject("NET", "Globex Networks", ("Fault", "Task"), GLOBEX_WORKFLOW),),
    custom_fields=CUSTOM_FIELDS,
)


@dataclass
class Served:
    """The running simulator."""

    app: JiraApp
    url: str
    control: SandboxControl


@dataclass
class Site:
    """One site as a test sees it: python-jira client, raw session, project and issue type."""

    name: str
    deployment: str
    url: str
    client: JIRA
    http: requests.Session
    project: str
    issue_type: str
    served: Served

    @property
    def cloud(self) -> bool:
        return self.deployment == "cloud"

    def rest(self, path: str, version: str = "2") -> str:
        return f"{self.url}/rest/api/{version}/{path.lstrip('/')}"

    def new_issue(self, summary: str = "Disk array degraded", **fields):
        return self.client.create_issue(
            fields={
                "project": {"key": self.project},
                "issuetype": {"name": self.issue_type},
                "summary": summary,
                **fields,
            }
        )

    def settings(self, **values) -> dict:
        return self.served.control.post(f"sites/{self.name}/settings", values)


@pytest.fixture(scope="session")
def served() -> Iterator[Served]:
    app = JiraApp([ACME, GLOBEX])
    server = AppServer(app).start()
    yield Served(app, server.url, SandboxControl(server.url))
    server.stop()


@pytest.fixture(autouse=True)
def _fresh(served: Served) -> None:
    served.control.reset()


def cloud_client(
    served: Served, email: str = "mim@acme.example", token: str = "acme-token", **options
) -> JIRA:
    """python-jira on the Cloud site; no retries unless ``max_retries`` is given."""
    options = {"max_retries": 0, "timeout": TIMEOUT} | options
    return JIRA(server=f"{served.url}/acme", basic_auth=(email, token), **options)


def dc_client(served: Served, pat: str = "globex-pat", **options) -> JIRA:
    """python-jira on the Data Center site with a PAT; no retries unless ``max_retries`` is given."""
    options = {"max_retries": 0, "timeout": TIMEOUT} | options
    return JIRA(server=f"{served.url}/globex", token_auth=pat, **options)


def _session(auth: tuple[str, str] | None = None, bearer: str | None = None) -> requests.Session:
    session = requests.Session()
    if auth:
        session.auth = auth
    if bearer:
        session.headers["Authorization"] = f"Bearer {bearer}"
    return session


def make_site(served: Served, deployment: str) -> Site:
    if deployment == "cloud":
        http = _session(auth=("mim@acme.example", "acme-token"))
        return Site(
            "acme", "cloud", f"{served.url}/acme", cloud_client(served), http, "ACME", "Incident", served
        )
    http = _session(bearer="globex-pat")
    return Site(
        "globex", "datacenter", f"{served.url}/globex", dc_client(served), http, "NET", "Fault", served
    )


@pytest.fixture(params=["cloud", "datacenter"])
def site(request: pytest.FixtureRequest, served: Served) -> Iterator[Site]:
    """Each test using it runs against both deployments."""
    made = make_site(served, request.param)
    yield made
    made.client.close()
    made.http.close()


@pytest.fixture
def cloud(served: Served) -> Iterator[Site]:
    made = make_site(served, "cloud")
    yield made
    made.client.close()
    made.http.close()


@pytest.fixture
def dc(served: Served) -> Iterator[Site]:
    made = make_site(served, "datacenter")
    yield made
    made.client.close()
    made.http.close()
