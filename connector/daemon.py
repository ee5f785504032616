"""The long-running process: cycles on the configured intervals, signals, reload, health.

* SIGINT / SIGTERM: the cycle in flight finishes, then the process exits 0;
* SIGHUP: reload the configuration; a broken one is logged and the last good one kept;
* a failing cycle (ServiceNow down, a bug) is logged and retried on the next tick, never fatal.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from connector.config import LoadedConfig, load_config
from connector.engine import CycleReport
from connector.errors import ConfigError, ConnectorError
from connector.health import Health, HealthServer
from connector.log import configure_logging
from connector.sandbox.runner import Sandbox
from connector.wiring import Runtime, build

log = logging.getLogger(__name__)


class Daemon:
    """Runs one configuration until stopped."""

    def __init__(self, config_path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config_path = config_path
        self.clock = clock
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self._wake = threading.Event()
        self.cycles = 0

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM; returns the exit code."""
        loaded = load_config(self.config_path)
        configure_logging(loaded.connector.logging.format, loaded.connector.logging.level)
        sandbox = self._sandbox(loaded)
        runtime = build(loaded)
        polling = loaded.connector.polling
        health = Health(
            stale_after=3 * max(polling.servicenow_interval, polling.supplier_interval).total_seconds() + 30
        )
        server = self._health_server(loaded, health)
        previous = self._install_signals()
        log.info(
            "mim-connector %s running: %d supplier(s)", loaded.connector.instance_name, len(runtime.sites)
        )
        try:
            runtime = self._loop(runtime, health)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            runtime.close()
            if server is not None:
                server.stop()
            if sandbox is not None:
                sandbox.stop()
        log.info("stopped after %d cycle(s)", self.cycles)
        return 0

    def _loop(self, runtime: Runtime, health: Health) -> Runtime:
        due_servicenow = 0.0
        due_sites: dict[str, float] = dict.fromkeys(runtime.sites, 0.0)
        while not self.stop.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                runtime = self._reload(runtime)
                due_sites = {name: due_sites.get(name, 0.0) for name in runtime.sites}
            polling = runtime.loaded.connector.polling
            now = self.clock()
            run_servicenow = now >= due_servicenow
            sites = [name for name, due in due_sites.items() if now >= due]
            if run_servicenow or sites:
                self._cycle(runtime, health, run_servicenow, sites)
                if run_servicenow:
                    due_servicenow = now + polling.servicenow_interval.total_seconds()
                for name in sites:
                    due_sites[name] = now + polling.supplier_interval.total_seconds()
            next_due = min([due_servicenow, *due_sites.values()])
            # Signals set _wake so that a stop or reload is acted on now, not at the next tick.
            self._wake.wait(max(0.05, next_due - self.clock()))
            self._wake.clear()
        return runtime

    def _cycle(
        self, runtime: Runtime, health: Health, servicenow: bool, sites: list[str]
    ) -> CycleReport | None:
        try:
            report = runtime.engine.cycle(servicenow=servicenow, sites=sites)
        except ConnectorError as exc:
            log.error("cycle failed: %s", exc)
            health.beat(False, f"last cycle failed: {type(exc).__name__}")
            return None
        except Exception:  # the daemon outlives any single bug; the next tick tries again
            log.exception("cycle failed unexpectedly")
            health.beat(False, "last cycle failed unexpectedly")
            return None
        self.cycles += 1
        health.beat(True, "ok")
        if report.writes or report.failed or report.new_versions:
            log.info(
                "cycle: %d new incident versions, %d entities, %d writes, %d failed, %d held",
                report.new_versions,
                report.entities,
                report.writes,
                len(report.failed),
                report.held,
            )
        return report

    def _reload(self, runtime: Runtime) -> Runtime:
        try:
            loaded = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration:\n%s", exc)
            return runtime
        if loaded.digest == runtime.loaded.digest:
            log.info("reload: configuration unchanged")
            return runtime
        try:
            fresh = build(loaded)
        except (ConnectorError, LookupError) as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return runtime
        runtime.close()
        configure_logging(loaded.connector.logging.format, loaded.connector.logging.level)
        log.info("configuration reloaded (%s)", loaded.digest[:12])
        return fresh

    def _install_signals(self) -> dict[int, Any]:
        def on_stop(_signum: int, _frame: FrameType | None) -> None:
            self.stop.set()
            self._wake.set()

        def on_reload(_signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()
            self._wake.set()

        handlers = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop, signal.SIGHUP: on_reload}
        return {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}

    @staticmethod
    def _sandbox(loaded: LoadedConfig) -> Sandbox | None:
        if not loaded.connector.sandbox.embedded:
            return None
        from connector.sandbox.embedded import ensure_sandbox

        return ensure_sandbox(loaded)

    @staticmethod
    def _health_server(loaded: LoadedConfig, health: Health) -> HealthServer | None:
        metrics = loaded.connector.metrics
        if not metrics.enabled:
            return None
        try:
            return HealthServer(health, metrics.host, metrics.port).start()
        except OSError as exc:
            log.warning(
                "metrics and health endpoints not served on %s:%s: %s", metrics.host, metrics.port, exc
            )
            return None
