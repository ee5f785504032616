"""A simulated supplier engineer's path through a workflow comes from the mapping, not from a script."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.config import load_config
from connector.config.supplier_file import SupplierMapping, Workflow
from connector.sandbox.playbook import Playbook, Step, eta_fields
from tests.conftest import REPO

SHIPPED = load_config(REPO / "config" / "demo.yaml").suppliers


def with_workflow(
    mapping: SupplierMapping, workflow: dict[str, object], status_map: list[str]
) -> SupplierMapping:
    data = mapping.model_dump(by_alias=True)
    data["jira"]["workflow"] = workflow
    data["inbound"]["status_map"] = {status: {"state": "Resolved"} for status in status_map}
    data["outbound"]["status_map"] = {}
    return SupplierMapping.model_validate(data, context={"base_dir": Path()})


@pytest.mark.parametrize(
    ("supplier", "working", "resolved", "start", "finish"),
    [
        (
            "acme",
            "In Progress",
            "Resolved",
            [Step("Start Progress", "In Progress", {})],
            [Step("Resolve", "Resolved", {"resolution": "Fixed"})],
        ),
        (
            "globex",
            "Investigating",
            "Restored",
            [Step("Investigate", "Investigating", {})],
            [Step("Restore Service", "Restored", {})],
        ),
        ("initech", "In Progress", "Done", [Step("Start", "In Progress", {})], [Step("Done", "Done", {})]),
    ],
)
def test_shipped_mappings_give_the_engineer_a_path(
    supplier: str, working: str, resolved: str, start: list[Step], finish: list[Step]
) -> None:
    mapping = SHIPPED[supplier]
    playbook = Playbook.for_mapping(mapping)
    assert (playbook.working_status, playbook.resolved_status) == (working, resolved)
    assert resolved in mapping.inbound.status_map, "the engineer ends where the connector writes back"
    assert playbook.path(mapping.jira.workflow.initial, working) == start
    assert playbook.path(working, resolved) == finish


def test_eta_and_root_cause_fields_come_from_the_mapping() -> None:
    acme = Playbook.for_mapping(SHIPPED["acme"])
    assert (acme.eta_fields, acme.root_cause_field) == (("customfield_10061",), "customfield_10070")
    globex = Playbook.for_mapping(SHIPPED["globex"])
    assert (globex.eta_fields, globex.root_cause_field) == ((), None)
    assert eta_fields(SHIPPED["initech"]) == ()


def test_a_longer_workflow_is_walked_hop_by_hop_and_never_through_a_terminal_status() -> None:
    workflow = {
        "initial": "Triage",
        "statuses": {
            "Triage": {"category": "todo"},
            "Assigned": {"category": "todo"},
            "Working": {"category": "in_progress"},
            "Cancelled": {"category": "done", "terminal": True},
            "Fixed": {"category": "done"},
            "Verified": {"category": "done"},
        },
        "transitions": [
            {"name": "Assign", "from": ["Triage"], "to": "Assigned"},
            {"name": "Work", "from": ["Assigned"], "to": "Working"},
            {"name": "Cancel", "to": "Cancelled"},
            {"name": "Fix", "from": ["Working"], "to": "Fixed", "requires": ["resolution"]},
            {"name": "Verify", "from": ["Fixed", "Cancelled"], "to": "Verified"},
        ],
    }
    mapping = with_workflow(SHIPPED["acme"], workflow, ["Verified"])
    playbook = Playbook.for_mapping(mapping)
    assert (playbook.working_status, playbook.resolved_status) == ("Working", "Verified")
    assert [s.name for s in playbook.path("Triage", "Working") or []] == ["Assign", "Work"]
    assert playbook.path("Working", "Verified") == [
        Step("Fix", "Fixed", {"resolution": "Fixed"}),
        Step("Verify", "Verified", {}),
    ]
    assert playbook.is_done("Cancelled") and not playbook.is_done("Working")


def test_without_an_allow_listed_done_status_the_nearest_done_one_is_used() -> None:
    workflow: dict[str, object] = Workflow.model_validate(
        {
            "initial": "Open",
            "statuses": {"Open": {"category": "todo"}, "Closed": {"category": "done", "terminal": True}},
            "transitions": [{"name": "Close", "from": ["Open"], "to": "Closed"}],
        }
    ).model_dump(by_alias=True)
    playbook = Playbook.for_mapping(with_workflow(SHIPPED["initech"], workflow, []))
    assert (playbook.working_status, playbook.resolved_status) == (None, "Closed")
    assert playbook.path("Open", "Closed") == [Step("Close", "Closed", {})]


def test_texts_vary_by_issue_but_not_by_run() -> None:
    playbook = Playbook.for_mapping(SHIPPED["acme"])
    assert playbook.acknowledgement("ACME-1") == playbook.acknowledgement("ACME-1")
    assert len({playbook.root_cause(f"ACME-{n}") for n in range(20)}) > 1
    assert playbook.root_cause("ACME-7").lower() in playbook.resolution_comment("ACME-7")
    assert playbook.eta(datetime(2026, 11, 22, 9, 41, tzinfo=UTC)) == "2026-11-22 11:00 UTC"
