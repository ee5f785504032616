"""Which requests may wait: work nobody is waiting for yields the request budgets to work somebody is.

A thread runs :func:`background` around work that no person is waiting for (a backfill, a burst,
the reconciler's re-checks). Its requests take a budget's token only when no other request waits
for one (:meth:`connector.http.ratelimit.Limiter.wait`), so a fresh change and the polls are sent
first and a backlog uses what is left of the budget, not a place in line ahead of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_background: ContextVar[bool] = ContextVar("background", default=False)


@contextmanager
def background(yields: bool = True) -> Iterator[None]:
    """Mark the requests this thread sends meanwhile as background work (``yields=False``: as not)."""
    token = _background.set(yields)
    try:
        yield
    finally:
        _background.reset(token)


def in_background() -> bool:
    """Whether this thread's requests are background work now."""
    return _background.get()
