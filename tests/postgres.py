"""A throwaway PostgreSQL server for the tests, started with the server's own initdb and pg_ctl.

Found on PATH or under /usr/lib/postgresql/*/bin. Without the binaries the PostgreSQL variants skip
with a visible reason, except when ``MIM_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes that a
failure. As root, the server runs as the ``postgres`` system user (initdb refuses root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def server_bin() -> Path | None:
    """The folder holding initdb and pg_ctl, newest version first."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]), reverse=True
    )
    return candidates[0].parent if candidates else None


def unavailable(reason: str) -> None:
    if os.environ.get("MIM_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required here (MIM_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(
        f"PostgreSQL store tests skipped: {reason}; install the postgresql server package to run them"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server() -> Iterator[str]:
    """Start a server on a free loopback port; yield its admin URL (``postgresql://postgres@…/postgres``)."""
    bindir = server_bin()
    if bindir is None:
        unavailable("the server binaries (initdb, pg_ctl) were not found")
        raise AssertionError("unreachable")
    root = Path(tempfile.mkdtemp(prefix="mim-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            unavailable("running as root without runuser to switch to the postgres user")
        shutil.chown(root, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        detail = getattr(exc, "stderr", b"") or b""
        unavailable(f"the server did not start ({exc}: {detail.decode(errors='replace')[-300:]})")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)
