"""The sandbox control API for scenario tooling: retried reads, fault rules installed exactly once.

The tooling (journal collector, nemesis) runs for minutes next to a daemon under faults; a
dropped control connection must not end a run, nor leave fault rules behind whose ids nobody
knows (their faults could not be attributed). Reads and ``DELETE`` are retried; a rule ``POST``
that loses its answer is settled by listing the rules and taking the new ones.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from connector.sandbox.control import SandboxControl


def robust(base_url: str) -> SandboxControl:
    """A control client whose idempotent calls are retried on connection errors."""
    session = requests.Session()
    retry = Retry(
        total=4,
        connect=4,
        read=4,
        status=0,
        backoff_factor=0.05,
        allowed_methods=frozenset({"GET", "DELETE"}),
    )
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return SandboxControl(base_url, session=session, timeout=30)


def install(control: SandboxControl, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add ``rules``; return them as installed (with ids), in order, each installed exactly once."""
    before = max((r["id"] for r in control.faults()), default=0)
    try:
        installed: list[dict[str, Any]] = control.post("faults", rules)["faults"]
        return installed
    except requests.ConnectionError:
        pass
    added = [r for r in control.faults() if r["id"] > before]
    if len(added) == len(rules):
        return added
    control.clear_faults()
    retried: list[dict[str, Any]] = control.post("faults", rules)["faults"]
    return retried


def settle_post(control: SandboxControl, route: str, payload: Any) -> Any:
    """An idempotent control ``POST`` (clock, settings), tried again once on a lost answer."""
    try:
        return control.post(route, payload)
    except requests.ConnectionError:
        return control.post(route, payload)
