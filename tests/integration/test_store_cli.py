"""The state store as operators meet it from the command line: one daemon per store, and a store that
cannot be used ends a command with one line and exit code 1, leaving no file behind a failed start.

The store failures need no sandbox: they end the command before any site is called.
"""

from __future__ import annotations

import errno
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connector.store import Store
from connector.store import tables as store_schema
from connector.store.leases import Holder, Lease
from connector.store.tables import leases
from tests.integration.world import World, free_port
from tests.postgres import running_server

SCRIPT = str(Path(sys.executable).parent / "mim-connector")
RESTORE = "restore it from a backup, or point store.url at a new file"
WRITABLE = "give the user running the connector write access to the file and its folder"
RUN_ADVICE = (
    "one store takes one daemon (a second would duplicate its writes): stop that one first, "
    "or give this configuration its own store.url"
)
SYNC_ADVICE = (
    "sync --once beside it would duplicate its writes: let the daemon do the work, stop it first, "
    "or use --dry-run"
)
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
QUICK_LEASE = "  url: sqlite:///../state.db\n  lease:\n    ttl: 3s\n    renew_every: 500ms\n"


def command(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``mim-connector ARGS -c CONFIG`` (``state`` takes ``-c`` before its sub-command)."""
    argv = (
        [SCRIPT, "state", "-c", str(config), *args[1:]]
        if args[0] == "state"
        else [SCRIPT, *args, "-c", str(config)]
    )
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=os.environ.copy())


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- one daemon per store ------------------------------------------------------------------------------


@dataclass
class Running:
    """``mim-connector run`` as a child process, its stderr in a file (a pipe nobody reads fills up)."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.log.read_text()


@contextmanager
def daemon_on(world: World) -> Iterator[Running]:
    """Start a daemon; whatever happens, it is gone afterwards."""
    log = world.root / f"daemon-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [SCRIPT, "run", "-c", str(world.config)],
            stdout=subprocess.DEVNULL,
            stderr=sink,
            env=os.environ.copy(),
        )
    try:
        yield Running(process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def lease_of(world: World) -> Lease | None:
    store = Store.open(world.loaded.connector.store.url, world.loaded.base_dir)
    try:
        return store.leases.get()
    finally:
        store.close()


def wait_for_lease(world: World, daemon: Running, epoch: int) -> Lease:
    deadline = time.monotonic() + 60
    while (lease := lease_of(world)) is None or lease.epoch != epoch:
        assert daemon.process.poll() is None, daemon.stderr()
        assert time.monotonic() < deadline, f"no lease of epoch {epoch}: {lease}"
        time.sleep(0.1)
    assert lease.holder.pid == daemon.pid
    return lease


def released(world: World) -> Lease:
    """The lease a clean stop ended: it no longer binds anyone (not merely abandoned to its expiry)."""
    store = Store.open(world.loaded.connector.store.url, world.loaded.base_dir)
    try:
        lease = store.leases.get()
        assert lease is not None and lease.expires_at <= store.leases.now(), lease
        return lease
    finally:
        store.close()


def stop(daemon: Running) -> None:
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=60) == 0, daemon.stderr()


def kill(daemon: Running) -> None:
    daemon.process.kill()
    daemon.process.wait(timeout=30)


def in_use(world: World, lease: Lease, advice: str) -> re.Pattern[str]:
    store = Store.open(world.loaded.connector.store.url, world.loaded.base_dir)
    store.close()
    holder = re.escape(lease.holder.describe())
    return re.compile(
        rf"error: state store {re.escape(store.label)} is in use by {holder}: "
        rf"its lease runs until {WHEN} and is renewed while it runs; {re.escape(advice)}"
    )


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str]:
    with running_server() as url:
        yield url


