"""Switches a test sets on a fake port, taken one per call: what happens to the next call of an operation.

``fake.faults.next("create_issue", LOST_ANSWER)`` arms the next ``create_issue`` call; further
faults for the same operation queue behind it. Each kind mirrors what the real adapter raises (see
:mod:`connector.http.transport` and :func:`connector.core.errors.error_for_status`):

* :data:`LOST_ANSWER`: the write is applied, then the answer is lost (a dropped or reset response):
  :class:`~connector.core.errors.UncertainOutcome`; for a read, :class:`~connector.core.errors.Unavailable`
  (nothing was changed, the read may go again);
* :func:`rate_limited`: a 429 (every retry spent): :class:`~connector.core.errors.RateLimited` carrying
  ``retry_after``, nothing applied;
* :data:`OUTAGE`: a 503 or a refused connection (every retry spent): :class:`~connector.core.errors.Unavailable`,
  nothing applied;
* :data:`REFUSED`: a 400 saying our request is wrong: :class:`~connector.core.errors.InvalidRequest`,
  nothing applied;
* :func:`concurrent`: someone else's change lands first (between our read and our write), then
  our call goes through against the changed state;
* :data:`CRASH`: the write is applied and the process dies before it hears the answer (SIGKILL):
  :class:`Crash`, which no ``except Exception`` catches, so nothing after the send is recorded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from connector.core.errors import InvalidRequest, RateLimited, Unavailable, UncertainOutcome

T = TypeVar("T")
Kind = Literal["lost_answer", "rate_limited", "outage", "refused", "concurrent", "crash"]


class Crash(BaseException):
    """The process died here: raised past every ``except Exception`` (as SIGKILL would end it)."""


@dataclass(frozen=True)
class Fault:
    """What happens to one call."""

    kind: Kind
    retry_after: float | None = None
    before: Callable[[], None] | None = None
    """For ``concurrent``: the other actor's change, run before our call is applied."""


LOST_ANSWER = Fault("lost_answer")
OUTAGE = Fault("outage")
REFUSED = Fault("refused")
CRASH = Fault("crash")


def rate_limited(retry_after: float | None = 3.0) -> Fault:
    """A 429 whose ``Retry-After`` said ``retry_after`` seconds."""
    return Fault("rate_limited", retry_after=retry_after)


def concurrent(change: Callable[[], None]) -> Fault:
    """Another actor's ``change`` lands between our read and this call."""
    return Fault("concurrent", before=change)


class Faults:
    """Faults armed per operation, each taken by one call, in the order armed."""

    def __init__(self, system: str) -> None:
        self.system = system
        self._armed: dict[str, deque[Fault]] = {}
        self.fired: list[tuple[str, Kind]] = []
        """(operation, kind) of every fault taken so far, in order."""

    def next(self, operation: str, fault: Fault, *, times: int = 1) -> None:
        """Arm ``fault`` for the next ``times`` calls of ``operation`` (after those armed before)."""
        self._armed.setdefault(operation, deque()).extend([fault] * times)

    def armed(self, operation: str | None = None) -> int:
        """Faults not taken yet (of ``operation``, or of all)."""
        if operation is not None:
            return len(self._armed.get(operation, ()))
        return sum(len(queue) for queue in self._armed.values())

    def clear(self) -> None:
        """Disarm every fault."""
        self._armed.clear()

    def run(self, operation: str, apply: Callable[[], T], *, write: bool) -> T:
        """``apply()`` as the call ``operation``, with the next fault armed for it, if any."""
        queue = self._armed.get(operation)
        fault = queue.popleft() if queue else None
        if fault is None:
            return apply()
        self.fired.append((operation, fault.kind))
        what = f"{self.system}: {operation}"
        if fault.kind == "rate_limited":
            raise RateLimited(f"{what}: HTTP 429 Too Many Requests", retry_after=fault.retry_after)
        if fault.kind == "outage":
            raise Unavailable(f"{what}: HTTP 503 Service Unavailable")
        if fault.kind == "refused":
            raise InvalidRequest(f"{what}: HTTP 400 the request was refused (a fault set by the test)")
        if fault.kind == "concurrent":
            assert fault.before is not None
            fault.before()
            return apply()
        apply()  # applied; its answer never reaches the caller
        if fault.kind == "crash":
            raise Crash(what)
        if write:
            raise UncertainOutcome(f"{what}: no answer: connection reset after the request was sent")
        raise Unavailable(f"{what}: no answer: connection reset")
