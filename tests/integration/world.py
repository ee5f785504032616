"""A complete world for end-to-end tests: the shipped config and mappings, pointed at a fresh sandbox.

``World.create(tmp_path)`` copies ``config/demo.yaml`` and ``mappings/`` into ``tmp_path``
(:func:`write_config`: URLs at free ports, the store in ``tmp_path``), starts the sandbox the config
describes (not embedded: the test owns it) and exports the credentials it generated.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from jira import JIRA

from connector.config import LoadedConfig, load_config
from connector.runtime.assembly import Runtime, build
from connector.sandbox.control import SandboxControl
from connector.sandbox.fromconfig import plan_from_config
from connector.sandbox.runner import Sandbox
from tests.conftest import REPO


@contextmanager
def daemon_process(*args: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[str]]:
    """``mim-connector run`` (or another long command) as a child with text pipes; killed on the way out."""
    daemon = subprocess.Popen(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        yield daemon
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate(timeout=30)


def stop(daemon: subprocess.Popen[str]) -> str:
    """SIGTERM ``daemon`` as an operator would, wait for it to end; its standard error."""
    daemon.send_signal(signal.SIGTERM)
    _out, err = daemon.communicate(timeout=30)
    return err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(root: Path, *, overrides: dict[str, str] | None = None, embedded: bool = False) -> Path:
    """``config/demo.yaml`` and ``mappings/`` copied under ``root``; returns the config's path.

    The URLs point at free ports, the store lives in ``root``, metrics are off and nothing is
    replayed; ``embedded`` keeps ``sandbox.embedded`` (the daemon starts the sandbox itself).
    ``overrides`` replace text of the config last.
    """
    shutil.copytree(REPO / "mappings", root / "mappings")
    (root / "config").mkdir()
    text = (REPO / "config" / "demo.yaml").read_text()
    sn_port, jira_port = free_port(), free_port()
    text = text.replace("127.0.0.1:8090", f"127.0.0.1:{sn_port}").replace(
        "127.0.0.1:8091", f"127.0.0.1:{jira_port}"
    )
    if not embedded:
        text = text.replace("  embedded: true", "  embedded: false")
    text = text.replace("  replay: builtin\n", "")
    text = text.replace("sqlite:///../var/demo.db", "sqlite:///../state.db").replace(
        "  enabled: true\n  port: 9464", "  enabled: false"
    )
    for old, new in (overrides or {}).items():
        text = text.replace(old, new)
    config = root / "config" / "connector.yaml"
    config.write_text(text)
    return config


@dataclass
class World:
    """The sandbox, the config that points at it, and handles for acting as people on both sides."""

    root: Path
    config: Path
    sandbox: Sandbox
    environ: dict[str, str]

    @classmethod
    def create(cls, root: Path, *, overrides: dict[str, str] | None = None) -> World:
        config = write_config(root, overrides=overrides)
        plan = plan_from_config(load_config(config))
        sandbox = Sandbox(plan.spec).start()
        environ = dict(plan.provided)
        os.environ.update(environ)
        return cls(root, config, sandbox, environ)

    def close(self) -> None:
        self.sandbox.stop()
        for name in self.environ:
            os.environ.pop(name, None)

    @property
    def loaded(self) -> LoadedConfig:
        return load_config(self.config)

    def runtime(self, *, dry_run: bool = False) -> Runtime:
        return build(self.loaded, dry_run=dry_run)

    # --- the service desk (ServiceNow admin) ---------------------------------------------------------

    def snow(self) -> requests.Session:
        return self.sandbox.admin_session()

    def table(self, table: str, sys_id: str = "") -> str:
        return self.sandbox.table_url(table, sys_id)

    def lookup(self, table: str, query: str) -> str:
        rows = (
            self.snow()
            .get(self.table(table), params={"sysparm_query": query, "sysparm_fields": "sys_id"}, timeout=10)
            .json()["result"]
        )
        assert rows, f"no {table} matches {query}"
        return str(rows[0]["sys_id"])

    def create_incident(self, **fields: str) -> dict[str, str]:
        payload = {
            "short_description": "Checkout fails for all customers",
            "description": "Payment page times out",
            "impact": "1",
            "urgency": "1",
            **fields,
        }
        response = self.snow().post(
            self.table("incident"),
            json=payload,
            params={"sysparm_exclude_reference_link": "true"},
            timeout=10,
        )
        response.raise_for_status()
        return dict(response.json()["result"])

    def update_incident(self, sys_id: str, **fields: str) -> None:
        self.snow().patch(self.table("incident", sys_id), json=fields, timeout=10).raise_for_status()

    def incident(self, sys_id: str) -> dict[str, Any]:
        params = {"sysparm_exclude_reference_link": "true"}
        return dict(
            self.snow().get(self.table("incident", sys_id), params=params, timeout=10).json()["result"]
        )

    def journal(self, sys_id: str) -> list[dict[str, str]]:
        params = {
            "sysparm_query": f"element_id={sys_id}^ORDERBYsys_created_on",
            "sysparm_fields": "element,value,sys_created_by",
        }
        return list(
            self.snow().get(self.table("sys_journal_field"), params=params, timeout=10).json()["result"]
        )

    def acme_group(self) -> str:
        return self.lookup("sys_user_group", "name=ACME Hosting L2")

    # --- a supplier agent (Jane Doe) ---------------------------------------------------------------------

    def agent(self, site: str) -> JIRA:
        info = self.sandbox.describe()["jira"]["sites"][site]
        jane = next(u for u in info["users"] if u["username"] == "jdoe")
        url = self.sandbox.site_url(site)
        if info["deployment"] == "cloud":
            return JIRA(url, basic_auth=(jane["email"], jane["api_token"]), max_retries=0, timeout=10)
        return JIRA(url, token_auth=jane["pat"], max_retries=0, timeout=10)

    def issues(self, site: str, project: str) -> list[Any]:
        return list(self.agent(site).search_issues(f"project = {project} ORDER BY key ASC", maxResults=False))

    # --- the sandbox journals ------------------------------------------------------------------------------

    @property
    def servicenow_control(self) -> SandboxControl:
        return self.sandbox.servicenow_control

    @property
    def jira_control(self) -> SandboxControl:
        return self.sandbox.jira_control

    def marks(self) -> tuple[int, int]:
        return self.servicenow_control.last_seq(), self.jira_control.last_seq()

    def writes_since(self, marks: tuple[int, int], user: str | None = None) -> list[dict[str, Any]]:
        """Write requests (POST/PUT/PATCH/DELETE) since ``marks``, optionally by one user only."""
        entries = self.servicenow_control.requests(since=marks[0]) + self.jira_control.requests(
            since=marks[1]
        )
        return [
            e
            for e in entries
            if e["method"] in ("POST", "PUT", "PATCH", "DELETE") and (user is None or e["user"] == user)
        ]

    def requests_since(self, marks: tuple[int, int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return self.servicenow_control.requests(since=marks[0]), self.jira_control.requests(since=marks[1])
