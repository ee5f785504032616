"""The cluster window's read (``opened_since``) costs the same with a year of incidents as with a day's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, insert, text

from connector.core.times import format_servicenow_time
from connector.store import Store
from connector.store.tables import incidents

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _incidents(count: int) -> list[dict[str, Any]]:
    """One incident opened every 10 minutes before NOW (20,000: about 4.5 months), every 7th open."""
    return [
        {
            "sys_id": f"{n:032x}",
            "number": f"INC{n:07d}",
            "mod_count": 1,
            "updated_on": format_servicenow_time(NOW),
            "snapshot": {"short_description": f"incident {n}"},
            "seen_at": NOW,
            "opened_at": format_servicenow_time(NOW - timedelta(minutes=10 * n)),
            "candidate": n % 7 == 0,
        }
        for n in range(count)
    ]


def test_incidents_opened_in_the_window_are_all_read_and_only_they(store: Store) -> None:
    with store.transaction() as tx:
        tx.execute(insert(incidents), _incidents(100))
    found = store.incidents.opened_since(NOW - timedelta(minutes=30))
    # Opened 0, 10, 20 and 30 minutes ago, candidates or not, in sys_id order.
    assert [record.sys_id for record in found] == [f"{n:032x}" for n in range(4)]
    paged = store.incidents.pages(store.incidents.opened_since, 2, NOW - timedelta(minutes=30))
    assert [record.sys_id for record in paged] == [f"{n:032x}" for n in range(4)]


def test_the_window_is_read_off_an_index_not_by_reading_every_incident(store: Store) -> None:
    """Each poll with new incident versions reads the window: it must not scan a year of incidents."""
    with store.transaction() as tx:
        tx.execute(insert(incidents), _incidents(20_000))
    executed: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "FROM incidents" in statement:
            executed.append((statement, parameters))

    if store.dialect == "postgresql":
        # As autovacuum would. Not on SQLite: the connector never runs ANALYZE there, and SQLite
        # without statistics plans as here (with them, it guesses a range keeps a quarter of the
        # rows and may walk the primary key in sys_id order instead).
        with store.engine.connect() as conn:
            conn.execute(text("ANALYZE incidents"))
            conn.commit()
    event.listen(store.engine, "before_cursor_execute", remember)
    try:
        assert len(store.incidents.opened_since(NOW - timedelta(minutes=30), limit=500)) == 4
    finally:
        event.remove(store.engine, "before_cursor_execute", remember)
    [(statement, parameters)] = executed
    prefix = "EXPLAIN " if store.dialect == "postgresql" else "EXPLAIN QUERY PLAN "
    with store.engine.connect() as conn:
        plan = "\n".join(str(row[-1]) for row in conn.exec_driver_sql(prefix + statement, parameters))
    assert "ix_incidents_candidate" in plan, plan
    assert "SCAN incidents" not in plan, plan  # SQLite: every row read
    assert "Seq Scan" not in plan, plan
