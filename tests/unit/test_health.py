"""Readiness: not ready while any system is failing, and the body says which and why; liveness apart."""

from __future__ import annotations

import requests

from connector.runtime.health import Health, HealthServer
from tests.factories import FakeClock


def test_readiness_names_each_failing_system_and_liveness_ignores_them() -> None:
    clock = FakeClock()
    health = Health(stale_after=60, clock=clock)
    health.beat(
        True, "ok", {"acme": ["POST issue failing for 42s (next try in 18s): Unavailable: 503"], "globex": []}
    )
    assert not health.ready
    assert health.reason == "acme: POST issue failing for 42s (next try in 18s): Unavailable: 503"
    assert health.failing == {"acme": ["POST issue failing for 42s (next try in 18s): Unavailable: 503"]}
    assert health.live() == (True, "last cycle 0s ago")

    server = HealthServer(health, "127.0.0.1", 0).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["failing"] == health.failing
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        health.beat(False, "last cycle failed: Unavailable", {"servicenow": ["unreachable for 30s"]})
        assert requests.get(f"{base}/readyz", timeout=5).json()["reason"] == (
            "last cycle failed: Unavailable; servicenow: unreachable for 30s"
        )
        health.beat(True, "ok", {})
        answer = requests.get(f"{base}/readyz", timeout=5)
        assert answer.status_code == 200
        assert answer.json() == {"status": "ok", "reason": "ok", "failing": {}}
    finally:
        server.stop()
