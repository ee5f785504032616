"""Shared fixtures: a copy of a valid configuration tree to break in tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent


@pytest.fixture
def config_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A writable copy of ``tests/fixtures/config_base``; the working directory is its root."""
    root = tmp_path / "tree"
    shutil.copytree(FIXTURES / "config_base", root)
    monkeypatch.chdir(root)
    for name in ("TEST_SN_PASSWORD", "TEST_ACME_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return root
