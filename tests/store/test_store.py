"""The state store's contracts, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Connection, inspect, select

from connector.store import Store
from connector.store import tables as store_schema
from connector.store.db import CHUNK, utcnow
from connector.store.migrations import SchemaTooNew, migrate
from connector.store.progress import Watermark

PARIS = ZoneInfo("Europe/Paris")


def at(hour: int, minute: int, second: int) -> datetime:
    """A time on 2026-11-22, UTC."""
    return datetime(2026, 11, 22, hour, minute, second, tzinfo=UTC)


def test_migration_builds_exactly_the_declared_schema_and_is_idempotent(store: Store) -> None:
    assert migrate(store.engine) == store_schema.SCHEMA_VERSION
    inspector = inspect(store.engine)
    assert set(inspector.get_table_names()) == set(store_schema.metadata.tables)
    for name, table in store_schema.metadata.tables.items():
        assert {c["name"] for c in inspector.get_columns(name)} == {c.name for c in table.columns}, name


def test_a_newer_schema_is_refused(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(store_schema.meta.update().values(value=str(store_schema.SCHEMA_VERSION + 1)))
    with pytest.raises(SchemaTooNew, match="this connector knows"):
        migrate(store.engine)


def test_watermarks_round_trip(store: Store) -> None:
    assert store.watermarks.get("servicenow:incident") is None
    store.watermarks.set("servicenow:incident", Watermark(at(10, 0, 0), ("a:1", "b:2")))
    store.watermarks.set("servicenow:incident", Watermark(at(10, 0, 5), ("c:7",)))
    store.watermarks.set("jira:acme", Watermark(datetime(2026, 11, 22, 11, 0, 0, 123000, tzinfo=PARIS)))
    assert store.watermarks.get("servicenow:incident") == Watermark(at(10, 0, 5), ("c:7",))
    assert store.watermarks.get("jira:acme") == Watermark(
        datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC)
    )
    assert set(store.watermarks.all()) == {"servicenow:incident", "jira:acme"}


def test_watermarks_are_stored_in_one_format(store: Store) -> None:
    store.watermarks.set("servicenow:incident", Watermark(at(10, 0, 5)))
    store.watermarks.set("jira:acme", Watermark(datetime(2026, 11, 22, 11, 0, 0, 123000, tzinfo=PARIS)))
    with store.engine.connect() as conn:
        stored = dict(
            conn.execute(select(store_schema.watermarks.c.source, store_schema.watermarks.c.position)).all()
        )
    assert stored == {
        "servicenow:incident": "2026-11-22T10:00:05+00:00",
        "jira:acme": "2026-11-22T10:00:00.123000+00:00",
    }


def test_watermarks_written_by_older_versions_read_as_the_same_instants(store: Store) -> None:
    # Before one format, ServiceNow sources held ServiceNow's text (UTC) and Jira sites ISO 8601
    # with the server's offset.
    old = {
        "servicenow:incident": "2026-11-22 10:00:05",
        "servicenow:journal": "2026-11-22 09:59:00",
        "jira:acme": "2026-11-22T11:00:00.123000+01:00",
    }
    with store.engine.begin() as conn:
        for source, position in old.items():
            conn.execute(
                store_schema.watermarks.insert().values(
                    source=source, position=position, boundary=["k:1"], updated_at=utcnow()
                )
            )
    assert store.watermarks.all() == {
        "servicenow:incident": Watermark(at(10, 0, 5), ("k:1",)),
        "servicenow:journal": Watermark(at(9, 59, 0), ("k:1",)),
        "jira:acme": Watermark(datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=UTC), ("k:1",)),
    }
    assert all(mark.position.tzinfo is not None for mark in store.watermarks.all().values())


def test_a_naive_watermark_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.watermarks.set("servicenow:incident", Watermark(datetime(2026, 11, 22, 10, 0, 0)))  # noqa: DTZ001
    assert store.watermarks.get("servicenow:incident") is None


def test_an_incident_version_keeps_its_time(store: Store) -> None:
    store.incidents.remember("s1", "INC001", 3, at(10, 0, 0), {"priority": "1"})
    store.incidents.remember("s2", "INC002", 1, None, {})
    first, second = store.incidents.get("s1"), store.incidents.get("s2")
    assert first is not None and first.sys_updated_on == at(10, 0, 0)
    assert second is not None and second.sys_updated_on is None


def test_an_incident_version_is_processed_once(store: Store) -> None:
    assert store.incidents.remember("s1", "INC001", 3, at(10, 0, 0), {"priority": "1"})
    assert not store.incidents.remember("s1", "INC001", 3, at(10, 0, 0), {"priority": "2"})
    assert not store.incidents.remember("s1", "INC001", 2, at(9, 0, 0), {"priority": "3"})
    assert store.incidents.remember("s1", "INC001", 4, at(10, 0, 1), {"priority": "2"})
    record = store.incidents.get("s1")
    assert record is not None and (record.mod_count, record.snapshot) == (4, {"priority": "2"})
    assert store.incidents.count() == 1


def test_only_one_link_per_incident_and_supplier_even_under_races(store: Store) -> None:
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claim() -> None:
        barrier.wait()
        results.append(store.links.claim("inc1", "acme", "stamp-1")[1])

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    link = store.links.get("inc1", "acme")
    assert link is not None and link.state == "creating" and link.entity == "inc1:acme"
    confirmed = store.links.confirm(link.link_id, "10001", "ACME-1", "http://x/browse/ACME-1")
    assert (confirmed.state, confirmed.jira_key) == ("linked", "ACME-1")
    assert store.links.by_issue("acme", "10001") == confirmed
    store.links.claim("inc1", "globex", "stamp-2")
    assert [link.supplier for link in store.links.for_incident("inc1")] == ["acme", "globex"]
    store.links.set_state(confirmed.link_id, "unlinked")
    assert [link.supplier for link in store.links.active()] == ["globex"]


def test_reads_of_many_incidents_answer_as_the_reads_of_each(store: Store) -> None:
    count = CHUNK + 20  # more than one IN list
    for n in range(count):
        store.incidents.remember(f"inc{n}", f"INC{n:07}", n % 5, None, {})
        if n % 3 == 0:
            store.links.claim(f"inc{n}", "acme", f"stamp-{n}")
    store.links.claim("inc0", "globex", "stamp-g")
    wanted = [f"inc{n}" for n in range(count)] + ["unknown"]
    records = store.incidents.get_many(wanted)
    assert records == {sys_id: store.incidents.get(sys_id) for sys_id in wanted if sys_id != "unknown"}
    linked = store.links.for_incidents(wanted)
    assert linked == {s: store.links.for_incident(s) for s in wanted if store.links.for_incident(s)}
    assert [link.supplier for link in linked["inc0"]] == ["acme", "globex"]


def test_shadows_per_side(store: Store) -> None:
    link, _ = store.links.claim("inc1", "acme", "s")
    store.shadows.put(link.link_id, "jira", {"summary": "A", "priority": "High"})
    store.shadows.put(link.link_id, "jira", {"summary": "B"})
    store.shadows.put(link.link_id, "servicenow", {"u_supplier_reference": "ACME-1"})
    assert store.shadows.get(link.link_id, "jira") == {"summary": "B", "priority": "High"}
    assert store.shadows.get(link.link_id, "servicenow") == {"u_supplier_reference": "ACME-1"}


def test_comment_ledger_mirrors_each_source_once(store: Store) -> None:
    link, _ = store.links.claim("inc1", "acme", "s")
    entry, new = store.comments.begin(link.link_id, "out", "journal-1", "m1")
    again, new_again = store.comments.begin(link.link_id, "out", "journal-1", "m1")
    assert (new, new_again, again.comment_id) == (True, False, entry.comment_id)
    store.comments.begin(link.link_id, "in", "journal-1", "m2")
    assert [e.direction for e in store.comments.unfinished(link.link_id)] == ["out", "in"]
    store.comments.finish(entry.comment_id, "done", "10500")
    assert store.comments.targets(link.link_id, "out") == {"10500"}
    assert [e.direction for e in store.comments.unfinished()] == ["in"]


def test_intents_record_before_and_outcome_after(store: Store) -> None:
    first = store.intents.begin("inc1:acme", "create_issue", "jira:acme/ACME", "st-1", {"summary": "x"})
    second = store.intents.begin("inc1:acme", "add_comment", "jira:acme/ACME-1", "st-2", {})
    store.intents.finish(first.intent_id, "done", {"jira_key": "ACME-1"})
    store.intents.finish(second.intent_id, "uncertain")
    third = store.intents.begin("inc2:acme", "create_issue", "jira:acme/ACME", "st-3", {})
    assert [i.stamp for i in store.intents.unfinished()] == ["st-2", "st-3"]
    assert [i.stamp for i in store.intents.unfinished("inc2:acme")] == ["st-3"]
    assert store.intents.counts() == {"done": 1, "uncertain": 1, "pending": 1}
    assert third.payload == {}


def test_claims_and_ledger_entries_share_a_transaction_even_when_taken(store: Store) -> None:
    """A taken link or comment is an answer, not an error: the transaction goes on (PostgreSQL too)."""
    with store.transaction() as conn:
        link, new = store.links.claim("inc1", "acme", "s1", conn=conn)
        again, new_again = store.links.claim("inc1", "acme", "s2", conn=conn)
        entry, fresh = store.comments.begin(link.link_id, "out", "journal-1", "m1", conn=conn)
        same, fresh_again = store.comments.begin(link.link_id, "out", "journal-1", "m9", conn=conn)
        intent = store.intents.begin("inc1:acme", "add_comment", "jira:acme/ACME-1", "m1", {}, conn=conn)
    assert (new, new_again, again.link_id, again.stamp) == (True, False, link.link_id, "s1")
    assert (fresh, fresh_again, same.comment_id, same.marker) == (True, False, entry.comment_id, "m1")
    assert [i.intent_id for i in store.intents.unfinished()] == [intent.intent_id]

    store.comments.finish(entry.comment_id, "abandoned")
    with store.transaction() as conn:
        retried, fresh = store.comments.begin(link.link_id, "out", "journal-1", "m1", conn=conn)
    assert (fresh, retried.comment_id, retried.state) == (True, entry.comment_id, "pending")
    assert [e.state for e in store.comments.unfinished()] == ["pending"]


def test_a_writes_outcome_lands_whole_or_not_at_all(store: Store) -> None:
    link, _ = store.links.claim("inc1", "acme", "s")
    intent = store.intents.begin("inc1:acme", "create_issue", "jira:acme/ACME", "s", {})
    entry, _ = store.comments.begin(link.link_id, "out", "journal-1", "m1")

    def outcome(conn: Connection) -> None:
        store.links.confirm(link.link_id, "10001", "ACME-1", "https://acme/browse/ACME-1", conn=conn)
        store.intents.finish(intent.intent_id, "done", {"jira_key": "ACME-1"}, conn=conn)
        store.comments.finish(entry.comment_id, "done", "c1", conn=conn)
        store.shadows.put(link.link_id, "jira", {"summary": "A"}, conn=conn)
        store.audit.record(
            "jira:acme", "create_issue", "ACME-1", reason="r", intent_id=intent.intent_id, conn=conn
        )

    with pytest.raises(RuntimeError), store.transaction() as conn:
        outcome(conn)
        raise RuntimeError("crash before the commit")
    assert [i.stamp for i in store.intents.unfinished()] == ["s"]
    assert [e.source_id for e in store.comments.unfinished()] == ["journal-1"]
    assert (store.links.for_incident("inc1")[0].state, store.shadows.get(link.link_id, "jira")) == (
        "creating",
        {},
    )
    assert store.audit.entries() == []

    with store.transaction() as conn:
        outcome(conn)
    assert (store.intents.unfinished(), store.comments.unfinished()) == ([], [])
    assert store.links.for_incident("inc1")[0].jira_key == "ACME-1"
    assert store.shadows.get(link.link_id, "jira") == {"summary": "A"}
    assert [e.intent_id for e in store.audit.entries()] == [intent.intent_id]


def test_audit_log(store: Store) -> None:
    store.audit.record(
        "jira:acme",
        "update_issue",
        "ACME-1",
        reason="priority changed",
        before={"p": "High"},
        after={"p": "Highest"},
    )
    store.audit.record("servicenow", "work_note", "INC001", reason="supplier comment", outcome="uncertain")
    entries = store.audit.entries()
    assert [(e.operation, e.actor, e.outcome) for e in entries] == [
        ("work_note", "test-instance", "uncertain"),
        ("update_issue", "test-instance", "done"),
    ]
    assert entries[1].before == {"p": "High"} and entries[1].at.tzinfo is not None
    assert [e.target for e in store.audit.entries(target="ACME-1")] == ["ACME-1"]


def test_dead_letters_hold_back_off_and_release(store: Store) -> None:
    now = utcnow()
    letter = store.dlq.fail("inc1:acme", "InvalidRequest", "400 bad field", now=now)
    assert (letter.attempts, letter.next_attempt_at - now) == (1, timedelta(seconds=30))
    again = store.dlq.fail("inc1:acme", "InvalidRequest", "400 bad field", now=now)
    assert (again.letter_id, again.attempts, again.next_attempt_at - now) == (
        letter.letter_id,
        2,
        timedelta(seconds=60),
    )
    assert store.dlq.hold("inc1:acme") and not store.dlq.hold("inc2:acme")
    assert store.dlq.blocked() == {"inc1:acme"}
    assert store.dlq.due(now) == []
    assert [letter.entity for letter in store.dlq.due(now + timedelta(minutes=2))] == ["inc1:acme"]
    assert store.dlq.retry_now(letter.letter_id)
    assert [letter.held_events for letter in store.dlq.due()] == [1]
    store.dlq.resolve("inc1:acme")
    assert store.dlq.blocked() == set()
    other = store.dlq.fail("inc3:acme", "ValueError", "boom")
    assert store.dlq.drop(other.letter_id) and not store.dlq.drop(other.letter_id)
    assert [letter.state for letter in store.dlq.list(None)] == ["resolved", "dropped"]


def test_an_asked_for_retry_is_due_at_once_and_failing_keeps_the_schedule(store: Store) -> None:
    now = utcnow()
    store.dlq.fail("inc1:acme", "Unavailable", "503", now=now)
    letter = store.dlq.fail("inc1:acme", "Unavailable", "503", now=now)
    assert (letter.attempts, letter.next_attempt_at, letter.manual) == (2, now + timedelta(seconds=60), False)
    assert store.dlq.retry_now(letter.letter_id)
    (asked,) = store.dlq.due(now + timedelta(seconds=1))
    assert asked.manual and asked.next_attempt_at == letter.next_attempt_at
    failed = store.dlq.fail("inc1:acme", "Unavailable", "still 503", now=now + timedelta(seconds=2))
    assert (failed.attempts, failed.next_attempt_at, failed.manual, failed.error) == (
        2,
        letter.next_attempt_at,
        False,
        "still 503",
    ), "as if the operator had not asked: no extra doubling, no later try"
    assert store.dlq.due(now + timedelta(seconds=3)) == []
    later = store.dlq.fail("inc1:acme", "Unavailable", "503", now=now + timedelta(seconds=61))
    assert (later.attempts, later.next_attempt_at) == (3, now + timedelta(seconds=61 + 120))


def test_relative_sqlite_path_is_relative_to_the_config(tmp_path: Path) -> None:
    store = Store.open("sqlite:///../var/state.db", base_dir=tmp_path / "config")
    store.close()
    assert (tmp_path / "var" / "state.db").exists()


def test_a_version_1_database_is_upgraded_in_place(store_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # the v1 shape of the tables that v2 changes, with a row in it
        conn.execute(text("CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL)"))
        conn.execute(text("INSERT INTO meta (key, value) VALUES ('schema_version', '1')"))
        conn.execute(
            text(
                "CREATE TABLE incidents (sys_id VARCHAR(32) PRIMARY KEY, number VARCHAR(40) NOT NULL, "
                "mod_count INTEGER NOT NULL, updated_on VARCHAR(19) NOT NULL, snapshot JSON NOT NULL, "
                "seen_at TIMESTAMP WITH TIME ZONE NOT NULL)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO incidents VALUES ('s1', 'INC1', 1, '2026-11-22 10:00:00', '{}', '2026-11-22 10:00:00+00')"
            )
        )
    engine.dispose()
    upgraded = Store.open(store_url)
    try:
        assert migrate(upgraded.engine) == store_schema.SCHEMA_VERSION == 6
        columns = {c["name"] for c in inspect(upgraded.engine).get_columns("incidents")}
        assert {"opened_at", "candidate"} <= columns
        assert upgraded.incidents.get("s1") is not None and upgraded.incidents.candidates() == []
        upgraded.incidents.remember(
            "s1", "INC1", 2, at(10, 1, 0), {}, opened_at="2026-11-22 09:00:00", candidate=True
        )
        assert [r.sys_id for r in upgraded.incidents.candidates(at(8, 0, 0))] == ["s1"]
        assert upgraded.incidents.candidates(at(9, 30, 0)) == []
    finally:
        upgraded.close()


def test_letters_queued_before_v5_become_dead_items_of_the_queue(store_url: str) -> None:
    from sqlalchemy import text

    from connector.store.tables import dead_letters

    opened = Store.open(store_url)
    now = at(10, 0, 0)
    try:
        with opened.engine.begin() as conn:  # a v4 store with one queued and one resolved letter
            for entity, state in (("inc1:acme", "queued"), ("inc2:acme", "resolved")):
                conn.execute(
                    dead_letters.insert().values(
                        entity=entity,
                        state=state,
                        error_type="Unavailable",
                        error="503",
                        attempts=3,
                        held_events=2,
                        first_failed_at=now,
                        last_failed_at=now,
                        next_attempt_at=now + timedelta(minutes=4),
                        manual=False,
                    )
                )
            conn.execute(text("DROP TABLE work"))
            conn.execute(text("UPDATE meta SET value = '4' WHERE key = 'schema_version'"))
        assert migrate(opened.engine) == store_schema.SCHEMA_VERSION
        (letter,) = opened.dlq.list()
        assert (letter.entity, letter.attempts, letter.held_events) == ("inc1:acme", 3, 2)
        assert letter.next_attempt_at == now + timedelta(minutes=4)
        assert opened.dlq.blocked() == {"inc1:acme"}
    finally:
        opened.close()


def test_decisions_conditions_and_clusters(store: Store) -> None:
    first = store.decisions.record(
        "s1", "p1-rule", "propose", "promote-in-place", "pending", {"priority": "1"}, ["acme"]
    )
    store.decisions.settle(first.decision_id, "proposed")
    store.decisions.record("s2", "p1-rule", "propose", "promote-in-place", "dry_run", {})
    hour_ago = utcnow() - timedelta(hours=1)
    assert store.decisions.written_since(hour_ago) == 1
    assert store.decisions.written_since(hour_ago, rule="other") == 0
    assert store.decisions.engaged("s1") == {"acme"}
    assert store.decisions.latest("s1").state == "proposed"  # type: ignore[union-attr]
    assert store.decisions.pending() == []
    since = utcnow() - timedelta(minutes=20)
    store.conditions.hold("s1", "unassigned", since)
    store.conditions.hold("s1", "unassigned", utcnow())
    assert store.conditions.all_for("s1")["unassigned"].replace(microsecond=0) == since.replace(microsecond=0)
    store.conditions.broken("s1", "unassigned")
    assert store.conditions.all_for("s1") == {}
    store.clusters.add("ci-cluster", "ci-1", "s1")
    store.clusters.add("ci-cluster", "ci-1", "s9")
    assert store.clusters.latest("ci-cluster", "ci-1").major_sys_id == "s9"  # type: ignore[union-attr]
    assert store.clusters.latest("ci-cluster", "ci-2") is None


def test_throttles_outlive_the_process_and_expire(store: Store) -> None:
    store.throttles.close("jira:acme|jira:acme", 30)
    store.throttles.close("jira:acme|jira:acme", 5)  # never shortened
    store.throttles.close("servicenow|servicenow", -1)  # already over
    left = store.throttles.open_closures()
    assert list(left) == ["jira:acme|jira:acme"] and 29 < left["jira:acme|jira:acme"] <= 30
    assert "servicenow|servicenow" not in store.throttles.open_closures()
