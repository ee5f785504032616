"""The embedded sandbox serves what the admin's configuration describes."""

from __future__ import annotations

import itertools
from pathlib import Path

from connector.config import load_config
from connector.sandbox.fromconfig import plan_from_config
from tests.conftest import REPO


def test_demo_config_becomes_sites_with_the_mappings_projects_and_workflows() -> None:
    tokens = (f"generated-{n}" for n in itertools.count())
    plan = plan_from_config(load_config(REPO / "config" / "demo.yaml"), {}, token=lambda: next(tokens))
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


def test_credentials_already_in_the_environment_are_used(tmp_path: Path) -> None:
    plan = plan_from_config(
        load_config(REPO / "config" / "demo.yaml"), {"MIM_DEMO_SN_PASSWORD": "from-env-1"}
    )
    assert plan.spec.servicenow.users[0].password == "from-env-1"
    assert "MIM_DEMO_SN_PASSWORD" not in plan.provided
