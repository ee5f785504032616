"""``mim-connector supplier init`` against the sandbox's sites: a draft ``check`` accepts, and its errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest
import yaml

from connector.config.supplier_file import SupplierMapping, TransitionSpec, Workflow
from connector.config.yamlsource import read_yaml
from tests.conftest import REPO
from tests.integration.world import World, free_port

SCRIPT = str(Path(sys.executable).parent / "mim-connector")
SITES = {"acme": ("ACME", "Incident"), "globex": ("NET", "Fault"), "initech": ("PAY", "Incident")}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, timeout=120, env=os.environ | (env or {})
    )


def shipped(name: str) -> SupplierMapping:
    path = REPO / "mappings" / "suppliers" / f"{name}.yaml"
    return SupplierMapping.model_validate(yaml.safe_load(path.read_text()))


def populate(world: World, name: str) -> None:
    """As the supplier's engineer: one issue in every status of the shipped workflow, by its transitions."""
    project, issue_type = SITES[name]
    workflow = shipped(name).jira.workflow
    agent = world.agent(name)
    for target in workflow.statuses:
        path = _path(workflow, target)
        issue = agent.create_issue(
            fields={"project": {"key": project}, "issuetype": {"name": issue_type}, "summary": f"to {target}"}
        )
        for transition in path:
            ids = {t["name"]: t["id"] for t in agent.transitions(issue)}
            fields = {"resolution": {"name": "Done"}} if "resolution" in transition.requires else None
            agent.transition_issue(issue, ids[transition.name], fields=fields)


def _path(workflow: Workflow, target: str) -> list[TransitionSpec]:
    previous: dict[str, tuple[str, TransitionSpec] | None] = {workflow.initial: None}
    queue = deque([workflow.initial])
    while queue:
        status = queue.popleft()
        for transition in workflow.transitions:
            if (not transition.from_ or status in transition.from_) and transition.to not in previous:
                previous[transition.to] = (status, transition)
                queue.append(transition.to)
    steps = []
    while (link := previous[target]) is not None:
        target, transition = link
        steps.append(transition)
    return steps[::-1]


Shape = tuple[str, dict[str, tuple[str, bool]], set[tuple[str, frozenset[str], str, tuple[str, ...]]]]


def _shape(workflow: Workflow) -> Shape:
    """A workflow with transitions as a set (the draft lists them in the order it met them)."""
    statuses = {name: (str(spec.category), spec.terminal) for name, spec in workflow.statuses.items()}
    transitions = {(t.name, frozenset(t.from_), t.to, t.requires) for t in workflow.transitions}
    return workflow.initial, statuses, transitions


