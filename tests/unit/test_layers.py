"""The layer contracts of docs/architecture.md, checked on every test run.

The contracts themselves are import-linter's, in ``pyproject.toml`` (``[tool.importlinter]``): a
broken one is reported as ``module -> imported module (l.N)``, every violation, not only the first.
Here they are run, kept honest (every package is named, so a new one cannot slip past an allow
list), and two promises are checked in a fresh interpreter: the pure planner and the daemon load
no HTTP client and no simulator when imported.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from importlinter.api import read_configuration

import connector
import connector.rules

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"

HTTP_CLIENTS = ("requests", "urllib3", "pysnow", "jira", "oauthlib", "requests_oauthlib")
"""Third-party HTTP clients (``jira`` is python-jira, not ``connector.jira``)."""
SIMULATORS = ("connector.sandbox",)


def contracts() -> dict[str, dict[str, Any]]:
    """The contracts of ``pyproject.toml`` by id."""
    options = read_configuration(str(PYPROJECT))["contracts_options"]
    return {contract["id"]: contract for contract in options}


def packages() -> set[str]:
    """Every subpackage of ``connector`` (``connector.core``, ``connector.sync``...)."""
    return {f"connector.{info.name}" for info in pkgutil.iter_modules(connector.__path__) if info.ispkg}


def test_the_layer_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(PYPROJECT), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = result.stdout[result.stdout.find("Contracts\n") :]
    assert result.returncode == 0, f"a layer contract is broken:\n{report}\n{result.stderr}"
    assert "0 broken" in report


@pytest.mark.parametrize(
    ("contract", "may_import"),
    [
        ("core", set()),
        ("rules", {"connector.config"}),
        ("mirror", {"connector.config", "connector.rules"}),
    ],
)
def test_a_layer_that_imports_only_some_forbids_every_other_package(
    contract: str, may_import: set[str]
) -> None:
    """The "imports only X" contracts are forbidden-lists: each must name every other package."""
    options = contracts()[contract]
    (source,) = options["source_modules"]
    forbidden = set(options["forbidden_modules"])
    expected = packages() - may_import - {source, "connector.core"}
    if contract == "mirror":
        # Of rules, only the condition evaluator; every other module of rules is named.
        rules = {f"connector.rules.{info.name}" for info in pkgutil.iter_modules(connector.rules.__path__)}
        expected |= rules - {"connector.rules.conditions"}
    assert expected - forbidden == set(), f"contract {contract!r} does not forbid these"


def test_the_two_layer_stacks_place_every_package_but_the_sandbox() -> None:
    """The sandbox is outside the stacks: it may import anything, and only the command line imports it."""
    placed: set[str] = set()
    for contract in ("decisions", "adapters"):
        for layer in contracts()[contract]["layers"]:
            placed |= {name.strip() for name in layer.replace(":", "|").split("|")}
    assert placed == packages() - {"connector.sandbox"}


def loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after ``import module``."""
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return set(result.stdout.split())


def among(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    """The members of ``modules`` that are ``roots`` or lie under one of them."""
    return sorted(m for m in modules if any(m == root or m.startswith(root + ".") for root in roots))


@pytest.mark.parametrize(
    ("module", "not_loaded"),
    [
        (
            "connector.mirror.planner",
            (*HTTP_CLIENTS, *SIMULATORS, "sqlalchemy", "tenacity", "prometheus_client"),
        ),
        ("connector.runtime.daemon", (*HTTP_CLIENTS, *SIMULATORS)),
    ],
)
def test_importing_loads_no_http_client_and_no_simulator(module: str, not_loaded: tuple[str, ...]) -> None:
    assert among(loaded_by(module), not_loaded) == []


def test_the_import_probe_sees_a_client_when_one_is_loaded() -> None:
    """The probe above is not blind: the Jira client module does load python-jira and requests."""
    found = among(loaded_by("connector.jira.client"), HTTP_CLIENTS)
    assert "jira" in found and "requests" in found
