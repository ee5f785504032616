"""Switches of the simulated instance that a test or an admin may flip at run time.

They stand for instance properties and plugins that differ between real customers' instances,
so a connector can be tested against each variant (``POST /_sandbox/settings``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass
class Settings:
    """Behaviour flags; every one defaults to what a fresh instance does."""

    invalid_query_returns_no_rows: bool = False
    """``glide.invalid_query.returns_no_rows``: an unknown field in a query returns nothing instead of
    silently dropping that condition."""
    resolve_requires_close_fields: bool = True
    """The data policy making ``close_code`` and ``close_notes`` mandatory in states Resolved/Closed."""
    problem_state_writable: bool = True
    """False reproduces Rome and later, where the Table API refuses problem state transitions."""
    token_ttl_seconds: int = 1800
    """Lifetime of OAuth access tokens issued from now on."""

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial update. Raises ``ValueError`` on an unknown key or a value of the wrong type."""
        known = {f.name: f.type for f in fields(self)}
        unknown = set(changes) - set(known)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
        for key, value in changes.items():
            expected = bool if known[key] == "bool" else int
            if type(value) is not expected:
                raise ValueError(f"setting {key} must be a {expected.__name__}")
            if expected is int and value <= 0:
                raise ValueError(f"setting {key} must be positive")
        for key, value in changes.items():
            setattr(self, key, value)

    def as_json(self) -> dict[str, Any]:
        """The settings as the control API shows them."""
        return asdict(self)