@pytest.mark.parametrize("name", ["acme", "globex", "initech"])
def test_a_draft_rebuilds_each_sites_shipped_workflow_and_check_accepts_it(world: World, name: str) -> None:
    populate(world, name)
    target = world.root / "mappings" / "suppliers" / f"{name}.yaml"
    target.unlink()
    project, issue_type = SITES[name]
    marks = world.marks()
    result = cli(
        "supplier", "init", name, "--project", project, "--issue-type", issue_type, "-c", f"{world.config}"
    )
    assert result.returncode == 0, result.stderr
    statuses = len(shipped(name).jira.workflow.statuses)
    assert result.stdout.splitlines()[0].endswith(
        f"suppliers/{name}.yaml: {project} {issue_type}, {statuses} statuses, "
        f"{len(shipped(name).jira.workflow.transitions)} transitions"
    )
    assert result.stdout.splitlines()[1].startswith("next: fill in its TODOs")
    drafted = SupplierMapping.model_validate(read_yaml(target).data).jira.workflow
    assert _shape(drafted) == _shape(shipped(name).jira.workflow)
    assert world.writes_since(marks) == [], "supplier init only reads"

    checked = cli("check", "-c", str(world.config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert [line.split(": ", 1)[1] for line in checked.stdout.splitlines() if ": warning: " in line] == [
        f"warning: routing.match.equals: placeholder left by `supplier init`: replace it; "
        f"until it is, {name} gets no incidents"
    ]
    assert checked.stdout.splitlines()[-1].startswith("OK: ")
    assert cli("check", "--strict", "-c", str(world.config)).returncode == 2


def test_an_empty_project_gives_its_statuses_and_leaves_the_transitions_to_the_admin(world: World) -> None:
    (world.root / "mappings" / "suppliers" / "initech.yaml").unlink()
    result = cli("supplier", "init", "initech", "--project", "PAY", "-c", str(world.config))
    assert result.returncode == 0, result.stderr
    assert "3 statuses, 0 transitions; 3 without an issue, their transitions unknown" in result.stdout
    text = (world.root / "mappings" / "suppliers" / "initech.yaml").read_text()
    assert "initial: To Do                    # TODO check: no issue told" in text
    assert "transitions: []" in text and "# TODO: no Incident is in 'To Do', 'In Progress' or 'Done'" in text
    assert cli("check", "-c", str(world.config)).returncode == 0


def by_url(
    url: str, token: str, *more: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``supplier init newco`` for a Cloud site given on the command line (newco is not configured)."""
    args = ("supplier", "init", "newco", "--project", "ACME", "--jira", url, "--deployment", "cloud")
    return cli(*args, "--user", "mim-connector@example.com", "--token", token, "-o", "-", *more, env=env)


def test_a_site_not_configured_yet_by_url_and_token_reference_to_stdout(world: World) -> None:
    token = world.environ["MIM_DEMO_ACME_TOKEN"]
    url = world.sandbox.site_url("acme")
    result = by_url(url, "${NEWCO_TOKEN}", "-c", str(world.config), env={"NEWCO_TOKEN": token})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# yaml-language-server: $schema=../schema/supplier.schema.json\n")
    header = "# config/connector.yaml does not know this supplier yet; add this under `suppliers:`\n"
    assert header + "#   newco:\n" in result.stdout
    assert "#         token: ${NEWCO_TOKEN}\n" in result.stdout and token not in result.stdout + result.stderr
    assert result.stderr.startswith("wrote to stdout: ACME Incident, 5 statuses")
    assert "next: add the site entry from its header to " in result.stderr
    assert not (world.root / "mappings" / "suppliers" / "newco.yaml").exists()


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ") and text in result.stderr, result.stderr


def test_errors_are_one_line_with_an_exit_code(world: World) -> None:
    config = str(world.config)
    acme = world.root / "mappings" / "suppliers" / "acme.yaml"
    before = acme.read_text()
    marks = world.marks()
    _one_line_error(
        cli("supplier", "init", "acme", "--project", "ACME", "-c", config),
        2,
        "mappings/suppliers/acme.yaml exists; --force replaces it",
    )
    assert world.requests_since(marks)[1] == [], "refused before asking Jira anything"
    _one_line_error(
        cli("supplier", "init", "acme", "--project", "NOPE", "--force", "-c", config),
        1,
        f"no project NOPE on {world.sandbox.site_url('acme')} (or the account may not browse it)",
    )
    assert acme.read_text() == before, "nothing written on failure"
    _one_line_error(
        cli("supplier", "init", "acme", "--project", "ACME", "--issue-type", "Bug", "--force", "-c", config),
        2,
        "project ACME has no issue type 'Bug'; choose one with --issue-type: Incident, Task",
    )

    url = world.sandbox.site_url("acme")
    wrong = by_url(url, "${NEWCO_TOKEN}", env={"NEWCO_TOKEN": "not-the-token"})
    _one_line_error(wrong, 1, f"credentials rejected by {url}: jira:newco: GET myself -> 401")
    assert "not-the-token" not in wrong.stderr
    nowhere = f"http://127.0.0.1:{free_port()}/acme"
    _one_line_error(
        by_url(nowhere, "${NEWCO_TOKEN}", env={"NEWCO_TOKEN": "x"}),
        1,
        f"cannot reach {nowhere}: jira:newco: GET serverInfo: could not connect",
    )
    inline = by_url(url, "s3cret-inline-token")
    _one_line_error(
        inline, 2, "--token: secrets must be given by reference (${ENV_VAR} or file:PATH), not inline"
    )
    assert "s3cret-inline-token" not in inline.stderr
    _one_line_error(
        by_url(url, "${NEWCO_UNSET_TOKEN}"),
        2,
        "newco: credentials: environment variable NEWCO_UNSET_TOKEN is not set",
    )
    _one_line_error(
        cli("supplier", "init", "newco", "--project", "ACME", "-c", config),
        2,
        "newco has no site in ",
    )


def test_the_running_sandboxs_credentials_are_borrowed_as_by_every_live_command(world: World) -> None:
    embedded = world.config.with_name("embedded.yaml")
    embedded.write_text(world.config.read_text().replace("  embedded: false", "  embedded: true"))
    bare = {name: value for name, value in os.environ.items() if name not in world.environ}
    args = (SCRIPT, "supplier", "init", "acme", "--project", "ACME", "-o", "-", "-c", str(embedded))
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, env=bare)
    assert result.returncode == 0, result.stderr
    assert (
        "\n  project: ACME\n" in result.stdout
        and "Waiting for Customer: {category: in_progress}" in result.stdout
    )
    plain = subprocess.run(
        [*args[:-1], str(world.config)], capture_output=True, text=True, timeout=120, env=bare
    )
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == result.stdout
