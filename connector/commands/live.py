"""How every live command reaches the systems: find or start the sandbox, then connect.

``run`` (:mod:`connector.daemon`), ``sync``, ``doctor``, ``rules test INC…`` and ``rules backtest
--since`` all go through :func:`connector.sandbox.attach.prepare` before they resolve a
credential, so a sandbox serving at the configured URLs lends its credentials to each of them
alike, and an unresolvable credential ends each of them the same way (a
:class:`~connector.errors.CredentialError` naming it).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from connector.config import LoadedConfig
from connector.sandbox.attach import prepare
from connector.wiring import Runtime, build

if TYPE_CHECKING:
    from connector.sandbox.runner import Sandbox


class Live:
    """The runtime of ``loaded`` (:func:`~connector.wiring.build`), after :func:`prepare`; ``close()`` ends both.

    Raises (at construction):
        connector.errors.CredentialError: credentials cannot be resolved (every one is named).
        connector.sandbox.runner.SandboxError: the sandbox's addresses are taken by something else.
    """

    def __init__(self, loaded: LoadedConfig, *, dry_run: bool = False) -> None:
        self.sandbox: Sandbox | None = prepare(loaded)
        try:
            self.runtime: Runtime = build(loaded, dry_run=dry_run)
        except BaseException:
            self._stop_sandbox()
            raise

    def close(self) -> None:
        """Close the runtime, then stop a sandbox started for it."""
        try:
            self.runtime.close()
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
