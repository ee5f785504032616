"""The embedded sandbox serves what the admin's configuration describes."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from connector.config import load_config
from connector.sandbox.fromconfig import plan_from_config
from tests.conftest import REPO


def test_demo_config_becomes_sites_with_the_mappings_projects_and_workflows() -> None:
    tokens = (f"generated-{n}" for n in itertools.count())
    plan = plan_from_config(load_config(REPO / "config" / "demo.yaml"), token=lambda: next(tokens))
    assert (plan.servicenow.port, plan.jira.port) == (8090, 8091)
    sites = {site.name: site for site in plan.spec.sites}
    assert {name: site.deployment for name, site in sites.items()} == {
        "acme": "cloud",
        "globex": "datacenter",
        "initech": "cloud",
    }
    acme = sites["acme"]
    project = acme.projects[0]
    assert (project.key, project.issue_types) == ("ACME", ("Incident", "Task"))
    assert [s.name for s in project.workflow.statuses] == [
        "Open",
        "In Progress",
        "Waiting for Customer",
        "Resolved",
        "Closed",
    ]
    assert {t.name: t.requires for t in project.workflow.transitions}["Resolve"] == ("resolution",)
    assert {f.id for f in acme.custom_fields} == {
        "customfield_10050",  # outbound.fields
        "customfield_10061",  # read by inbound.fields
        "customfield_10062",  # shared
        "customfield_10070",  # problem.root_cause_field
        "customfield_10080",  # outbound.mim.bridge_field
        "customfield_10081",  # outbound.mim.next_update_field
    }
    assert sites["globex"].priorities[:2] == ("Blocker", "Critical")
    integration = acme.users[0]
    assert (integration.email, integration.api_token) == ("mim-connector@example.com", "generated-1")
    assert integration.time_zone != "UTC", (
        "the API user's zone differs from UTC so JQL date handling is exercised"
    )
    assert sites["globex"].users[0].pat == "generated-2"
    assert plan.spec.servicenow.users[0].user_name == "svc.mim-connector"
    assert plan.spec.servicenow.custom_columns == {
        "incident": (
            "u_bridge_url",
            "u_next_update",
            "u_supplier_eta",
            "u_supplier_reference",
            "u_workaround",
        )
    }
    assert plan.provided == {
        "MIM_DEMO_SN_PASSWORD": "generated-0",
        "MIM_DEMO_ACME_TOKEN": "generated-1",
        "MIM_DEMO_GLOBEX_TOKEN": "generated-2",
        "MIM_DEMO_INITECH_TOKEN": "generated-3",
    }


def test_credentials_in_the_environment_or_in_files_are_never_adopted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox serves its users' secrets on /_sandbox/info: a real one must never get there."""
    real = {
        "MIM_DEMO_SN_PASSWORD": "real-servicenow-password-1",
        "MIM_DEMO_ACME_TOKEN": "real-acme-token-2",
        "MIM_DEMO_GLOBEX_TOKEN": "real-globex-pat-3",
    }
    for name, value in real.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "initech-token").write_text("real-initech-token-4\n")
    config = tmp_path / "demo.yaml"
    config.write_text(
        (REPO / "config" / "demo.yaml")
        .read_text()
        .replace("../mappings", str(REPO / "mappings"))
        .replace("${MIM_DEMO_INITECH_TOKEN}", "file:initech-token")
        .replace("  embedded: true", "  embedded: false")  # as `mim-connector sandbox -c` may be given
    )
    tokens = (f"generated-{n}" for n in itertools.count())
    plan = plan_from_config(load_config(config), token=lambda: next(tokens))
    served = repr(plan.spec)
    for value in [*real.values(), "real-initech-token-4"]:
        assert value not in served
    assert plan.spec.servicenow.users[0].password == "generated-0"
    assert plan.provided == {
        "MIM_DEMO_SN_PASSWORD": "generated-0",
        "MIM_DEMO_ACME_TOKEN": "generated-1",
        "MIM_DEMO_GLOBEX_TOKEN": "generated-2",
    }
    initech = next(site for site in plan.spec.sites if site.name == "initech")
    assert initech.users[0].api_token == "generated-3"


def test_each_plan_generates_new_credentials() -> None:
    loaded = load_config(REPO / "config" / "demo.yaml")
    first, second = plan_from_config(loaded), plan_from_config(loaded)
    assert set(first.provided) == set(second.provided)
    assert all(first.provided[name] != second.provided[name] for name in first.provided)
