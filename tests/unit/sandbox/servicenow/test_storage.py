"""Storage, access paths and representation, on a seeded database (no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from connector.sandbox.servicenow.catalog import Catalog
from connector.sandbox.servicenow.dates import QueryContext
from connector.sandbox.servicenow.predicates import compile_query
from connector.sandbox.servicenow.query import parse
from connector.sandbox.servicenow.render import Renderer, View
from connector.sandbox.servicenow.rules import Actor
from connector.sandbox.servicenow.seed import reference_sys_id, seed
from connector.sandbox.servicenow.select import select
from connector.sandbox.servicenow.settings import Settings
from connector.sandbox.servicenow.tables import Database
from connector.sandbox.servicenow.writes import Writer
from connector.sandbox.spec import ServiceNowSpec, SnowUser

SPEC = ServiceNowSpec(users=(SnowUser("svc", "pw", "Svc Account"),), custom_columns={"incident": ("u_eta",)})
ACTOR = Actor("svc", reference_sys_id("sys_user", "svc"), UTC)
BASE = "http://snow.test"


class Moment:
    """A settable clock for the writer."""

    def __init__(self) -> None:
        self.now = datetime(2024, 1, 1, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world() -> tuple[Database, Writer, Moment]:
    database = Database(Catalog(SPEC.custom_columns), seed=7)
    seed(database, SPEC, "2023-12-31 00:00:00")
    moment = Moment()
    return database, Writer(database, Settings(), moment), moment


def run(database: Database, query: str, *, offset: int = 0, limit: int = 100, count: bool = True):
    compiled = compile_query(
        parse(query), lambda p: database.access("incident", p), QueryContext(datetime.now(UTC), UTC)
    )
    return select(database.table("incident"), compiled, offset=offset, limit=limit, count=count)


def test_default_order_is_by_sys_id_not_insertion(world) -> None:
    database, writer, _moment = world
    inserted = [writer.insert("incident", {"short_description": str(i)}, ACTOR)["sys_id"] for i in range(8)]
    listed = [r["sys_id"] for r in run(database, "").records]
    assert listed == sorted(inserted) != inserted


def test_watermark_walk_orders_ties_by_sys_id_and_counts(world) -> None:
    database, writer, moment = world
    ids = []
    for second in (0, 0, 0, 1, 1, 2):
        moment.now = datetime(2024, 1, 1, 10, 0, second, tzinfo=UTC)
        ids.append((f"2024-01-01 10:00:0{second}", writer.insert("incident", {}, ACTOR)["sys_id"]))
    page = run(database, "sys_updated_on>=2024-01-01 10:00:00^ORDERBYsys_updated_on^ORDERBYsys_id", limit=4)
    assert [(r["sys_updated_on"], r["sys_id"]) for r in page.records] == sorted(ids)[:4]
    assert (page.total, page.more) == (6, True)
    strict = run(database, "sys_updated_on>2024-01-01 10:00:00^ORDERBYsys_updated_on", limit=1)
    assert (strict.total, strict.more) == (3, True)
    filtered = run(database, "sys_updated_on>=2024-01-01 10:00:01^priority=5^ORDERBYsys_updated_on", limit=1)
    assert (filtered.total, len(filtered.records)) == (3, 1)
    uncounted = run(
        database, "sys_updated_on>=2024-01-01 10:00:01^ORDERBYsys_updated_on", limit=3, count=False
    )
    assert (uncounted.total, uncounted.more, len(uncounted.records)) == (None, False, 3)


def test_updates_move_records_in_the_time_index_and_no_change_bumps_nothing(world) -> None:
    database, writer, moment = world
    first = writer.insert("incident", {}, ACTOR)
    moment.now = datetime(2024, 1, 1, 11, 0, 0, tzinfo=UTC)
    assert writer.update("incident", first["sys_id"], {"priority": "1", "sys_mod_count": "9"}, ACTOR) is first
    moved = writer.update("incident", first["sys_id"], {"impact": "1"}, ACTOR)
    assert (moved["sys_updated_on"], moved["sys_mod_count"]) == ("2024-01-01 11:00:00", "1")
    assert [r["sys_id"] for r in run(database, "sys_updated_on>=2024-01-01 10:30:00").records] == [
        first["sys_id"]
    ]
    assert run(database, "sys_updated_on<2024-01-01 10:30:00").total == 0


def test_journal_entries_are_indexed_by_element_id(world) -> None:
    database, writer, _moment = world
    incident = writer.insert("incident", {"work_notes": "first"}, ACTOR)
    writer.update(
        "incident", incident["sys_id"], {"comments": "visible", "comments_and_work_notes": "x"}, ACTOR
    )
    journal = database.table("sys_journal_field")
    compiled = compile_query(
        parse(f"element_idIN{incident['sys_id']},nothing^ORDERBYelement"),
        lambda p: database.access("sys_journal_field", p),
        QueryContext(datetime.now(UTC), UTC),
    )
    page = select(journal, compiled, offset=0, limit=10, count=True)
    assert [(r["element"], r["value"], r["sys_created_by"]) for r in page.records] == [
        ("comments", "visible", "svc"),
        ("work_notes", "first", "svc"),
    ]
    assert database.table("incident").get(incident["sys_id"])["sys_mod_count"] == "1"


def test_render_plain_display_all_and_dot_walks(world) -> None:
    database, writer, _moment = world
    group = reference_sys_id("sys_user_group", "MIM Team")
    ci = reference_sys_id("cmdb_ci", "web-lb-01")
    record = writer.insert(
        "incident",
        {"assignment_group": group, "cmdb_ci": ci, "state": "2", "work_notes": "n", "u_eta": "soon"},
        ACTOR,
    )
    renderer = Renderer(database, BASE, ZoneInfo("Europe/Berlin"))
    plain = renderer.render("incident", [record], View())[0]
    assert plain["assignment_group"] == {
        "link": f"{BASE}/api/now/table/sys_user_group/{group}",
        "value": group,
    }
    assert (plain["work_notes"], plain["description"], plain["u_eta"], plain["sys_class_name"]) == (
        "",
        "",
        "soon",
        "incident",
    )
    fields = ("state", "assignment_group", "opened_at", "cmdb_ci.vendor.name", "cmdb_ci.vendor", "bogus")
    shown = renderer.render("incident", [record], View(renderer.valid_fields("incident", fields), "true"))[0]
    assert shown == {
        "state": "In Progress",
        "assignment_group": {
            "display_value": "MIM Team",
            "link": f"{BASE}/api/now/table/sys_user_group/{group}",
        },
        "opened_at": "2024-01-01 11:00:00",
        "cmdb_ci.vendor.name": "ACME Corp",
        "cmdb_ci.vendor": {
            "display_value": "ACME Corp",
            "link": f"{BASE}/api/now/table/core_company/{reference_sys_id('core_company', 'ACME Corp')}",
        },
    }
    both = renderer.render(
        "incident", [record], View(("state", "assignment_group", "work_notes"), "all", True)
    )[0]
    assert both == {
        "state": {"display_value": "In Progress", "value": "2"},
        "assignment_group": {"display_value": "MIM Team", "value": group},
        "work_notes": {"display_value": "", "value": ""},
    }
    unlinked = renderer.render("incident", [record], View(("assignment_group", "caller_id"), "false", True))[
        0
    ]
    assert unlinked == {"assignment_group": group, "caller_id": ""}


def test_numbers_and_sys_ids() -> None:
    database = Database(Catalog(), seed=1)
    assert [database.next_number("incident"), database.next_number("incident")] == [
        "INC0010001",
        "INC0010002",
    ]
    assert database.next_number("problem") == "PRB0040001"
    assert database.next_number("sys_user") is None
    sys_id = database.new_sys_id()
    assert len(sys_id) == 32 and sys_id == sys_id.lower() and int(sys_id, 16) >= 0
