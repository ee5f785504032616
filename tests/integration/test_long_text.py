"""A multi-megabyte incident text, end to end: the daemon keeps answering its probes and nothing leaks.

The daemon runs as a subprocess on the shipped mappings against the sandbox, with one pattern an
admin might well write (it passes ``check`` with a warning: quadratic on a long run of letters).
A 3 MB description of such a run and a 3 MB public comment arrive; while the daemon mirrors them,
every ``/healthz`` must answer within the timeout a liveness probe would give it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests

from connector.mirror.view import TEXT_LIMIT
from tests.integration.world import World, free_port

SCRIPT = str(Path(sys.executable).parent / "mim-connector")
PROBE_TIMEOUT = 2.0
"""Seconds a liveness probe waits for ``/healthz`` (Kubernetes' default is 1; the test machine is shared)."""
MB = 1_000_000
EMPLOYEE_CODE = (
    "      - name: employee-code\n"
    "        regex: '[A-Za-z]+\\d{6}'\n"
    '        replace: "[employee code removed]"\n'
)


def test_a_multi_megabyte_text_neither_freezes_the_daemon_nor_leaks(world: World) -> None:
    acme = world.root / "mappings" / "suppliers" / "acme.yaml"
    anchor = "      - name: internal-host\n"
    acme.write_text(acme.read_text().replace(anchor, EMPLOYEE_CODE + anchor, 1))
    port = free_port()
    world.config.write_text(
        world.config.read_text().replace(
            "metrics:\n  enabled: false", f"metrics:\n  enabled: true\n  port: {port}"
        )
    )
    description = "Pasted dump, owner ops.lead@corp.example.com:\n" + "abcdefghij" * (3 * MB // 10)
    incident = world.create_incident(assignment_group=world.acme_group(), description=description)
    comment = "Log from jane.roe@corp.example.com\x1b[31m follows\n" + "GET /api/v1/pay 504 12ms\n" * (
        3 * MB // 25
    )
    world.update_incident(incident["sys_id"], comments=comment)
    daemon = subprocess.Popen(
        [SCRIPT, "run", "-c", str(world.config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    answered = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{base}/healthz", timeout=PROBE_TIMEOUT)
            except requests.ConnectionError:
                assert daemon.poll() is None, "the daemon died"
                time.sleep(0.1)  # not listening yet
                continue
            assert health.json()["status"] == "ok"
            answered += 1
            issues = world.issues("acme", "ACME")
            if issues and issues[0].fields.comment.comments:
                break
            time.sleep(0.1)
        requests.get(f"{base}/metrics", timeout=PROBE_TIMEOUT).raise_for_status()
    finally:
        daemon.terminate()
        try:
            _out, err = daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _out, err = daemon.communicate(timeout=30)
    (issue,) = world.issues("acme", "ACME")
    assert answered > 0
    sent = issue.fields.description
    assert "[withheld by mim-connector" in sent and "abcdefghij" not in sent and "ops.lead" not in sent
    assert sent.endswith(f"/nav_to.do?uri=incident.do?sys_id={incident['sys_id']}"), "the link back is intact"
    (mirrored,) = issue.fields.comment.comments
    assert mirrored.body.startswith("admin (service desk) wrote:\nLog from [e-mail removed] follows\nGET")
    assert "\x1b" not in mirrored.body and len(mirrored.body) <= TEXT_LIMIT + 60
    assert "withheld: redaction pattern 'employee-code' did not finish within" in err
