"""The long-running process: cycles on the configured intervals, signals, reload, health.

* SIGINT / SIGTERM: the cycle in flight finishes, then the process exits 0;
* SIGHUP: reload the configuration; a broken one is logged and the last good one kept;
* a failing cycle (ServiceNow down, a bug) is logged and retried on the next tick, never fatal;
* one daemon per store: it holds the store's lease (:mod:`connector.runtime.lease`) from before it connects
  to any site until it stops; a second ``run`` on the store is refused with one line. A lease that
  lapsed (renewals failed) pauses the cycles until renewed; a lease another process took over stops
  the daemon with an error (exit code 1);
* with ``sandbox.stop_when_idle`` and a sandbox story it plays (the demo), it also stops once the
  story is over: replay and agents done, and no cycle saw or wrote anything for that long; with
  ``sandbox.keep_serving`` a sandbox it started then keeps serving (where to look is printed)
  until SIGINT/SIGTERM;
* a reload that changes ``metrics`` moves the health server: the new address is bound before the
  old one is let go, and a reload whose address cannot be bound is refused as a whole.

A :class:`RunObserver` (the live view and summary of :mod:`connector.runtime.live_view`) is told when the
daemon starts, after every cycle, and when it stops (before the store is closed).

The daemon knows nothing of the simulators: the command line hands it a :data:`Prepare` (find or
start the sandbox before connecting, :func:`connector.commands.live.prepare_run`), and what that
started is a :class:`Stage` the daemon only asks whether its story settled, what to print, and to stop.
"""

from __future__ import annotations

import faulthandler
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TextIO

from sqlalchemy.exc import SQLAlchemyError

from connector.config import LoadedConfig, load_config
from connector.config.connector_file import MetricsConfig, PollingConfig
from connector.core.errors import CircuitOpen, ConfigError, ConnectorError, CredentialsRefused, LeaseLost
from connector.runtime.assembly import Runtime, build, open_store
from connector.runtime.health import Health, HealthServer
from connector.runtime.instance import Instance
from connector.runtime.lease import LeaseKeeper, hold_store
from connector.runtime.membership import new_instance_id
from connector.runtime.push import SERVICENOW, PushReceiver, PushServer, Wakers, sources_from
from connector.store import Store
from connector.store.queue import BULK, NEW
from connector.sync.cycle import CycleReport
from connector.telemetry.log import configure_logging

log = logging.getLogger(__name__)

TICK = 1.0
"""Seconds between the loop's turns at most: the reconciler's pace and the workers' reports."""

RUN_ADVICE = (
    "one store takes one daemon (a second would duplicate its writes): stop that one first, "
    "or give this configuration its own store.url"
)


class RunObserver(Protocol):
    """Watches a daemon run (e.g. to show progress); must not raise."""

    def started(self, loaded: LoadedConfig) -> None:
        """The daemon is configured and about to run its first cycle."""

    def cycle(self, report: CycleReport | None, seconds: float, store: Store) -> None:
        """A cycle ended after ``seconds``; ``report`` is ``None`` when it failed."""

    def stopped(self, store: Store) -> None:
        """The daemon stopped; ``store`` is still open."""


class Story(Protocol):
    """What a run plays alongside (the sandbox's replay and agents): ``stop_when_idle`` waits for it."""

    def settled(self) -> bool:
        """True once the story has nothing left to do (no replay running, no actor with work in hand)."""


class Stage(Story, Protocol):
    """Systems started for one run (the embedded sandbox): the daemon stops them when it stops."""

    def where_to_look(self) -> str:
        """What ``sandbox.keep_serving`` prints once the story is over: how to browse what it left."""

    def stop(self) -> None:
        """Stop every system started for the run."""


Prepare = Callable[[LoadedConfig], Stage | None]
"""Makes ``loaded``'s systems reachable before the daemon connects to them; returns what it started.

Called once per run, after the configuration is loaded and before the store's lease is taken.
"""


