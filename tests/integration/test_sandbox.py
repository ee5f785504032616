"""The whole sandbox as admins and the daemon use it: from a config, with replay, attachable, as a command."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pysnow
import pytest
from jira import JIRA

from connector.config import LoadedConfig, load_config
from connector.sandbox.embedded import ensure_sandbox
from connector.sandbox.fromconfig import SandboxPlan, plan_from_config
from connector.sandbox.runner import Sandbox, SandboxError, credentials_from, probe
from tests.conftest import REPO
from tests.integration.world import write_config

SCRIPT = Path(sys.executable).parent / "mim-connector"
REAL_CREDENTIALS = {
    "MIM_DEMO_SN_PASSWORD": "real-servicenow-password-7d1e",
    "MIM_DEMO_ACME_TOKEN": "real-acme-token-3f9a",
    "MIM_DEMO_GLOBEX_TOKEN": "real-globex-pat-c2b8",
}


@pytest.fixture(scope="module")
def demo() -> LoadedConfig:
    return load_config(REPO / "config" / "demo.yaml")


@pytest.fixture(scope="module")
def plan(demo: LoadedConfig) -> SandboxPlan:
    return plan_from_config(demo)


@pytest.fixture(scope="module")
def sandbox(plan: SandboxPlan) -> Iterator[Sandbox]:
    spec = dataclasses.replace(plan.spec, servicenow_port=0, jira_port=0)
    with Sandbox(spec) as running:
        yield running


def test_real_clients_log_in_with_the_configured_credentials(sandbox: Sandbox, plan: SandboxPlan) -> None:
    host = sandbox.servicenow_url.removeprefix("http://")
    client = pysnow.Client(
        host=host, use_ssl=False, user="svc.mim-connector", password=plan.provided["MIM_DEMO_SN_PASSWORD"]
    )
    groups = (
        client.resource(api_path="/table/sys_user_group")
        .get(query="name=ACME Hosting L2", fields=["name"])
        .all()
    )
    assert groups == [{"name": "ACME Hosting L2"}]
    acme = JIRA(
        sandbox.site_url("acme"),
        basic_auth=("mim-connector@example.com", plan.provided["MIM_DEMO_ACME_TOKEN"]),
        max_retries=0,
        timeout=10,
    )
    assert acme.myself()["timeZone"] == "Europe/Berlin"
    assert [s.name for s in acme.statuses()][:2] == ["Open", "In Progress"]
    globex = JIRA(
        sandbox.site_url("globex"),
        token_auth=plan.provided["MIM_DEMO_GLOBEX_TOKEN"],
        max_retries=0,
        timeout=10,
    )
    assert globex.server_info()["deploymentType"] == "Server"


def test_replay_of_the_builtin_log(sandbox: Sandbox) -> None:
    sandbox.servicenow_control.reset()
    sandbox.replay("builtin", 0)
    assert sandbox._replay_thread is not None
    sandbox._replay_thread.join(timeout=120)
    stats = sandbox.replay_stats
    assert stats is not None and (stats.created, stats.failed) == (197, 0)
    admin = sandbox.admin()
    client = pysnow.Client(
        host=sandbox.servicenow_url.removeprefix("http://"),
        use_ssl=False,
        user=admin.user_name,
        password=admin.password,
    )
    critical = (
        client.resource(api_path="/table/incident")
        .get(query="priority=1^number=INC0000261", fields=["number", "state"])
        .all()
    )
    assert critical == [{"number": "INC0000261", "state": "7"}]


def test_a_running_sandbox_is_found_and_lends_its_credentials(
    sandbox: Sandbox, demo: LoadedConfig, plan: SandboxPlan
) -> None:
    found = probe(sandbox.servicenow_url, sandbox.jira_url)
    assert found is not None and set(found) == {"servicenow", "jira"}
    assert credentials_from(demo, found) == dict(plan.provided)


def test_probe_tells_nothing_from_something_else() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        free = f"http://127.0.0.1:{listener.getsockname()[1]}"
    assert probe(free, free) is None
    with Sandbox(
        dataclasses.replace(
            plan_from_config(load_config(REPO / "config" / "demo.yaml")).spec,
            servicenow_port=0,
            jira_port=0,
        )
    ) as other:
        with pytest.raises(SandboxError, match="not the servicenow sandbox"):
            probe(other.jira_url, other.jira_url)
        with pytest.raises(SandboxError, match="only the servicenow sandbox is running"):
            probe(other.servicenow_url, free)


def test_taken_port_is_a_clear_error(sandbox: Sandbox, plan: SandboxPlan) -> None:
    port = int(sandbox.servicenow_url.rsplit(":", 1)[1])
    with pytest.raises(SandboxError, match="cannot start the sandbox"):
        Sandbox(dataclasses.replace(plan.spec, servicenow_port=port, jira_port=0)).start()


def test_sandbox_command_announces_itself_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            str(SCRIPT),
            "sandbox",
            "--servicenow-port",
            "0",
            "--jira-port",
            "0",
            "--suppliers",
            "acme,extra",
            "--jira-deployment",
            "datacenter",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **REAL_CREDENTIALS},
    )
    try:
        assert process.stdout is not None
        announcement = json.loads(process.stdout.readline())
        assert set(announcement["jira"]["sites"]) == {"acme", "extra"}
        assert {s["deployment"] for s in announcement["jira"]["sites"].values()} == {"datacenter"}
        users = {u["user_name"]: u["password"] for u in announcement["servicenow"]["users"]}
        environment = announcement["environment"]
        assert users["svc.mim-connector"] == environment["MIM_DEMO_SN_PASSWORD"]
        assert set(environment) >= {"MIM_DEMO_SN_PASSWORD", "MIM_DEMO_ACME_TOKEN"}
        served = probe(announcement["servicenow"]["url"], announcement["jira"]["url"])
        assert served is not None
        # /_sandbox/info answers anyone: the environment's real credentials must not be there.
        for value in REAL_CREDENTIALS.values():
            assert value not in json.dumps(served) and value not in json.dumps(announcement)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "sandbox stopped" in err


def test_the_embedded_sandbox_makes_its_own_credentials_and_the_connector_uses_them(tmp_path: Path) -> None:
    loaded = load_config(write_config(tmp_path, embedded=True))
    environ = dict(REAL_CREDENTIALS)
    sandbox = ensure_sandbox(loaded, environ)
    assert sandbox is not None
    try:
        served = json.dumps(sandbox.describe())
        for value in REAL_CREDENTIALS.values():
            assert value not in served
        users = {u.user_name: u.password for u in sandbox.servicenow_users()}
        assert environ["MIM_DEMO_SN_PASSWORD"] == users["svc.mim-connector"]
        assert set(environ) == {
            "MIM_DEMO_SN_PASSWORD",
            "MIM_DEMO_ACME_TOKEN",
            "MIM_DEMO_GLOBEX_TOKEN",
            "MIM_DEMO_INITECH_TOKEN",
        }
        # A second run attaches to this sandbox and borrows the same values over the real ones.
        again = dict(REAL_CREDENTIALS)
        assert ensure_sandbox(loaded, again) is None
        assert again == environ
    finally:
        sandbox.stop()
