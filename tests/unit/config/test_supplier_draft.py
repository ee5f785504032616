"""The drafted supplier mapping: the workflow taken from sampled transitions, and a file ``check`` accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.commands.cli import main
from connector.config import load_config
from connector.config.supplier_draft import (
    DraftTransition,
    SupplierDraft,
    render,
    workflow_of,
)
from connector.core.ports import JiraFieldInfo, JiraStatusInfo, WorkflowStep
from connector.core.vocabulary import CORE_INCIDENT_STATES

RESOLUTION = JiraFieldInfo("resolution", "Resolution", True, ("Done", "Won't Fix"))
STATUSES = (
    JiraStatusInfo("To Do", "todo"),
    JiraStatusInfo("Doing: now", "in_progress"),
    JiraStatusInfo("Won't Fix", "done"),
    JiraStatusInfo("yes", "done"),
    JiraStatusInfo("Parked", "in_progress"),
)
STEPS = {
    "To Do": [
        WorkflowStep("11", "Start", "Doing: now", False),
        WorkflowStep("21", "Reject", "Won't Fix", False, (RESOLUTION,)),
        WorkflowStep("31", "Park", "Parked", True),
    ],
    "Doing: now": [
        WorkflowStep("21", "Reject", "Won't Fix", False, (RESOLUTION,)),
        WorkflowStep("41", "Finish", "yes", False, (JiraFieldInfo("customfield_10001", "Effort", False),)),
        WorkflowStep("31", "Park", "Parked", True),
    ],
    "Won't Fix": [WorkflowStep("51", "Reopen", "To Do", False)],
    "yes": [],
}


def test_transitions_merge_by_name_and_target_and_global_ones_have_no_from() -> None:
    workflow = workflow_of(STATUSES, STEPS, "To Do", "ACME-1")
    assert workflow.transitions == (
        DraftTransition("Start", ("To Do",), "Doing: now"),
        DraftTransition("Reject", ("To Do", "Doing: now"), "Won't Fix", (RESOLUTION,)),
        DraftTransition("Park", (), "Parked"),
        DraftTransition("Finish", ("Doing: now",), "yes"),
        DraftTransition("Reopen", ("Won't Fix",), "To Do"),
    )
    assert workflow.terminal == {"yes", "Won't Fix"}, "done statuses left only by reopening the work"
    assert workflow.unseen == ("Parked",)
    assert (workflow.initial, workflow.initial_from) == ("To Do", "ACME-1")


def test_a_done_status_is_terminal_unless_it_leads_on_to_another_done_status() -> None:
    statuses = (
        JiraStatusInfo("Open", "todo"),
        JiraStatusInfo("Resolved", "done"),
        JiraStatusInfo("Closed", "done"),
        JiraStatusInfo("Rejected", "done"),
    )
    steps = {
        "Open": [
            WorkflowStep("11", "Resolve", "Resolved", False),
            WorkflowStep("21", "Reject", "Rejected", False),
        ],
        "Resolved": [
            WorkflowStep("31", "Close", "Closed", False),
            WorkflowStep("41", "Reopen", "Open", False),
        ],
        "Closed": [],
    }
    workflow = workflow_of(statuses, steps, "Open", None)
    assert workflow.terminal == {"Closed"}, "Rejected is unseen: nothing known leaves it"
    workflow = workflow_of(
        statuses, {**steps, "Rejected": [WorkflowStep("51", "Reopen", "Open", False)]}, "Open", None
    )
    assert workflow.terminal == {"Closed", "Rejected"}


def test_without_a_known_initial_status_the_first_to_do_one_is_assumed() -> None:
    statuses = (JiraStatusInfo("Triage", "in_progress"), JiraStatusInfo("Backlog", "todo"))
    workflow = workflow_of(statuses, {}, None, None)
    assert (workflow.initial, workflow.initial_from) == ("Backlog", None)
    assert workflow.unseen == ("Triage", "Backlog") and workflow.transitions == ()


def _draft(**overrides: object) -> SupplierDraft:
    values: dict[str, object] = {
        "supplier": "acme",
        "display_name": "ACME: {Hosting} #1",
        "url": "https://acme.atlassian.net",
        "deployment": "cloud",
        "project": "ACME",
        "issue_type": "Incident",
        "other_issue_types": ("Task",),
        "workflow": workflow_of(STATUSES, STEPS, "To Do", "ACME-1"),
        "create_fields": (
            JiraFieldInfo("summary", "Summary", True),
            JiraFieldInfo("priority", "Priority", False, ("P1", "P2", "P3", "P4", "P5"), True),
            JiraFieldInfo("customfield_10090", "Severity {level}", True, ("Sev 1", "Sev 2")),
            JiraFieldInfo("components", "Components", True, ("Storage", "Network")),
            JiraFieldInfo("reporter", "Reporter", True, (), True),
        ),
        "incident_states": dict(CORE_INCIDENT_STATES),
    }
    return SupplierDraft(**(values | overrides))  # type: ignore[arg-type]


def test_the_draft_loads_with_one_warning_per_placeholder(config_tree: Path) -> None:
    (config_tree / "mappings" / "suppliers" / "acme.yaml").write_text(render(_draft()))
    loaded = load_config(Path("config/connector.yaml"))
    assert [str(w) for w in loaded.warnings if w.file.endswith("acme.yaml")] == [
        "mappings/suppliers/acme.yaml:42:13: warning: routing.match.equals: placeholder left by "
        "`supplier init`: replace it; until it is, acme gets no incidents",
        "mappings/suppliers/acme.yaml:57:16: warning: outbound.components[0]: placeholder left by "
        "`supplier init`: replace it",
        "mappings/suppliers/acme.yaml:59:24: warning: outbound.fields.customfield_10090: placeholder "
        "left by `supplier init`: replace it",
    ]
    mapping = loaded.suppliers["acme"]
    assert mapping.display_name == "ACME: {Hosting} #1"
    workflow = mapping.jira.workflow
    assert [(name, spec.category, spec.terminal) for name, spec in workflow.statuses.items()] == [
        ("To Do", "todo", False),
        ("Doing: now", "in_progress", False),
        ("Won't Fix", "done", True),
        ("yes", "done", True),
        ("Parked", "in_progress", False),
    ]
    assert [(t.name, t.from_, t.to, t.requires) for t in workflow.transitions] == [
        ("Start", ("To Do",), "Doing: now", ()),
        ("Reject", ("To Do", "Doing: now"), "Won't Fix", ("resolution",)),
        ("Park", (), "Parked", ()),
        ("Finish", ("Doing: now",), "yes", ()),
        ("Reopen", ("Won't Fix",), "To Do", ()),
    ]
    assert mapping.outbound.fields == {"customfield_10090": "TODO: Severity (level) (one of Sev 1, Sev 2)"}
    assert mapping.outbound.status_map == {} and mapping.inbound.status_map == {}
    assert mapping.outbound.priority_map == {}


def test_check_passes_the_draft_but_strict_check_does_not(
    config_tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (config_tree / "mappings" / "suppliers" / "acme.yaml").write_text(render(_draft(create_fields=())))
    assert main(["check", "-c", "config/connector.yaml"]) == 0
    assert main(["check", "-c", "config/connector.yaml", "--strict"]) == 2
    out = capsys.readouterr().out
    assert "routing.match.equals: placeholder left by `supplier init`" in out


def test_the_site_entry_to_add_is_shown_commented_in_the_header() -> None:
    entry = "acme:\n  jira:\n    url: https://acme.atlassian.net\n    deployment: cloud"
    text = render(_draft(site_entry=entry))
    assert (
        "# config/connector.yaml does not know this supplier yet; add this under `suppliers:`\n#   acme:\n"
        in text
    )
    assert "#       url: https://acme.atlassian.net\n" in text


def test_a_draft_starts_with_the_shipped_linear_redaction_patterns() -> None:
    import yaml

    from connector.config.supplier_draft import RECOMMENDED_PATTERNS

    drafted = yaml.safe_load(RECOMMENDED_PATTERNS)
    shipped = yaml.safe_load((Path(__file__).parents[3] / "mappings/suppliers/acme.yaml").read_text())
    patterns = shipped["outbound"]["redaction"]["patterns"]
    assert drafted == [p for p in patterns if p["name"] in {"email", "card-number", "phone"}]
