"""How every live command reaches the systems: find or start the sandbox, then connect.

``run`` (:mod:`connector.runtime.daemon`), ``sync``, ``doctor``, ``rules test INC…`` and ``rules backtest
--since`` all go through :func:`connector.sandbox.attach.prepare` before they resolve a
credential, so a sandbox serving at the configured URLs lends its credentials to each of them
alike, and an unresolvable credential ends each of them the same way (a
:class:`~connector.core.errors.CredentialError` naming it).

The daemon never imports the sandbox: ``run`` hands it :func:`prepare_run`, and the sandbox it
started as an :class:`EmbeddedSandbox` (a :class:`connector.runtime.daemon.Stage`).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from connector.config import LoadedConfig
from connector.core.errors import LeaseLost
from connector.runtime.assembly import Runtime, build
from connector.runtime.lease import LeaseKeeper, hold_store
from connector.sandbox.attach import prepare
from connector.store import Store

if TYPE_CHECKING:
    from connector.sandbox.runner import Sandbox


class EmbeddedSandbox:
    """A sandbox started for one ``run``, as the daemon sees it (:class:`connector.runtime.daemon.Stage`)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def settled(self) -> bool:
        """Whether the sandbox's replay is over and no simulated person has work in hand."""
        return self.sandbox.settled()

    def where_to_look(self) -> str:
        """How to browse what the story left, as the sandbox's service-desk administrator."""
        from connector.sandbox.tour import where_to_look

        admin = self.sandbox.admin()
        return where_to_look(self.sandbox.describe(), (admin.user_name, admin.password))

    def stop(self) -> None:
        """Stop the sandbox's replay, its simulated people and both simulators."""
        self.sandbox.stop()


def prepare_run(loaded: LoadedConfig) -> EmbeddedSandbox | None:
    """What ``run`` does before it connects: :func:`prepare`, then ``sandbox.fresh_store`` empties the store.

    Returns the sandbox started for the run (the daemon stops it), else ``None``.

    Raises:
        connector.core.errors.CredentialError: (embedded) a ``file:`` reference cannot be read.
        connector.sandbox.runner.SandboxError: the sandbox's addresses are taken by something else.
    """
    sandbox = prepare(loaded)
    if sandbox is None:
        return None
    if loaded.connector.sandbox.fresh_store:
        from connector.sandbox.embedded import discard_store

        discard_store(loaded)
    return EmbeddedSandbox(sandbox)


class Live:
    """The runtime of ``loaded`` (:func:`~connector.runtime.assembly.build`), after :func:`prepare`; ``close()`` ends both.

    Raises (at construction):
        connector.core.errors.CredentialError: credentials cannot be resolved (every one is named).
        connector.sandbox.runner.SandboxError: the sandbox's addresses are taken by something else.
    """

    def __init__(
        self, loaded: LoadedConfig, *, dry_run: bool = False, hold: tuple[str, str] | None = None
    ) -> None:
        """Prepare the sandbox, then build; ``hold`` = (command, advice) holds the store's lease.

        A command that writes holds the lease like the daemon, so it is refused beside one
        (:func:`~connector.runtime.lease.hold_store`).
        """
        self.sandbox: Sandbox | None = prepare(loaded)
        self.keeper: LeaseKeeper | None = None
        store: Store | None = None
        try:
            if hold is not None:
                store, self.keeper = hold_store(loaded, *hold)
            self.runtime: Runtime = build(loaded, dry_run=dry_run, store=store)
        except BaseException:
            if self.keeper is not None and store is not None:
                self.keeper.release()
                store.discard()
            self._stop_sandbox()
            raise
        if self.keeper is not None:
            self.keeper.start(lambda _lost: None)  # told by :attr:`lost` after the work, which goes on

    @property
    def lost(self) -> LeaseLost | None:
        """The lease another process took over while this command ran, if it did."""
        return self.keeper.lost if self.keeper is not None else None

    def close(self) -> None:
        """Close the runtime, end the lease, then stop a sandbox started for it."""
        try:
            self.runtime.close()
            if self.keeper is not None:
                self.keeper.release()
                self.keeper.store.close()
        finally:
            self._stop_sandbox()

    def _stop_sandbox(self) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()
            self.sandbox = None

    def __enter__(self) -> Runtime:
        return self.runtime

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()