@pytest.fixture
def pg_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The world on a database of its own on a throwaway PostgreSQL server."""
    admin_url: str = request.getfixturevalue("postgres_server")
    name = f"daemons_{time.monotonic_ns()}"
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    overrides = {"  url: sqlite:///../state.db\n": f"  url: {admin_url.rsplit('/', 1)[0]}/{name}\n"}
    created = World.create(tmp_path, overrides=overrides)
    yield created
    created.close()


def test_a_second_daemon_is_refused_with_one_line_and_a_stopped_one_frees_the_store(world: World) -> None:
    """On SQLite: one daemon per store (PostgreSQL stores take several: tests/integration/test_instances.py)."""
    world.create_incident(assignment_group=world.acme_group())
    with daemon_on(world) as first:
        lease = wait_for_lease(world, first, 1)
        assert lease.holder.describe().startswith(
            f"mim-connector run on {socket.gethostname()} (pid {first.pid}"
        )
        second = command(world.config, "run")
        assert in_use(world, lease, RUN_ADVICE).fullmatch(one_error_line(second)), second.stderr
        assert second.stdout == ""
        writing = command(world.config, "sync", "--once")
        assert in_use(world, lease, SYNC_ADVICE).fullmatch(one_error_line(writing)), writing.stderr
        assert command(world.config, "sync", "--once", "--dry-run").returncode == 0
        shown = command(world.config, "state", "show")
        assert shown.returncode == 0, shown.stderr
        deadline = time.monotonic() + 60
        while not world.issues("acme", "ACME"):  # the first daemon's first cycle mirrors the incident
            assert time.monotonic() < deadline and first.process.poll() is None, first.stderr()
            time.sleep(0.2)
        stop(first)
    assert released(world).epoch == 1
    with daemon_on(world) as successor:
        wait_for_lease(world, successor, 2)
        stop(successor)
    assert len(world.issues("acme", "ACME")) == 1


def test_daemons_share_a_postgresql_store_and_a_writing_sync_beside_them_is_refused(pg_world: World) -> None:
    world = pg_world
    world.create_incident(assignment_group=world.acme_group())
    with daemon_on(world) as first, daemon_on(world) as second:
        deadline = time.monotonic() + 180  # two daemons starting on a loaded machine
        while not world.issues("acme", "ACME"):
            assert time.monotonic() < deadline, first.stderr() + second.stderr()
            assert first.process.poll() is None and second.process.poll() is None, second.stderr()
            time.sleep(0.2)
        writing = command(world.config, "sync", "--once")
        assert "is in use by mim-connector run on" in one_error_line(writing), writing.stderr
        assert SYNC_ADVICE in writing.stderr
        stop(first)
        stop(second)
    assert len(world.issues("acme", "ACME")) == 1


def test_a_killed_daemon_on_this_machine_is_succeeded_at_once_and_elsewhere_after_its_lease_expires(
    world: World,
) -> None:
    with daemon_on(world) as first:
        wait_for_lease(world, first, 1)
        kill(first)
    with daemon_on(world) as successor:
        wait_for_lease(world, successor, 2)
        kill(successor)  # its lease outlives it, but a successor on this machine sees it is gone
    # ...and a holder on another host cannot be seen to be gone: its lease must expire first.
    store = Store.open(world.loaded.connector.store.url, world.loaded.base_dir)
    try:
        elsewhere = Holder("run", "other-host", 4242, store.leases.now(), "")
        forged = store.leases.acquire(elsewhere, timedelta(minutes=5), vacated=lambda _lease: True)
        refused = command(world.config, "run")
        assert in_use(world, forged, RUN_ADVICE).fullmatch(one_error_line(refused)), refused.stderr
        with store.engine.begin() as conn:  # its five minutes pass without a renewal
            conn.execute(leases.update().values(expires_at=store.leases.now() - timedelta(seconds=1)))
    finally:
        store.close()
    with daemon_on(world) as after_expiry:
        wait_for_lease(world, after_expiry, forged.epoch + 1)
        stop(after_expiry)


@pytest.fixture
def quick_world(tmp_path: Path) -> Iterator[World]:
    created = World.create(tmp_path, overrides={"  url: sqlite:///../state.db\n": QUICK_LEASE})
    yield created
    created.close()


def test_a_daemon_whose_lease_was_taken_over_stops_with_an_error(quick_world: World) -> None:
    world = quick_world
    with daemon_on(world) as daemon:
        wait_for_lease(world, daemon, 1)
        store = Store.open(world.loaded.connector.store.url, world.loaded.base_dir)
        try:
            taker = Holder("run", "other-host", 4242, store.leases.now(), "")
            store.leases.acquire(taker, timedelta(minutes=5), vacated=lambda _lease: True)
        finally:
            store.close()
        code = daemon.process.wait(timeout=60)
        err = daemon.stderr()
    assert code == 1, err
    assert re.fullmatch(
        rf"error: state store {re.escape(str(world.root / 'state.db'))}: the daemon lease \(epoch 1\) was taken "
        rf"over by mim-connector run on other-host \(pid 4242, started {WHEN}\); this process stops writing",
        err.splitlines()[-1],
    ), err
    after = lease_of(world)
    assert after is not None and (after.epoch, after.holder.host) == (2, "other-host"), (
        "the taker's lease stands"
    )


# --- a store that cannot be used -------------------------------------------------------------------------


def use_store(config: Path, url: str) -> None:
    config.write_text(config.read_text().replace("sqlite:///../state.db", url))


def real_store(path: Path, incidents: int = 0) -> None:
    store = Store.open(f"sqlite:///{path}")
    for index in range(incidents):
        store.incidents.remember(
            f"s{index}", f"INC{index:07}", 1, datetime(2026, 11, 22, 10, tzinfo=UTC), {"pad": "x" * 300}
        )
    store.close()


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` (a file or folder) read-only, for root too (``chattr +i``: root ignores permissions)."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], check=False).returncode:
        pytest.skip("as root a read-only store needs chattr +i, which is missing or refused here")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def denied() -> str:
    """How the OS words a write refused by :func:`read_only` (root meets the immutable flag)."""
    return os.strerror(errno.EPERM if os.geteuid() == 0 else errno.EACCES)


@pytest.mark.parametrize("args", [("run",), ("sync", "--once"), ("state", "show")])
def test_a_corrupt_store_is_named_in_one_line_and_kept(offline: Path, args: tuple[str, ...]) -> None:
    store = offline.parent.parent / "state.db"
    garbage = random.Random(7).randbytes(16384)
    store.write_bytes(garbage)
    result = command(offline, *args)
    assert one_error_line(result) == (
        f"error: state store {store} is not a SQLite database (file is not a database): {RESTORE}"
    )
    assert store.read_bytes() == garbage


def test_a_truncated_store_is_named_in_one_line_and_kept(offline: Path) -> None:
    store = offline.parent.parent / "state.db"
    real_store(store, incidents=2000)
    half = store.stat().st_size // 2
    os.truncate(store, half)
    result = command(offline, "run")
    assert one_error_line(result) == (
        f"error: state store {store} is damaged or truncated (database disk image is malformed): {RESTORE}"
    )
    assert store.stat().st_size == half


@pytest.mark.parametrize("args", [("run",), ("state", "dlq", "retry", "1")])
def test_a_read_only_store_is_named_in_one_line(offline: Path, args: tuple[str, ...]) -> None:
    store = offline.parent.parent / "state.db"
    real_store(store)
    opened = Store.open(f"sqlite:///{store}")
    opened.dlq.fail("sys-id:acme", "Unavailable", "ACME was down")
    opened.close()
    with read_only(store):
        result = command(offline, *args)
    assert one_error_line(result) == (
        f"error: state store {store} is read-only (attempt to write a readonly database): {WRITABLE}"
    )


def test_a_store_in_a_read_only_folder_is_named_in_one_line(offline: Path) -> None:
    folder = offline.parent.parent
    store = folder / "state.db"
    real_store(store)
    with read_only(folder):
        result = command(offline, "run")
    assert one_error_line(result) == (
        f"error: state store {store} cannot be opened (unable to open database file): {WRITABLE}"
    )


def test_a_new_store_in_a_read_only_folder_is_named_in_one_line_and_nothing_is_created(offline: Path) -> None:
    folder = offline.parent.parent / "var"
    folder.mkdir()
    use_store(offline, "sqlite:///../var/deeper/state.db")
    with read_only(folder):
        result = command(offline, "run")
    assert one_error_line(result) == (
        f"error: state store {folder / 'deeper' / 'state.db'} cannot be created ({denied()}): {WRITABLE}"
    )
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("args", [("run",), ("state", "show")])
def test_a_store_from_a_newer_connector_is_named_in_one_line_and_left_alone(
    offline: Path, args: tuple[str, ...]
) -> None:
    store_path = offline.parent.parent / "state.db"
    real_store(store_path)
    store = Store.open(f"sqlite:///{store_path}")
    newer = store_schema.SCHEMA_VERSION + 1
    with store.engine.begin() as conn:
        conn.execute(store_schema.meta.update().values(value=str(newer)))
    store.close()
    result = command(offline, *args)
    assert one_error_line(result) == (
        f"error: state store {store_path} is at schema v{newer}, newer than this connector's "
        f"v{store_schema.SCHEMA_VERSION}: run the mim-connector release that migrated it, or restore a "
        "backup taken with this one"
    )


def test_a_postgresql_store_that_refuses_is_named_in_one_line_without_its_password(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("MIM_TEST_PG_PASSWORD", "s3cret-pg")
    use_store(offline, f"postgresql://mim:${{MIM_TEST_PG_PASSWORD}}@127.0.0.1:{port}/mim")
    result = command(offline, "run")
    assert one_error_line(result) == (
        f"error: state store postgresql://mim:***@127.0.0.1:{port}/mim cannot be reached (connection failed: "
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused): check store.url and '
        "that the database server runs and accepts the connector's user"
    )


def test_a_start_that_fails_leaves_no_store_file_or_folder_behind(
    offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = offline.parent.parent
    use_store(offline, "sqlite:///../var/state.db")
    monkeypatch.delenv("MIM_DEMO_ACME_TOKEN")
    result = command(offline, "run")
    assert (result.returncode, result.stderr) == (2, "error: acme: ${MIM_DEMO_ACME_TOKEN} is not set\n")
    assert not (root / "var").exists(), list((root / "var").iterdir())


def test_a_reload_keeps_the_store_and_its_lease_and_refuses_to_move_it(quick_world: World) -> None:
    world = quick_world
    config = world.config
    good = config.read_text()
    with daemon_on(world) as daemon:
        wait_for_lease(world, daemon, 1)
        config.write_text(good.replace("sqlite:///../state.db", "sqlite:///../elsewhere.db"))
        daemon.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while "store.url changed" not in daemon.stderr():
            assert time.monotonic() < deadline, daemon.stderr()
            time.sleep(0.1)
        config.write_text(good.replace("servicenow_interval: 2s", "servicenow_interval: 3s"))
        daemon.process.send_signal(signal.SIGHUP)
        while "configuration reloaded" not in daemon.stderr():
            assert time.monotonic() < deadline, daemon.stderr()
            time.sleep(0.1)
        time.sleep(1.5)  # several renewals (every 500ms) through the reloaded runtime's store
        lease = lease_of(world)
        assert lease is not None and lease.epoch == 1 and lease.renewed_at > lease.acquired_at
        stop(daemon)
    assert (
        "reload refused, keeping the running configuration: store.url changed; "
        "restart the daemon to move to another store"
    ) in daemon.stderr()
    assert not (world.root / "elsewhere.db").exists()
    assert released(world).epoch == 1
