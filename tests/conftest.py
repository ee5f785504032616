"""Shared fixtures (a copy of a valid configuration tree to break in tests) and the test tiers.

Tiers (docs/testing.md): a test is ``slow`` when it starts a simulator, a daemon, a subprocess or a
PostgreSQL server; ``make test-fast`` runs everything else (``-m "not slow"``). The markers are set
here, by folder, file and fixture, never by hand on a test: a new test is fast unless it lives where
the slow ones live (or in :data:`SLOW_FILES`) or asks for a PostgreSQL store.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent
TESTS = Path(__file__).parent

SLOW_FOLDERS = {
    "adapters": "the real clients against a simulator served over HTTP",
    "contract": "the real clients against a simulator served over HTTP",
    "integration": "the runtime or the command line against a sandbox",
    "scenarios": "the daemon against the sandbox under faults",
}
"""Folders under tests/ whose every test is slow, with the reason."""
SLOW_FILES = {
    "unit/test_cli.py": "runs the installed command in a subprocess",
    "unit/sandbox/test_core.py": "serves a simulator over HTTP for each test",
    "unit/sandbox/test_push.py": "serves a receiver over HTTP for each test",
}
"""Files outside :data:`SLOW_FOLDERS` whose every test is slow, with the reason."""
FAST_FILES = {
    "adapters/test_client_errors.py": "responses answers in place of a server",
}
"""Files inside :data:`SLOW_FOLDERS` that start nothing, with the reason."""
GATES = ("scenarios/test_gate.py", "scenarios/test_gate_instances.py")
"""The gate, and its two-instance variant (run by ``make soak``: it skips unless ``MIM_GATE_INSTANCES=1``)."""
POSTGRES_FIXTURE = "postgres_server"
"""The session fixture that starts PostgreSQL; ``store_url[postgresql]`` asks for it when it runs."""


@pytest.fixture
def config_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of ``tests/fixtures/config_base``; the working directory is its root."""
    root = tmp_path / "tree"
    shutil.copytree(FIXTURES / "config_base", root)
    monkeypatch.chdir(root)
    for name in ("TEST_SN_PASSWORD", "TEST_ACME_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return root


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Under exactly ``-m "not slow"`` (make test-fast) the all-slow folders are not even imported.

    Their tests would all be deselected anyway; importing them costs seconds of the fast tier.
    """
    if config.getoption("markexpr") != "not slow":
        return None
    where = _where(collection_path)
    if where is None or where.split("/", 1)[0] not in SLOW_FOLDERS:
        return None
    holds_fast = any(fast == where or fast.startswith(f"{where}/") for fast in FAST_FILES)
    return None if holds_fast else True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each collected test ``slow``, ``postgres`` and ``gate`` as its place and fixtures say."""
    stale = [name for name in (*SLOW_FILES, *FAST_FILES) if not (TESTS / name).is_file()]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py names test files that do not exist: {stale}")
    for item in items:
        where = _where(item.path)
        if where is None:
            continue
        in_slow_folder = where.split("/", 1)[0] in SLOW_FOLDERS and where not in FAST_FILES
        if in_slow_folder or where in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
        if where in GATES:
            item.add_marker(pytest.mark.gate)
        if _needs_postgres(item):
            item.add_marker(pytest.mark.postgres)
            item.add_marker(pytest.mark.slow)


def _where(path: Path) -> str | None:
    """``path`` relative to tests/ (``unit/test_cli.py``); ``None`` outside it."""
    try:
        return path.relative_to(TESTS).as_posix()
    except ValueError:
        return None


def _needs_postgres(item: pytest.Item) -> bool:
    """The test uses the PostgreSQL server directly, or a store parametrised onto it."""
    if POSTGRES_FIXTURE in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and callspec.params.get("store_url") == "postgresql"