class Daemon:
    """Runs one configuration until stopped.

    ``prepare``: called before connecting (see :data:`Prepare`); without it the daemon connects
    to the configured systems as they are.
    ``sandbox``: a story the caller started and keeps (tests); ``prepare`` is then not called and
    the caller's replay and agents are the story ``stop_when_idle`` waits for.
    ``out``: where ``sandbox.keep_serving`` says where to look (default: standard output).
    """

    def __init__(
        self,
        config_path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        sandbox: Story | None = None,
        prepare: Prepare | None = None,
        observer: RunObserver | None = None,
        out: TextIO | None = None,
    ) -> None:
        self.config_path = config_path
        self.clock = clock
        self.sandbox = sandbox
        self.prepare = prepare
        self.observer = observer
        self.out = out
        self.stop = threading.Event()
        self.reload_requested = threading.Event()
        self._wake = threading.Event()
        self.cycles = 0
        self.story_ended = False
        """Whether the run ended because the sandbox story was over (not by a signal)."""
        self._active_at = 0.0
        self._keeper: LeaseKeeper | None = None
        self._instance: Instance | None = None
        self._lost: LeaseLost | None = None
        self._health = Health(stale_after=0)
        self._server: HealthServer | None = None
        self._served: MetricsConfig | None = None
        """The ``metrics`` settings ``_server`` was bound for (``None``: nothing bound)."""
        self._push: PushServer | None = None
        self._polls_asked: set[str] = set()
        """Sources (``servicenow``, ``jira:<supplier>``) whose poll a push asked for now."""
        self._polls_lock = threading.Lock()

    def run(self) -> int:
        """Serve until SIGINT/SIGTERM; returns the exit code.

        Raises:
            connector.core.errors.StoreInUse: another process holds the store's lease.
            connector.core.errors.LeaseLost: another process took the lease over while this one ran.
        """
        loaded = load_config(self.config_path)
        configure_logging(loaded.connector.logging.format, loaded.connector.logging.level)
        stage = self.prepare(loaded) if self.sandbox is None and self.prepare is not None else None
        story: Story | None = self.sandbox or stage
        # Before the lease is taken: a SIGTERM while starting ends the run cleanly, lease released.
        previous = self._install_signals()
        try:
            runtime, keeper = self._start(loaded)
            instance = self._instance
            assert instance is not None
            health = self._health = Health(stale_after=_stale_after(loaded.connector.polling))
            try:
                self._health_server(loaded.connector.metrics)
                self._push_server(runtime)
                log.info(
                    "mim-connector %s running: %d supplier(s)",
                    loaded.connector.instance_name,
                    len(runtime.sites),
                )
                if self.observer is not None:
                    self.observer.started(loaded)
                runtime = self._loop(runtime, health, story)
            finally:
                try:
                    if self._instance is not None:
                        self._instance.stop()
                    if self.observer is not None:
                        self.observer.stopped(runtime.store)
                finally:
                    self._stop_push_server()
                    runtime.close()
                    if keeper is not None:
                        keeper.release()
                        keeper.store.close()
                    else:
                        runtime.store.close()
                    self._stop_health_server()
            log.info("stopped after %d cycle(s)", self.cycles)
            if self._lost is not None:
                raise self._lost
            if stage is not None and self.story_ended and runtime.loaded.connector.sandbox.keep_serving:
                self._keep_serving(stage)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if stage is not None:
                stage.stop()
        return 0

    def _start(self, loaded: LoadedConfig) -> tuple[Runtime, LeaseKeeper | None]:
        """Take the store's lease (SQLite), connect to the sites, join the store's instances.

        A SQLite store takes one daemon: its lease refuses a second. A PostgreSQL store takes
        several: they share the roles and the work queue (:mod:`connector.runtime.instance`).
        A failed start leaves no new store file.
        """
        keeper: LeaseKeeper | None = None
        if single_process(loaded):
            store, keeper = hold_store(loaded, "run", RUN_ADVICE)
        else:
            store = open_store(loaded)
        try:
            runtime = build(loaded, store=store)
            instance = Instance(runtime, new_instance_id(), allowed=self._writing)
            instance.start()
        except BaseException:
            if keeper is not None:
                keeper.release()
            store.discard()
            raise
        self._keeper, self._instance = keeper, instance
        if keeper is not None:
            keeper.start(self._lease_lost)
        return runtime, keeper

    def _writing(self) -> bool:
        """Whether this process may write now: on SQLite, while its store lease is certainly held."""
        return self._keeper is None or self._keeper.holding()

    def _lease_lost(self, exc: LeaseLost) -> None:
        """Called from the lease's thread: stop after the cycle in flight, and exit with ``exc``."""
        self._lost = exc
        self.stop.set()
        self._wake.set()

    def _keep_serving(self, stage: Stage) -> None:
        """The story is over: say where to look, and serve until SIGINT or SIGTERM."""
        print(stage.where_to_look(), file=self.out or sys.stdout, flush=True)
        log.info("the simulators keep serving until SIGINT or SIGTERM (sandbox.keep_serving)")
        while not self.stop.wait(0.5):
            pass
        log.info("simulators stopped")

    def _loop(self, runtime: Runtime, health: Health, story: Story | None) -> Runtime:
        due_servicenow = 0.0
        due_sites: dict[str, float] = dict.fromkeys(runtime.sites, 0.0)
        self._active_at = self.clock()
        while not self.stop.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                runtime = self._reload(runtime)
                due_sites = {name: due_sites.get(name, 0.0) for name in runtime.sites}
            polling = runtime.loaded.connector.polling
            now = self.clock()
            asked = self._asked_polls()
            run_servicenow = now >= due_servicenow or SERVICENOW in asked
            sites = [name for name, due in due_sites.items() if now >= due or f"jira:{name}" in asked]
            self._cycle(runtime, health, run_servicenow, sites)
            if run_servicenow:
                due_servicenow = now + polling.servicenow_interval.total_seconds()
            for name in sites:
                due_sites[name] = now + polling.supplier_interval.total_seconds()
            if self._story_over(story, runtime.loaded.connector.sandbox.stop_when_idle):
                log.info("the sandbox story is over and nothing moved for a while: stopping")
                self.story_ended = True
                break
            # At least every TICK: the reconciler's paced re-checks and the workers' reports.
            next_due = min([due_servicenow, *due_sites.values(), self.clock() + TICK])
            # Signals set _wake so that a stop or reload is acted on now, not at the next tick.
            self._wake.wait(max(0.05, next_due - self.clock()))
            self._wake.clear()
        return runtime

    def _story_over(self, story: Story | None, idle_for: timedelta | None) -> bool:
        """True once ``story`` is settled and neither it nor a cycle was active for ``idle_for``."""
        if story is None or idle_for is None:
            return False
        if not story.settled() or self._queued():
            # Agents about to act, and work still queued, count as activity: it must be synced.
            self._active_at = self.clock()
            return False
        return self.clock() - self._active_at >= idle_for.total_seconds()

    def _cycle(
        self, runtime: Runtime, health: Health, servicenow: bool, sites: list[str]
    ) -> CycleReport | None:
        started = self.clock()
        report = self._run_cycle(runtime, health, servicenow, sites)
        if report is not None and _active(report):
            self._active_at = self.clock()
        if self.observer is not None:
            self.observer.cycle(report, self.clock() - started, runtime.store)
        return report

    def _queued(self) -> bool:
        """Whether changes wait in the queue now (the reconciler's paced re-checks never end: not those)."""
        instance = self._instance
        if instance is None:
            return False
        try:
            depth = instance.runtime.store.queue.depth(instance.runtime.engine.clock())
        except SQLAlchemyError:
            return True
        return any(depth[lane].due or depth[lane].later for lane in (NEW, BULK))

    def _run_cycle(
        self, runtime: Runtime, health: Health, servicenow: bool, sites: list[str]
    ) -> CycleReport | None:
        """Observe what is due (the roles held), pace the reconciler, gather what the workers did."""
        instance = self._instance
        assert instance is not None
        if self._keeper is not None and not self._keeper.holding():
            log.error("cycle skipped: the state store's lease lapsed (its renewals failed); waiting for one")
            health.beat(False, "the state store's lease lapsed", runtime.problems())
            return None
        try:
            report = instance.observe(servicenow, sites)
            instance.reconcile()
            report.absorb(instance.done())
            if servicenow or sites:
                runtime.engine.publish_metrics()
        except ConnectorError as exc:
            # A call refused without a request: the transport logged its episode once already.
            quiet = isinstance(exc, CircuitOpen | CredentialsRefused)
            log.log(logging.DEBUG if quiet else logging.ERROR, "cycle failed: %s", exc)
            health.beat(False, f"last cycle failed: {type(exc).__name__}", runtime.problems())
            return None
        except Exception:  # the daemon outlives any single bug; the next tick tries again
            log.exception("cycle failed unexpectedly")
            health.beat(False, "last cycle failed unexpectedly", runtime.problems())
            return None
        if not (servicenow or sites):
            return report  # a tick between polls: no cycle to count
        self.cycles += 1
        health.beat(True, "ok", runtime.problems())
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
        if loaded.connector.store.url != runtime.loaded.connector.store.url:
            log.error(
                "reload refused, keeping the running configuration: store.url changed; "
                "restart the daemon to move to another store"
            )
            return runtime
        store = Store(
            runtime.store.engine,
            loaded.connector.instance_name,
            retry_delay=loaded.connector.polling.dead_letter_retry,
            label=runtime.store.label,
        )
        try:
            fresh = build(loaded, store=store)
            sources_from(loaded)  # a push secret that cannot be resolved refuses the reload
        except (ConnectorError, LookupError) as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
            return runtime
        metrics = loaded.connector.metrics
        if metrics != runtime.loaded.connector.metrics:
            try:
                self._move_health_server(metrics)
            except OSError as exc:
                fresh.close()
                log.error(
                    "reload refused, keeping the running configuration: "
                    "the metrics and health endpoints cannot be served on %s:%s: %s",
                    metrics.host,
                    metrics.port,
                    exc.strerror or exc,
                )
                return runtime
        self._health.stale_after = _stale_after(loaded.connector.polling)
        if self._instance is not None:
            self._instance.reload(fresh)
        # The receiver works on the new configuration: its secrets, sites and address.
        self._stop_push_server()
        self._push_server(fresh)
        runtime.close()
        if self._keeper is not None:
            self._keeper.ttl, self._keeper.renew_every = (
                loaded.connector.store.lease.ttl,
                loaded.connector.store.lease.renew_every,
            )
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
        # `kill -USR1` writes every thread's stack to stderr: how an operator sees a stuck daemon.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        return {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}

    def poll_now(self, source: str) -> None:
        """Poll ``source`` (``servicenow``, ``jira:<supplier>``) now rather than at its next interval."""
        with self._polls_lock:
            self._polls_asked.add(source)
        self._wake.set()

    def _asked_polls(self) -> set[str]:
        with self._polls_lock:
            asked, self._polls_asked = self._polls_asked, set()
        return asked

    def _push_server(self, runtime: Runtime) -> None:
        """Receive pushes as ``push`` says (docs/push.md); a port that cannot be bound is a warning at start.

        Raises:
            connector.core.errors.CredentialError: a push secret cannot be resolved.
        """
        settings = runtime.loaded.connector.push
        if not settings.enabled:
            return
        sources = sources_from(runtime.loaded)
        if not sources:
            log.warning("push is enabled but no site has a secret: nothing is received (docs/push.md)")
            return
        instance = self._instance
        wakers = Wakers(workers=instance.workers.wake if instance else lambda: None, poll=self.poll_now)
        receiver = PushReceiver(runtime.store, sources, settings.max_body, settings.remember, wakers)
        try:
            self._push = PushServer(receiver, settings.host, settings.port).start()
        except OSError as exc:
            log.warning("push not received on %s:%s: %s", settings.host, settings.port, exc)
            return
        log.info(
            "receiving push on %s:%s from %s", settings.host, self._push.port, ", ".join(sorted(sources))
        )

    def _stop_push_server(self) -> None:
        if self._push is not None:
            self._push.stop()
            self._push = None

    def _health_server(self, metrics: MetricsConfig) -> None:
        """Serve the endpoints as ``metrics`` says; a port that cannot be bound is a warning at start."""
        if not metrics.enabled:
            return
        try:
            self._server = HealthServer(self._health, metrics.host, metrics.port).start()
            self._served = metrics
        except OSError as exc:
            log.warning(
                "metrics and health endpoints not served on %s:%s: %s", metrics.host, metrics.port, exc
            )

    def _move_health_server(self, metrics: MetricsConfig) -> None:
        """Serve as ``metrics`` says from now on: bind the new address, then let the old one go.

        Raises:
            OSError: the new address cannot be bound; the old server (if any) still serves.
        """
        old, served = self._server, self._served
        if not metrics.enabled:
            self._stop_health_server()
            log.info("metrics and health endpoints no longer served")
            return
        try:
            new = HealthServer(self._health, metrics.host, metrics.port).start()
        except OSError:
            if old is None or served is None or served.port != metrics.port:
                raise
            # The same port on another address (127.0.0.1 -> 0.0.0.0): the old listener is in the
            # way, so it goes first, and comes back if the new address cannot be had either.
            self._stop_health_server()
            try:
                new = HealthServer(self._health, metrics.host, metrics.port).start()
            except OSError:
                self._health_server(served)
                raise
        else:
            self._stop_health_server()
        self._server, self._served = new, metrics
        log.info("metrics and health endpoints served on %s:%s", metrics.host, new.port)

    def _stop_health_server(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server, self._served = None, None


def single_process(loaded: LoadedConfig) -> bool:
    """Whether ``loaded``'s store takes one daemon (SQLite), not several (PostgreSQL)."""
    return str(loaded.connector.store.url).strip().lower().startswith("sqlite")


def _stale_after(polling: PollingConfig) -> float:
    """Seconds without a finished cycle after which ``/healthz`` says the loop is stuck."""
    return 3 * max(polling.servicenow_interval, polling.supplier_interval).total_seconds() + 30


def _active(report: CycleReport) -> bool:
    """Whether a cycle saw or did anything (failures alone do not count: retries back off)."""
    return bool(
        report.new_versions
        or report.journal_entries
        or report.issues_seen
        or report.writes
        or report.decisions
    )
