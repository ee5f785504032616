"""Watermark totals from the count cache agree with a full walk, across inserts, updates and deletes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from connector.sandbox.servicenow.catalog import Catalog
from connector.sandbox.servicenow.counts import CountCache, split_residual
from connector.sandbox.servicenow.dates import QueryContext
from connector.sandbox.servicenow.predicates import compile_query
from connector.sandbox.servicenow.query import parse
from connector.sandbox.servicenow.rules import Actor
from connector.sandbox.servicenow.select import select
from connector.sandbox.servicenow.settings import Settings
from connector.sandbox.servicenow.tables import Database, Table
from connector.sandbox.servicenow.writes import Writer

ACTOR = Actor("svc", "u-svc", UTC)
T0 = datetime(2024, 1, 1, tzinfo=UTC)
ORDER = "^ORDERBYsys_updated_on^ORDERBYsys_id"
FILTERS = ("active=true", "urgency=1^ORurgency=2", "impact!=3^state<7", "short_descriptionLIKE7")


def test_cached_totals_match_walked_totals_under_random_writes() -> None:
    rng = random.Random(3)
    database = Database(Catalog(), seed=3)
    clock = [T0]
    writer = Writer(database, Settings(resolve_requires_close_fields=False), lambda: clock[0])
    table = database.table("incident")
    cache = CountCache()
    context = QueryContext(T0, UTC)
    live: list[str] = []
    for step in range(600):
        clock[0] = T0 + timedelta(seconds=step // 4)
        action = rng.random()
        if action < 0.5 or not live:
            fields = {"urgency": str(rng.randint(1, 3)), "short_description": str(rng.randint(0, 99))}
            live.append(writer.insert("incident", fields, ACTOR)["sys_id"])
        elif action < 0.9:
            change = {"impact": str(rng.randint(1, 3)), "state": rng.choice(["1", "2", "7"])}
            writer.update("incident", rng.choice(live), change, ACTOR)
        else:
            writer.delete("incident", live.pop(rng.randrange(len(live))))
        if step % 7:
            continue
        watermark = (T0 + timedelta(seconds=rng.randint(0, step // 4 + 1))).strftime("%Y-%m-%d %H:%M:%S")
        operator = rng.choice([">=", ">"])
        text = f"sys_updated_on{operator}{watermark}^{rng.choice(FILTERS)}{ORDER}"
        compiled = compile_query(parse(text), lambda p: database.access("incident", p), context)
        cached = select(table, compiled, offset=0, limit=5, count=True, counts=cache)
        walked = select(table, compiled, offset=0, limit=5, count=True)
        assert (cached.total, cached.records, cached.more) == (walked.total, walked.records, walked.more), (
            text
        )


def test_only_single_block_plain_filters_are_cached() -> None:
    database = Database(Catalog(), seed=1)
    table = database.table("incident")

    def residual(text: str):
        compiled = compile_query(parse(text), lambda p: database.access("incident", p), QueryContext(T0, UTC))
        return split_residual(table, compiled)

    assert residual("sys_updated_on>=2024-01-01 00:00:00^active=true") is not None
    assert residual("sys_updated_on>=2024-01-01 00:00:00") is None, "pure ranges are bisected instead"
    assert residual("sys_updated_on>=2024-01-01 00:00:00^assignment_group.name=X") is None
    assert residual("sys_updated_on>=2024-01-01 00:00:00^assigned_to=javascript:gs.getUserID()") is None
    assert residual("sys_updated_on>=2024-01-01 00:00:00^active=true^NQactive=false") is None


@pytest.mark.parametrize("log_size", [2, 1000])
def test_change_log_reaches_back_or_says_it_cannot(log_size: int) -> None:
    table = Table("incident", log_size=log_size)
    for index in range(10):
        table.put({"sys_id": f"{index:032x}", "sys_updated_on": f"2024-01-01 00:00:{index:02d}"})
    table.put({"sys_id": f"{0:032x}", "sys_updated_on": "2024-01-01 00:01:00"})
    assert table.version == 11
    assert table.changes_since(11) == []
    last = table.changes_since(10)
    assert last == [(("2024-01-01 00:00:00", f"{0:032x}"), ("2024-01-01 00:01:00", f"{0:032x}"))]
    assert (table.changes_since(0) is None) is (log_size == 2)
