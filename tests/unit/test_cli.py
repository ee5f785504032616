"""The command line, run as admins run it: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = Path(sys.executable).parent / "mim-connector"
LOCATED = re.compile(r"^[\w./-]+\.yaml:\d+:\d+: \S")


def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_the_subcommands() -> None:
    result = run("--help")
    assert result.returncode == 0
    listed = re.findall(r"^    (\w+)\s", result.stdout, re.MULTILINE)
    assert listed == ["check", "run", "sync", "doctor", "state", "sandbox", "rules", "supplier", "schema"]


def test_module_entry_point_matches() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "connector", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("mim-connector ")


def test_check_shipped_files_exits_zero_with_one_summary_line() -> None:
    result = run("check", "-c", "config/demo.yaml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "OK: 5 files valid - 5 rules (4 enabled), 3 suppliers (acme, globex, initech)"
    ]
    assert run("check").returncode == 0


def test_check_strict_fails_on_unset_credentials() -> None:
    result = run("check", "--strict", env={"MIM_SN_PASSWORD": ""})
    assert result.returncode == 2
    assert "environment variable MIM_SN_PASSWORD is not set" in result.stdout


def test_check_broken_copy_exits_two_with_located_messages(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "config", tree / "config")
    shutil.copytree(REPO / "mappings", tree / "mappings")
    acme = tree / "mappings" / "suppliers" / "acme.yaml"
    acme.write_text(acme.read_text().replace("project: ACME", "projekt: ACME"))
    globex = tree / "mappings" / "suppliers" / "globex.yaml"
    globex.write_text(globex.read_text().replace("Canceled: Closed", "Canceled: Closd"))
    rules = tree / "mappings" / "rules.yaml"
    rules.write_text(rules.read_text().replace("max_proposals_per_hour: 6", "max_proposals_per_hour: [6"))
    result = run("check", "-c", "config/connector.yaml", cwd=tree)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[-1] == "4 errors, 4 warnings: configuration is invalid"
    errors = [line for line in lines[:-1] if "warning:" not in line]
    assert all(LOCATED.match(line) for line in errors), errors
    assert any(
        "acme.yaml" in line and "jira.projekt: unknown key (did you mean 'project'?)" in line
        for line in errors
    )
    assert any("'Closd' is not a status of globex" in line for line in errors)
    assert any(line.startswith("mappings/rules.yaml:") and "YAML syntax error" in line for line in errors)
    assert "Traceback" not in result.stdout + result.stderr


def test_check_never_prints_an_inline_secret(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "config", tree / "config")
    shutil.copytree(REPO / "mappings", tree / "mappings")
    config = tree / "config" / "connector.yaml"
    config.write_text(config.read_text().replace("${MIM_SN_PASSWORD}", "Sup3r-Secret-Canary"))
    result = run("check", cwd=tree, env={"MIM_ACME_JIRA_TOKEN": "env-canary-777"})
    assert result.returncode == 2
    assert "Sup3r-Secret-Canary" not in result.stdout + result.stderr
    assert "env-canary-777" not in result.stdout + result.stderr


def test_schema_check_passes_on_the_committed_schemas() -> None:
    result = run("schema", "--check", "mappings/schema")
    assert result.returncode == 0, result.stdout


def test_usage_error_exits_two() -> None:
    assert run("no-such-command").returncode == 2


# --- live commands whose credentials cannot be resolved ------------------------------------------------

LIVE_COMMANDS = (
    ("sync", "--once"),
    ("run",),
    ("rules", "test", "INC0010001"),
    ("rules", "backtest", "--since", "1d"),
)


def production_tree(tmp_path: Path, log_format: str = "json") -> tuple[Path, dict[str, str]]:
    """The production template with every credential but ServiceNow's at hand; its systems are never reached."""
    tree = tmp_path / "tree"
    shutil.copytree(REPO / "config", tree / "config")
    shutil.copytree(REPO / "mappings", tree / "mappings")
    (tree / "var").mkdir()
    pat = tree / "globex.pat"
    pat.write_text("globex-pat-value\n")
    config = tree / "config" / "connector.yaml"
    text = config.read_text().replace("file:/run/secrets/globex-jira-pat", f"file:{pat}")
    config.write_text(text.replace("format: json", f"format: {log_format}"))
    env = {
        "MIM_SN_PASSWORD": "",
        "MIM_ACME_JIRA_TOKEN": "acme-token-1",
        "MIM_INITECH_JIRA_TOKEN": "initech-2",
    }
    return tree, env


@pytest.mark.parametrize("command", LIVE_COMMANDS, ids=lambda c: " ".join(c))
def test_a_live_command_names_an_unset_credential_in_one_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    tree, env = production_tree(tmp_path, "text")
    result = run(*command, "-c", "config/connector.yaml", cwd=tree, env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == ["error: ServiceNow: ${MIM_SN_PASSWORD} is not set"]


@pytest.mark.parametrize("command", LIVE_COMMANDS, ids=lambda c: " ".join(c))
def test_with_json_logging_the_credential_error_is_a_json_line(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    tree, env = production_tree(tmp_path, "json")
    result = run(*command, "-c", "config/connector.yaml", cwd=tree, env=env)
    assert result.returncode == 2
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["level"], line["message"]) for line in lines] == [
        ("ERROR", "ServiceNow: ${MIM_SN_PASSWORD} is not set")
    ]


