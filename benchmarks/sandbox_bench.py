"""Sandbox speed: it must never be the bottleneck of the connector's benchmarks.

Measures, on this machine:
  1. simple requests per second against a sandbox in its own process (`mim-connector sandbox`),
     from 1 and from 4 client threads, for ServiceNow (GET one incident) and Jira (GET one issue);
  2. memory for 100,000 incidents held by the ServiceNow simulator (RSS growth and tracemalloc);
  3. the time of a watermark page query (200 rows, keyset order) over HTTP at 100,000 incidents.

Prints a markdown table and writes JSON to benchmarks/results/sandbox.json.
Run: .venv/bin/python benchmarks/sandbox_bench.py   (or: make bench)
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import requests

from connector.sandbox.core import Clock
from connector.sandbox.server import AppServer
from connector.sandbox.servicenow import ServiceNowApp
from connector.sandbox.spec import ServiceNowSpec, SnowUser

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DURATION = 5.0
INCIDENTS = 100_000


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_sandbox() -> tuple[subprocess.Popen[str], dict]:
    script = Path(sys.executable).parent / "mim-connector"
    process = subprocess.Popen(
        [str(script), "sandbox", "--servicenow-port", "0", "--jira-port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def hammer(url: str, auth: tuple[str, str] | None, headers: dict[str, str], threads: int) -> float:
    """Requests per second from ``threads`` keep-alive clients over DURATION seconds."""
    counts = [0] * threads
    failures: list[Exception] = []
    stop = time.monotonic() + DURATION

    def work(index: int) -> None:
        session = requests.Session()
        session.auth = auth
        session.headers.update(headers)
        try:
            while time.monotonic() < stop:
                session.get(url, timeout=10).raise_for_status()
                counts[index] += 1
        except requests.RequestException as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if failures:
        raise RuntimeError(f"{len(failures)} client(s) failed: {failures[0]}")
    return sum(counts) / (time.monotonic() - started)


def throughput() -> dict[str, float]:
    process, info = start_sandbox()
    try:
        servicenow = info["servicenow"]
        user = next(u for u in servicenow["users"] if u["user_name"] == "admin")
        auth = (user["user_name"], user["password"])
        json_headers = {"Accept": "application/json"}
        created = requests.post(
            f"{servicenow['url']}/api/now/table/incident",
            json={"short_description": "benchmark", "impact": "2", "urgency": "2"},
            auth=auth,
            headers=json_headers,
            timeout=10,
        ).json()["result"]
        incident_url = f"{servicenow['url']}/api/now/table/incident/{created['sys_id']}"
        site = info["jira"]["sites"]["acme"]
        jira_user = site["users"][0]
        jira_auth = (jira_user["email"], jira_user["api_token"])
        project = site["projects"][0]["key"] if site.get("projects") else "ACME"
        issue = requests.post(
            f"{site['url']}/rest/api/2/issue",
            json={
                "fields": {
                    "project": {"key": project},
                    "issuetype": {"name": "Incident"},
                    "summary": "benchmark",
                }
            },
            auth=jira_auth,
            timeout=10,
        )
        issue.raise_for_status()
        issue_url = f"{site['url']}/rest/api/2/issue/{issue.json()['key']}"
        # Jira's burst limit (a fidelity feature) would cap this load test; lift it for the measurement.
        requests.post(
            f"{info['jira']['url']}/_sandbox/sites/acme/settings",
            json={"burst_per_second": 1_000_000},
            timeout=10,
        ).raise_for_status()
        return {
            "servicenow_rps_1": hammer(incident_url, auth, json_headers, 1),
            "servicenow_rps_4": hammer(incident_url, auth, json_headers, 4),
            "jira_rps_1": hammer(issue_url, jira_auth, json_headers, 1),
            "jira_rps_4": hammer(issue_url, jira_auth, json_headers, 4),
        }
    finally:
        process.terminate()
        process.wait(timeout=20)


def memory_and_watermark() -> dict[str, float]:
    user = SnowUser("bench", "bench-password", "Bench")
    before = rss_mb()
    tracemalloc.start()
    app = ServiceNowApp(ServiceNowSpec(users=(user,)), Clock())
    start_traced = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    for index in range(INCIDENTS):
        app.insert(
            "incident",
            {
                "short_description": f"Benchmark incident {index}",
                "description": "Synthetic load for the sandbox benchmark",
                "impact": str(1 + index % 3),
                "urgency": str(1 + (index // 3) % 3),
                "category": f"Category {index % 40}",
                "assignment_group": "",
            },
            user="bench",
        )
    insert_seconds = time.perf_counter() - started
    traced = (tracemalloc.get_traced_memory()[0] - start_traced) / 1024 / 1024
    tracemalloc.stop()
    grown = rss_mb() - before
    server = AppServer(app).start()
    try:
        session = requests.Session()
        session.auth = (user.user_name, user.password)
        session.headers["Accept"] = "application/json"
        first = session.get(
            f"{server.url}/api/now/table/incident",
            params={
                "sysparm_query": "ORDERBYsys_updated_on",
                "sysparm_limit": "1",
                "sysparm_fields": "sys_updated_on",
            },
            timeout=30,
        ).json()["result"][0]["sys_updated_on"]
        params = {
            "sysparm_query": f"sys_updated_on>={first}^ORDERBYsys_updated_on^ORDERBYsys_id",
            "sysparm_limit": "200",
            "sysparm_fields": "sys_id,number,sys_updated_on,sys_mod_count,priority,state,assignment_group",
            "sysparm_exclude_reference_link": "true",
        }
        timings = []
        for _ in range(50):
            began = time.perf_counter()
            response = session.get(f"{server.url}/api/now/table/incident", params=params, timeout=30)
            timings.append((time.perf_counter() - began) * 1000)
            assert len(response.json()["result"]) == 200
    finally:
        server.stop()
    return {
        "incidents": INCIDENTS,
        "insert_seconds": insert_seconds,
        "memory_traced_mb": traced,
        "memory_rss_growth_mb": grown,
        "watermark_page_ms_median": statistics.median(timings),
        "watermark_page_ms_p95": sorted(timings)[int(len(timings) * 0.95) - 1],
    }


def main() -> None:
    results = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        **throughput(),
        **memory_and_watermark(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sandbox.json").write_text(json.dumps(results, indent=2) + "\n")
    rows = [
        ("ServiceNow simple GETs, 1 client", f"{results['servicenow_rps_1']:.0f} req/s", ">= 500 req/s"),
        ("ServiceNow simple GETs, 4 clients", f"{results['servicenow_rps_4']:.0f} req/s", ">= 500 req/s"),
        ("Jira simple GETs, 1 client", f"{results['jira_rps_1']:.0f} req/s", ">= 500 req/s"),
        ("Jira simple GETs, 4 clients", f"{results['jira_rps_4']:.0f} req/s", ">= 500 req/s"),
        ("100k incidents: memory (tracemalloc)", f"{results['memory_traced_mb']:.0f} MB", "measured"),
        ("100k incidents: RSS growth", f"{results['memory_rss_growth_mb']:.0f} MB", "measured"),
        ("100k incidents: bulk insert", f"{results['insert_seconds']:.1f} s", "measured"),
        (
            "Watermark page (200 rows) at 100k, median / p95",
            f"{results['watermark_page_ms_median']:.1f} / {results['watermark_page_ms_p95']:.1f} ms",
            "measured",
        ),
    ]
    print("| Sandbox figure | Measured | Target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    main()
