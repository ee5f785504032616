"""The command line, run as admins run it: the installed console script in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

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
