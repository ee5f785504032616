"""The one retry layer: exponential backoff with jitter, ``Retry-After`` as a floor, a bounded number of tries.

Only :class:`~connector.core.errors.RetriableError` is retried: nothing was applied, so the same
request may go again. :class:`~connector.core.errors.UncertainOutcome` is never retried here; the
caller reconciles by looking for its stamp. The clients below us never retry themselves
(python-jira with ``max_retries=0``; pysnow has no retries).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from connector.core.errors import RetriableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one request: ``attempts`` in all, waits from ``initial`` doubling up to ``maximum``."""

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 30.0
    jitter: float = 0.5


DEFAULT_POLICY = RetryPolicy()


class _RetryAfterFloor:
    """Exponential backoff with jitter, never shorter than the server's ``Retry-After``."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy

    def __call__(self, state: RetryCallState) -> float:
        policy = self._policy
        backoff = min(policy.maximum, policy.initial * 2 ** (state.attempt_number - 1))
        wait: float = backoff + random.uniform(0, policy.jitter)  # noqa: S311 - jitter, not cryptography
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableError) and error.retry_after is not None:
            wait = max(wait, float(error.retry_after))
        return wait


def call(
    fn: Callable[[], T], policy: RetryPolicy = RetryPolicy(), sleep: Callable[[float], None] = time.sleep
) -> T:
    """Run ``fn``, retrying retriable failures; re-raise the last error when the tries run out."""
    retrying = Retrying(
        retry=retry_if_exception_type(RetriableError),
        wait=_RetryAfterFloor(policy),
        stop=stop_after_attempt(policy.attempts),
        sleep=sleep,
        reraise=True,
    )
    return retrying(fn)