def test_every_unresolvable_credential_is_named_at_once_and_no_value_printed(tmp_path: Path) -> None:
    tree, _env = production_tree(tmp_path, "text")
    (tree / "globex.pat").unlink()
    env = {"MIM_SN_PASSWORD": "", "MIM_ACME_JIRA_TOKEN": "", "MIM_INITECH_JIRA_TOKEN": "initech-canary-9"}
    result = run("run", "-c", "config/connector.yaml", cwd=tree, env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: ServiceNow: ${MIM_SN_PASSWORD} is not set",
        "error: acme: ${MIM_ACME_JIRA_TOKEN} is not set",
        f"error: globex: cannot read secret file {tree / 'globex.pat'}: No such file or directory",
    ]


def test_doctor_reports_an_unset_credential_among_its_checks(tmp_path: Path) -> None:
    tree, env = production_tree(tmp_path, "json")
    config = tree / "config" / "connector.yaml"
    closed = free_port()
    text = config.read_text()
    for url in (
        "https://acme-support.atlassian.net",
        "https://jira.globex.example/jira",
        "https://initech.atlassian.net",
    ):
        text = text.replace(url, f"http://127.0.0.1:{closed}/{url.split('//')[1].split('.')[0]}")
    config.write_text(text)
    result = run("doctor", "-c", "config/connector.yaml", cwd=tree, env=env)
    assert (result.returncode, result.stderr) == (1, "")
    refused = f"could not connect: 127.0.0.1:{closed} refused the connection"
    assert result.stdout.splitlines() == [
        "FAIL ServiceNow: ${MIM_SN_PASSWORD} is not set",
        f"FAIL acme http://127.0.0.1:{closed}/acme-support: refused: jira:acme: GET serverInfo: {refused}",
        f"FAIL globex http://127.0.0.1:{closed}/jira: refused: jira:globex: GET serverInfo: {refused}",
        f"FAIL initech http://127.0.0.1:{closed}/initech: refused: jira:initech: GET serverInfo: {refused}",
        "some checks failed",
    ]


def test_a_sandbox_whose_port_is_taken_ends_in_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("sandbox", "--servicenow-port", str(port), "--jira-port", str(free_port()))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: cannot start the sandbox on 127.0.0.1: Address already in use"
    ]


# --- state: -c anywhere, totals in words -----------------------------------------------------------------


def test_state_takes_the_config_before_or_after_its_sub_command(tmp_path: Path) -> None:
    tree, env = production_tree(tmp_path)
    before = run("state", "-c", "config/connector.yaml", "show", cwd=tree, env=env)
    after = run("state", "show", "-c", "config/connector.yaml", cwd=tree, env=env)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert (
        before.stdout
        == after.stdout
        == "intents: none\ndead letters queued: 0\ninstances: none\nqueue: empty\n"
    )
    shown = json.loads(
        run("state", "show", "--json", "-c", "config/connector.yaml", cwd=tree, env=env).stdout
    )
    assert {key: shown[key] for key in ("watermarks", "links", "intents", "dead_letters_queued")} == {
        "watermarks": {},
        "links": {},
        "intents": {},
        "dead_letters_queued": 0,
    }
    assert shown["instances"] == [] and {lane["pending"] for lane in shown["queue"].values()} == {0}
    for args in (("dlq", "list"), ("dlq", "-c", "config/connector.yaml", "list")):
        listed = run(
            "state", *args, *(() if "-c" in args else ("-c", "config/connector.yaml")), cwd=tree, env=env
        )
        assert (listed.returncode, listed.stdout) == (0, "the dead-letter queue is empty\n"), listed.stderr
    for action in ("retry", "drop"):
        acted = run("state", "dlq", action, "7", "-c", "config/connector.yaml", cwd=tree, env=env)
        assert (acted.returncode, acted.stdout) == (1, "no queued dead letter #7\n")


def test_state_show_of_an_unknown_incident_says_so_in_one_line(tmp_path: Path) -> None:
    tree, env = production_tree(tmp_path)
    result = run("state", "show", "INC0019999", "-c", "config/connector.yaml", cwd=tree, env=env)
    assert (result.returncode, result.stdout) == (1, "")
    assert (
        result.stderr == "error: INC0019999 is not in the state store (this connector never processed it)\n"
    )


def test_state_names_an_unset_store_credential_in_one_line(tmp_path: Path) -> None:
    tree, env = production_tree(tmp_path)
    config = tree / "config" / "connector.yaml"
    config.write_text(
        config.read_text().replace(
            "url: sqlite:///../var/mim-connector.db",
            "url: postgresql://mim:${MIM_PG_PASSWORD}@db.example.com/mim",
        )
    )
    result = run("state", "show", "-c", "config/connector.yaml", cwd=tree, env={**env, "MIM_PG_PASSWORD": ""})
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == ["error: store: ${MIM_PG_PASSWORD} is not set"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
