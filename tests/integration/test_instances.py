"""Several ``mim-connector run`` instances on one PostgreSQL store: they share the work, and one's death
loses nothing.

Two daemons run on a database of their own on a throwaway PostgreSQL server, against a sandbox, with
fast polls and short leases (``ttl`` 3 s, renewed every second). People comment on both sides while
they run; once all is quiet the oracle (:func:`tally`) counts, per incident and supplier: one issue,
every service desk comment in Jira once, every supplier comment in ServiceNow once, no work note
duplicated and none in Jira. In the failover test the instance holding the roles is SIGKILLed in the
middle of a burst: the survivor takes its roles and finishes the work.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from jira import JIRA
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import ProgrammingError

from connector.store.tables import instances, leases
from tests.integration.world import World
from tests.postgres import running_server
from tests.scenarios.stage import SCRIPT, DaemonProcess

CONNECTOR_USERS = ("svc.mim-connector", "mim-connector")
REF = "[mim-connector ref:"
"""Marks the comments the connector writes in Jira (a supplier's own comments carry none)."""
TTL, RENEW = 3.0, 1.0
ROLES = ("role:servicenow", "role:jira:acme", "role:jira:globex", "role:jira:initech", "role:reconciler")
_databases = itertools.count(1)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str]:
    with running_server() as url:
        yield url


@dataclass
class Pair:
    """The world, its PostgreSQL store and the two daemons (not started)."""

    world: World
    store_url: str
    db: Engine
    daemons: list[DaemonProcess]
    incidents: list[dict[str, str]] = field(default_factory=list)
    """Every incident created, with the ``sites`` (``site:PROJECT``) it is routed to, comma-joined."""
    agents: dict[str, JIRA] = field(default_factory=dict)

    def agent(self, site: str) -> JIRA:
        """Jane Doe at ``site``, one client per site for the whole test."""
        if site not in self.agents:
            self.agents[site] = self.world.agent(site)
        return self.agents[site]


@pytest.fixture
def pair(tmp_path: Path, postgres_server: str) -> Iterator[Pair]:
    name = f"instances_{next(_databases)}_{os.getpid()}"
    admin = create_engine(
        postgres_server.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    store_url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    world = World.create(tmp_path)
    tune(world.config, store_url)
    db = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    daemons = [DaemonProcess(world.config, tmp_path / f"daemon-{n}.log") for n in (1, 2)]
    try:
        yield Pair(world, store_url, db, daemons)
    finally:
        for daemon in daemons:  # both told at once: each finishes its claims in hand meanwhile
            if daemon._process is not None:
                daemon._process.terminate()
        for daemon in daemons:
            daemon.stop()
        world.close()
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def tune(config_path: Path, store_url: str) -> None:
    """Point the config at ``store_url`` with short leases, polls every 500 ms and roomy rate budgets."""
    config = yaml.safe_load(config_path.read_text())
    config["store"] = {"url": store_url, "lease": {"ttl": f"{TTL:g}s", "renew_every": f"{RENEW:g}s"}}
    config["polling"] = {
        "servicenow_interval": "500ms",
        "supplier_interval": "500ms",
        "overlap": "30s",
        "search_lag": "2s",
        "dead_letter_retry": "1s",
        "workers": 4,
    }
    config["reconcile"] = {"interval": "30s"}
    config["retry"] = {"attempts": 4, "initial_backoff": "50ms", "max_backoff": "500ms", "cooldown": "1s"}
    for site in [config["servicenow"], *(s["jira"] for s in config["suppliers"].values())]:
        site["timeout"] = "5s"
        site["rate_budget"] = {"requests_per_second": 60, "burst": 60}
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))


# --- people ------------------------------------------------------------------------------------------


def open_incident(pair: Pair, n: int, *, payments: bool) -> dict[str, str]:
    """An incident for ACME (and, on the Payments service, for Initech too) with a first public comment."""
    world = pair.world
    fields = {"assignment_group": world.acme_group(), "comments": f"Desk #{n}: customers report failures"}
    if payments:
        fields["business_service"] = world.lookup("cmdb_ci_service", "name=Payments")
    incident = world.create_incident(short_description=f"Outage {n}", **fields)
    incident["sites"] = "acme:ACME,initech:PAY" if payments else "acme:ACME"
    pair.incidents.append(incident)
    return incident


def sites_of(incident: dict[str, str]) -> list[tuple[str, str]]:
    return [(s.split(":")[0], s.split(":")[1]) for s in incident["sites"].split(",")]


def issues_by_number(pair: Pair, site: str, project: str) -> dict[str, list[Any]]:
    """The issues of ``project`` per incident number (from the summary, ``[INC…]``)."""
    found: dict[str, list[Any]] = {}
    query = f"project = {project} ORDER BY key ASC"
    for issue in pair.agent(site).search_issues(query, maxResults=False, fields="summary"):
        match = re.search(r"\[(INC\d+)\]", issue.fields.summary)
        if match:
            found.setdefault(match.group(1), []).append(issue)
    return found


