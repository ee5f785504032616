"""Inbound REST rate limits, like ``sys_rate_limit_rules``: requests per user per fixed window.

A request matching a rule carries ``X-RateLimit-Limit``, ``X-RateLimit-Reset`` (UNIX time the
window ends) and ``X-RateLimit-Rule`` (the rule's sys_id); past the limit it gets 429 with
``Retry-After`` in seconds. No rule, no headers - as on a default instance. Windows are aligned
to the server clock (hours by default), counts are kept per rule and user.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.sandbox.servicenow.errors import ServiceNowError


@dataclass
class RateRule:
    """One rule: which requests it counts and how many it allows per window."""

    path: str
    limit: int
    window_seconds: int = 3600
    user: str | None = None
    method: str | None = None
    sys_id: str = ""
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.limit < 0 or self.window_seconds <= 0:
            raise ValueError("limit must be >= 0 and window_seconds > 0")
        self._pattern = re.compile(self.path)

    def matches(self, user: str, method: str, path: str) -> bool:
        """True when this rule counts the request."""
        if self.user is not None and self.user != user:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return bool(self._pattern.search(path))

    def as_json(self) -> dict[str, Any]:
        """The rule as the control API shows it."""
        return {
            "sys_id": self.sys_id,
            "path": self.path,
            "limit": self.limit,
            "window_seconds": self.window_seconds,
            "user": self.user,
            "method": self.method,
        }


def _window_text(seconds: int) -> str:
    return "hour" if seconds == 3600 else f"{seconds} seconds"


class RateLimiter:
    """The active rules and their counters; thread-safe."""

    def __init__(self) -> None:
        self._rules: list[RateRule] = []
        self._counts: dict[tuple[str, str, int], int] = {}
        self._lock = threading.Lock()

    def add(self, items: list[Mapping[str, Any]]) -> list[RateRule]:
        """Install rules (JSON objects with path, limit and optional user, method, window_seconds)."""
        allowed = {"path", "limit", "window_seconds", "user", "method"}
        rules: list[RateRule] = []
        for item in items:
            if not isinstance(item, Mapping):
                raise TypeError("a rate-limit rule is a JSON object")
            unknown = set(item) - allowed
            if unknown:
                raise ValueError(f"unknown rate-limit rule keys: {', '.join(sorted(unknown))}")
            rules.append(RateRule(**dict(item)))
        with self._lock:
            for rule in rules:
                seed = f"rate-rule:{len(self._rules)}:{rule.path}:{rule.user}:{rule.method}"
                rule.sys_id = hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()
                self._rules.append(rule)
        return rules

    def rules(self) -> list[RateRule]:
        """A snapshot of the rules."""
        with self._lock:
            return list(self._rules)

    def clear(self) -> None:
        """Remove every rule and counter."""
        with self._lock:
            self._rules.clear()
            self._counts.clear()

    def check(self, user: str, method: str, path: str, now: datetime) -> dict[str, str]:
        """Count the request; return the headers to add, or raise ``ServiceNowError`` 429 past the limit."""
        with self._lock:
            rule = next((r for r in self._rules if r.matches(user, method, path)), None)
            if rule is None:
                return {}
            stamp = now.timestamp()
            window = int(stamp // rule.window_seconds)
            reset = (window + 1) * rule.window_seconds
            headers = {
                "X-RateLimit-Limit": str(rule.limit),
                "X-RateLimit-Reset": str(reset),
                "X-RateLimit-Rule": rule.sys_id,
            }
            key = (rule.sys_id, user, window)
            used = self._counts.get(key, 0)
            if used >= rule.limit:
                retry_after = max(1, math.ceil(reset - stamp))
                raise ServiceNowError(
                    429,
                    "Rate limit exceeded",
                    f"Rate limit of {rule.limit} requests per {_window_text(rule.window_seconds)} for Table API exceeded",
                    headers={**headers, "Retry-After": str(retry_after)},
                )
            self._counts[key] = used + 1
            return headers
