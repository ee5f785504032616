"""What the connector needs from the machine, and what it does without it (docs/dependencies.md).

A system without libmagic (pysnow's python-magic binds it, for attachments we never send) still
imports the ServiceNow adapter with warnings as errors; a PostgreSQL store URL without the
``postgres`` extra ends in one line naming the extra, not in a driver traceback.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from connector.core.errors import StoreError
from connector.store import Store
from tests.conftest import REPO

WITHOUT_LIBMAGIC = """
import ctypes, ctypes.util

# The dynamic loader finds no libmagic: python-magic's loader tries find_library, then the soname.
found, load = ctypes.util.find_library, ctypes.CDLL
ctypes.util.find_library = lambda name: None if name == "magic" else found(name)

class NoLibmagic(load):
    def __init__(self, name, *args, **kwargs):
        if name is not None and "magic" in str(name):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        super().__init__(name, *args, **kwargs)

ctypes.CDLL = NoLibmagic

import connector.servicenow.adapter
import pysnow.attachment

print("libmagic loaded:", pysnow.attachment.HAS_MAGIC)
"""


def test_the_servicenow_adapter_imports_without_libmagic_even_with_warnings_as_errors() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", WITHOUT_LIBMAGIC],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["libmagic loaded: False"], "python-magic really failed to load"
    assert result.stderr == "", "no warning printed on start"


def test_a_postgresql_store_without_the_driver_names_the_extra_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # As if psycopg were not installed: importing it fails as a missing module does.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError) as caught:
        Store.open("postgresql://mim:Pg-Secret-77@127.0.0.1:5432/mim", base_dir=tmp_path)
    assert str(caught.value) == (
        "state store postgresql://mim:***@127.0.0.1:5432/mim needs the PostgreSQL driver psycopg, "
        "which is not installed: pip install 'mim-connector[postgres]'"
    )