def wait_for(what: str, condition: Callable[[], bool], timeout: float, daemons: list[DaemonProcess]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for daemon in daemons:
            daemon.alive()  # a daemon that died on its own fails the test with its log named
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def comment_on_both_sides(pair: Pair, incidents: list[dict[str, str]], round_: int) -> None:
    """The service desk adds a public comment and a work note; each supplier engineer comments back."""
    world = pair.world
    for incident in incidents:
        tag = f"{incident['number']} r{round_}"
        world.update_incident(incident["sys_id"], comments=f"Desk update {tag}")
        world.update_incident(incident["sys_id"], work_notes=f"INTERNAL-NOTE {tag}: penalty clause")
    for site, project in {s for i in incidents for s in sites_of(i)}:
        agent = pair.agent(site)
        mine = issues_by_number(pair, site, project)
        for incident in incidents:
            if (site, project) in sites_of(incident):
                for issue in mine.get(incident["number"], []):
                    agent.add_comment(issue.key, f"{site} engineer {incident['number']} r{round_}")


# --- the oracle ----------------------------------------------------------------------------------------


@dataclass
class Tally:
    missing: list[str] = field(default_factory=list)
    """What has not arrived (yet)."""
    wrong: list[str] = field(default_factory=list)
    """Duplicates and leaks: what no amount of waiting repairs."""


def tally(pair: Pair) -> Tally:
    """Count, for every incident and supplier, the issues and each comment and note where it belongs."""
    world, result = pair.world, Tally()
    issues = {(site, project): issues_by_number(pair, site, project) for site, project in all_sites(pair)}
    for incident in pair.incidents:
        number = incident["number"]
        journal = world.journal(incident["sys_id"])
        desk = [j["value"] for j in journal if j["element"] == "comments" and j["sys_created_by"] == "admin"]
        notes = [
            j["value"] for j in journal if j["element"] == "work_notes" and j["sys_created_by"] == "admin"
        ]
        ours = [j["value"] for j in journal if j["sys_created_by"] == "svc.mim-connector"]
        for value, count in Counter(j["value"] for j in journal if j["element"] == "work_notes").items():
            if count > 1:
                result.wrong.append(f"{number}: work note written {count} times: {value[:80]!r}")
        for site, project in sites_of(incident):
            found = issues[site, project].get(number, [])
            if len(found) > 1:
                result.wrong.append(f"{number}: {len(found)} issues at {site}: {[i.key for i in found]}")
            if not found:
                result.missing.append(f"{number}: no issue at {site}")
                continue
            bodies = [c.body for c in pair.agent(site).comments(found[0].key)]
            for text_ in desk:
                count = sum(text_ in body for body in bodies)
                if count != 1:
                    (result.wrong if count > 1 else result.missing).append(
                        f"{number}: desk comment {text_!r} {count} times at {site}"
                    )
            for note in notes:
                if any(note in body for body in bodies):
                    result.wrong.append(f"{number}: work note {note!r} reached {site}")
            for body in bodies:
                if REF in body:
                    continue
                count = sum(body in value for value in ours)
                if count != 1:
                    (result.wrong if count > 1 else result.missing).append(
                        f"{number}: {site} comment {body!r} {count} times in ServiceNow"
                    )
    return result


def all_sites(pair: Pair) -> set[tuple[str, str]]:
    return {s for incident in pair.incidents for s in sites_of(incident)}


def connector_writes_since(world: World, marks: tuple[int, int]) -> list[dict[str, Any]]:
    return [e for e in world.writes_since(marks) if e["user"] in CONNECTOR_USERS]


def settle(pair: Pair, timeout: float, daemons: list[DaemonProcess]) -> None:
    """Wait until everything arrived and the connector then wrote nothing for 3 s; fail on a duplicate."""
    deadline = time.monotonic() + timeout
    while True:
        for daemon in daemons:
            daemon.alive()
        counted = tally(pair)
        assert counted.wrong == [], counted.wrong
        if not counted.missing:
            marks = pair.world.marks()
            time.sleep(3)
            if not connector_writes_since(pair.world, marks):
                final = tally(pair)
                assert (final.missing, final.wrong) == ([], []), final
                return
        assert time.monotonic() < deadline, f"not settled: {counted.missing[:10]}"
        time.sleep(0.5)


# --- the store -----------------------------------------------------------------------------------------


def holders(pair: Pair) -> dict[str, int]:
    """Each live role lease and the pid holding it (the database's clock decides what is live)."""
    try:
        with pair.db.connect() as conn:
            now = conn.execute(select(text("now()"))).scalar_one()
            rows = conn.execute(select(leases.c.name, leases.c.pid, leases.c.expires_at)).all()
    except ProgrammingError:  # no schema yet: no daemon has opened the store
        return {}
    return {row.name: row.pid for row in rows if row.name.startswith("role:") and row.expires_at > now}


def live_instances(pair: Pair) -> list[int]:
    """The pids of the instances that joined the store and have not left it."""
    try:
        with pair.db.connect() as conn:
            return sorted(conn.execute(select(instances.c.pid)).scalars())
    except ProgrammingError:  # no schema yet: no daemon has opened the store
        return []


def state_show(pair: Pair) -> dict[str, Any]:
    result = subprocess.run(
        [SCRIPT, "state", "-c", str(pair.world.config), "show", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def writes_logged(daemon: DaemonProcess) -> int:
    """The writes a daemon's cycles reported (its workers' writes; ``cycle: … N writes`` lines)."""
    return sum(int(n) for n in re.findall(r"cycle: .*?(\d+) writes", daemon.log.read_text()))


def pid(daemon: DaemonProcess) -> int:
    assert daemon._process is not None
    return daemon._process.pid


# --- the tests -----------------------------------------------------------------------------------------


def test_two_instances_mirror_comments_both_ways_exactly_once(pair: Pair) -> None:
    first, second = pair.daemons
    first.start()
    second.start()
    wait_for("both instances to join", lambda: len(live_instances(pair)) == 2, 60, pair.daemons)
    incidents = [open_incident(pair, n, payments=n % 2 == 0) for n in range(1, 7)]
    wait_for("every issue", lambda: not tally(pair).missing, 60, pair.daemons)
    for round_ in (1, 2):
        comment_on_both_sides(pair, incidents, round_)
    settle(pair, 90, pair.daemons)

    shown = state_show(pair)
    assert sorted(i["pid"] for i in shown["instances"]) == sorted(pid(d) for d in pair.daemons)
    held = [role for i in shown["instances"] for role in i["roles"]]
    assert sorted(held) == sorted(ROLES), "every role held, each by one live instance"
    for daemon in pair.daemons:
        assert writes_logged(daemon) > 0, f"{daemon.log.name}: this instance's workers wrote nothing"


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_the_survivor_takes_the_roles_of_a_lost_instance_and_finishes_its_burst(pair: Pair, how: str) -> None:
    """``killed``: SIGKILL; its leases name a process of this host that is gone, taken at the next tick.
    ``frozen``: SIGSTOP (a hung process, or one on a host cut off): taken once they expire; then SIGKILL."""
    victim, survivor = pair.daemons
    world = pair.world
    victim.start()
    wait_for("the first instance to hold every role", lambda: set(holders(pair)) == set(ROLES), 60, [victim])
    survivor.start()
    wait_for("the second instance to join", lambda: len(live_instances(pair)) == 2, 60, pair.daemons)
    assert set(holders(pair).values()) == {pid(victim)}, "the first instance keeps the roles it renews"

    incidents = [open_incident(pair, n, payments=n % 3 == 0) for n in range(1, 31)]
    wait_for(
        "the burst to be under way",
        lambda: len(issues_by_number(pair, "acme", "ACME")) >= 5,
        60,
        pair.daemons,
    )
    for incident in incidents[:10]:
        world.update_incident(incident["sys_id"], comments=f"Desk update {incident['number']} before")
    killed_at = time.time()
    if how == "killed":
        victim.kill()
    else:
        victim.pause()
    marks = world.marks()

    taken: dict[str, float] = {}
    deadline = time.monotonic() + TTL + RENEW + 5
    while len(taken) < len(ROLES):
        now = time.time()
        for role, holder in holders(pair).items():
            if holder == pid(survivor):
                taken.setdefault(role, now - killed_at)
        assert time.monotonic() < deadline, f"roles not taken over: {sorted(set(ROLES) - set(taken))}"
        time.sleep(0.05)
    if how == "frozen":
        victim.kill()

    comment_on_both_sides(pair, incidents[10:20], 1)
    settle(pair, 120, [survivor])
    # A write's journal entry is made when its answer is sent: its request started duration_ms
    # earlier. One that started after the kill is the survivor's (the victim was reaped).
    started = [
        datetime.fromisoformat(e["time"]).timestamp() - e["duration_ms"] / 1000
        for e in connector_writes_since(world, marks)
    ]
    first_write = min((t for t in started if t > killed_at), default=None)

    print(
        f"\nfailover ({how} role holder, lease ttl {TTL:g}s, renew {RENEW:g}s): "
        + ", ".join(f"{role} after {seconds:.2f}s" for role, seconds in sorted(taken.items()))
        + (
            f"; first write by the survivor {first_write - killed_at:.2f}s after the kill"
            if first_write is not None
            else "; no write by the survivor before it held every role"
        )
    )
    assert max(taken.values()) <= TTL + RENEW + 1, taken
    shown = state_show(pair)
    assert [i["pid"] for i in shown["instances"]] == [pid(survivor)]
    assert sorted(shown["instances"][0]["roles"]) == sorted(ROLES)
