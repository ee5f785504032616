"""Every call the connector makes through pysnow 0.7.17, and the pysnow traps the fidelity notes list."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pysnow
import pytest
import requests

from tests.contract.servicenow.conftest import BERLIN, T0, Snow


def requests_since(snow: Snow, seq: int) -> list[tuple[str, str]]:
    return [(e["method"], e["path"]) for e in snow.control.requests(since=seq)]


def test_create_returns_the_whole_record(snow: Snow) -> None:
    created = snow.incidents().create(
        payload={"short_description": "Payments down", "impact": "1", "urgency": "1"}
    )
    record = created.one()
    assert record["number"] == "INC0010001"
    assert (record["priority"], record["state"], record["active"]) == ("1", "1", "true")
    assert record["sys_created_by"] == record["sys_updated_by"] == "svc.mim-connector"
    assert record["sys_updated_on"] == T0.strftime("%Y-%m-%d %H:%M:%S")
    assert (
        record["opened_by"]["value"]
        == snow.app.database.table("sys_user").get(record["opened_by"]["value"])["sys_id"]
    )
    entry = snow.control.requests()[-1]
    assert (entry["method"], entry["status"], entry["user"]) == ("POST", 201, "svc.mim-connector")


def test_list_with_an_encoded_query_is_one_unpaginated_request(snow: Snow) -> None:
    for impact in ("1", "2", "3"):
        snow.incidents().create(payload={"short_description": f"impact {impact}", "impact": impact})
    seq = snow.control.last_seq()
    rows = snow.incidents().get(query="priority<=4^ORDERBYpriority", fields=["number", "priority"]).all()
    assert rows == [{"number": "INC0010001", "priority": "3"}, {"number": "INC0010002", "priority": "4"}]
    [entry] = snow.control.requests(since=seq)
    assert "sysparm_limit=10000" in entry["query"] and "sysparm_offset=0" in entry["query"]
    assert "sysparm_display_value=False" in entry["query"]


def test_update_is_get_then_put_and_put_is_a_partial_update(snow: Snow) -> None:
    record = snow.incidents().create(payload={"short_description": "x", "description": "keep me"}).one()
    seq = snow.control.last_seq()
    updated = snow.incidents().update(query={"number": record["number"]}, payload={"urgency": "1"})
    assert requests_since(snow, seq) == [
        ("GET", "/api/now/table/incident"),
        ("PUT", f"/api/now/table/incident/{record['sys_id']}"),
    ]
    assert (updated["urgency"], updated["priority"], updated["description"]) == ("1", "3", "keep me")
    assert updated["sys_mod_count"] == "1"


def test_delete_is_get_then_delete(snow: Snow) -> None:
    record = snow.incidents().create(payload={"short_description": "gone"}).one()
    seq = snow.control.last_seq()
    assert snow.incidents().delete(query={"sys_id": record["sys_id"]}) == {"status": "record deleted"}
    assert requests_since(snow, seq) == [
        ("GET", "/api/now/table/incident"),
        ("DELETE", f"/api/now/table/incident/{record['sys_id']}"),
    ]
    assert snow.control.requests(since=seq)[-1]["status"] == 204
    assert snow.app.get_record("incident", record["sys_id"]) is None


def test_params_leak_between_calls_on_one_resource(snow: Snow) -> None:
    resource = snow.incidents()
    resource.create(payload={"short_description": "first"})
    assert resource.get(fields=["sys_id"], display_value="all").all()[0].keys() == {"sys_id"}
    leaked = resource.create(payload={"short_description": "second"}).one()
    assert list(leaked) == ["sys_id"], "ServiceNow honours the leaked sysparm_fields on POST"
    assert (
        isinstance(leaked["sys_id"], dict) and leaked["sys_id"]["value"] == leaked["sys_id"]["display_value"]
    )
    fresh = snow.incidents().create(payload={"short_description": "third"}).one()
    assert fresh["short_description"] == "third"


def test_leaked_get_params_on_post_are_otherwise_ignored(snow: Snow) -> None:
    resource = snow.incidents()
    resource.get(query="number=NOPE", limit=1, offset=5)
    created = resource.create(payload={"short_description": "still created"}).one()
    assert created["number"] == "INC0010001"


def test_errors_surface_as_http_error_with_the_envelope(snow: Snow) -> None:
    with pytest.raises(requests.HTTPError) as raised:
        snow.incidents().create(payload={"state": "6"}).one()  # pysnow raises when the body is read
    assert raised.value.response.status_code == 403
    assert raised.value.response.json() == {
        "error": {
            "message": "Operation Failed",
            "detail": "Data Policy Exception: The following fields are mandatory: Resolution code, Resolution notes",
        },
        "status": "failure",
    }
    with pytest.raises(pysnow.exceptions.NoResults):
        snow.incidents().update(query={"number": "INC9999999"}, payload={"urgency": "1"})


def test_unknown_custom_params_leaked_by_attachments_are_ignored(snow: Snow) -> None:
    snow.incidents().create(payload={"short_description": "x"})
    resource = snow.incidents()
    resource.parameters.add_custom({"table_name": "incident", "table_sys_id": "abc", "file_name": "a.txt"})
    assert len(resource.get(query="").all()) == 1


def test_criterion_date_generate_is_read_in_the_users_time_zone(snow: Snow) -> None:
    snow.incidents(BERLIN).create(payload={"short_description": "at T0"})
    plain = pysnow.QueryBuilder().field("sys_updated_on").greater_than_or_equal(T0)
    assert str(plain) == "sys_updated_on>=2024-05-06 07:08:09"
    assert len(snow.incidents(BERLIN).get(query=plain).all()) == 1
    # Criterion converts to UTC *and* wraps it in gs.dateGenerate, which Berlin reads as local time:
    # 07:08:09 Berlin (CEST) is 05:08:09 UTC, so the condition still matches ...
    criterion = pysnow.criterion.Field("sys_updated_on") >= dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    assert "gs.dateGenerate" in str(criterion)
    assert len(snow.incidents(BERLIN).get(query=criterion).all()) == 1
    # ... but a watermark two hours later, which is after the record in UTC, matches it too: off by the offset.
    later = pysnow.criterion.Field("sys_updated_on") >= dt.datetime(2024, 5, 6, 9, 8, 9, tzinfo=dt.UTC)
    assert len(snow.incidents(BERLIN).get(query=later).all()) == 1
    too_late = pysnow.criterion.Field("sys_updated_on") >= dt.datetime(2024, 5, 6, 9, 8, 10, tzinfo=dt.UTC)
    assert snow.incidents(BERLIN).get(query=too_late).all() == []
    assert len(snow.incidents().get(query=later).all()) == 0, "a UTC user reads the same text as UTC"


def test_between_without_utc_conversion(snow: Snow) -> None:
    snow.incidents().create(payload={"short_description": "at T0"})
    # between() formats the wall-clock time as given; ServiceNow reads it in the user's zone.
    berlin = ZoneInfo("Europe/Berlin")
    start, end = (
        dt.datetime(2024, 5, 6, 9, 0, 0, tzinfo=berlin),
        dt.datetime(2024, 5, 6, 9, 30, 0, tzinfo=berlin),
    )
    query = pysnow.QueryBuilder().field("sys_created_on").between(start, end)
    assert len(snow.incidents(BERLIN).get(query=query).all()) == 1, "09:08 Berlin = 07:08 UTC"
    assert snow.incidents().get(query=query).all() == []
