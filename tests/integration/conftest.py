"""Fixtures of the end-to-end tests: a fresh world (sandbox, config, store) and a runtime on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connector.runtime.assembly import Runtime
from tests.integration.world import World


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """The shipped config and mappings against a sandbox of their own (modules may override this)."""
    created = World.create(tmp_path)
    yield created
    created.close()


@pytest.fixture
def runtime(world: World) -> Iterator[Runtime]:
    """The connector built from the world's config, closed after the test."""
    running = world.runtime()
    yield running
    running.close()
