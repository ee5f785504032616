"""A reload (SIGHUP) of a running daemon that moves its metrics and health endpoints."""

from __future__ import annotations

import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.integration.world import World, daemon_process, free_port, stop

SCRIPT = str(Path(sys.executable).parent / "mim-connector")


def answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        return requests.get(f"http://{host}:{port}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def wait_for(condition: Callable[[], bool], seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_reload_moves_the_metrics_endpoint_or_keeps_it_where_it_was(world: World) -> None:
    config = world.config
    first, second = free_port(), free_port()
    text = config.read_text().replace(
        "metrics:\n  enabled: false", f"metrics:\n  enabled: true\n  port: {first}"
    )
    config.write_text(text)
    with daemon_process(SCRIPT, "run", "-c", str(config)) as daemon:
        assert wait_for(lambda: answers(first)), "health served at start"

        config.write_text(text.replace(f"port: {first}", f"port: {second}"))
        daemon.send_signal(signal.SIGHUP)
        assert wait_for(lambda: answers(second)), "a reload with another port serves there"
        assert not answers(first), "...and no longer on the old port"

        # The same port on another address: the old listener must make way, then the new one serves.
        config.write_text(text.replace(f"port: {first}", f"host: localhost\n  port: {second}"))
        daemon.send_signal(signal.SIGHUP)
        time.sleep(3)  # the reload is done by then, even on a loaded machine
        assert answers(second)

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            config.write_text(text.replace(f"port: {first}", f"port: {busy}"))
            daemon.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            assert answers(second), "a reload whose port cannot be bound keeps the running server"
        assert daemon.poll() is None
        err = stop(daemon)
    assert daemon.returncode == 0, err
    reloads = [line for line in err.splitlines() if "reload" in line]
    assert len(reloads) == 3, err
    assert "configuration reloaded" in reloads[0] and "configuration reloaded" in reloads[1]
    assert (
        "reload refused, keeping the running configuration: the metrics and health endpoints cannot be "
        in reloads[2]
    )
    assert f"served on 127.0.0.1:{busy}: Address already in use" in reloads[2]
    assert "Traceback" not in err
