"""Records over plain HTTP: writes, journal fields, rules, dot-walks, display values, silent query drops."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from connector.sandbox.servicenow.seed import reference_sys_id
from tests.contract.servicenow.conftest import BERLIN, T0, Snow

STAMP = T0.strftime("%Y-%m-%d %H:%M:%S")
MIM_TEAM = reference_sys_id("sys_user_group", "MIM Team")
WEB_LB = reference_sys_id("cmdb_ci", "web-lb-01")


def create(snow: Snow, payload: dict[str, object], **params: str) -> dict[str, object]:
    response = snow.session().post(snow.table("incident"), json=payload, params=params)
    assert response.status_code == 201, response.text
    return response.json()["result"]


def patch(snow: Snow, sys_id: object, payload: dict[str, object], **params: str) -> dict[str, object]:
    response = snow.session().patch(snow.table("incident", str(sys_id)), json=payload, params=params)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def test_post_answers_201_with_location_and_ignores_unknown_and_system_fields(snow: Snow) -> None:
    response = snow.session().post(
        snow.table("incident"),
        json={
            "short_description": "x",
            "u_nonexistent": "?",
            "sys_created_by": "mallory",
            "u_supplier_eta": "tomorrow",
        },
    )
    record = response.json()["result"]
    assert response.status_code == 201
    assert response.headers["Location"] == snow.table("incident", record["sys_id"])
    assert "u_nonexistent" not in record and record["u_supplier_eta"] == "tomorrow"
    assert record["sys_created_by"] == "svc.mim-connector"
    assert all(isinstance(value, str | dict) for value in record.values())


def test_work_notes_and_comments_land_in_sys_journal_field(snow: Snow) -> None:
    record = create(snow, {"short_description": "x", "work_notes": "opened by the connector"})
    assert record["work_notes"] == ""
    other = create(snow, {"comments": "elsewhere"})
    snow.skew(3)
    updated = patch(snow, record["sys_id"], {"comments": "customer-visible", "work_notes": "internal"})
    assert (updated["comments"], updated["work_notes"], updated["sys_mod_count"]) == ("", "", "1")
    assert updated["sys_updated_on"] > record["sys_updated_on"]  # type: ignore[operator]
    response = snow.session().get(
        snow.table("sys_journal_field"),
        params={
            "sysparm_query": f"element_idIN{record['sys_id']},{other['sys_id']}^name=incident^ORDERBYsys_created_on^ORDERBYelement",
            "sysparm_fields": "element,element_id,value,sys_created_on,sys_created_by,name",
        },
    )
    rows = response.json()["result"]
    assert [(r["element"], r["value"], r["sys_created_on"]) for r in rows] == [
        ("comments", "elsewhere", STAMP),
        ("work_notes", "opened by the connector", STAMP),
        ("comments", "customer-visible", "2024-05-06 07:08:12"),
        ("work_notes", "internal", "2024-05-06 07:08:12"),
    ]
    assert {r["sys_created_by"] for r in rows} == {"svc.mim-connector"} and {r["name"] for r in rows} == {
        "incident"
    }
    either = snow.session().get(
        snow.table("sys_journal_field"),
        params={
            "sysparm_query": f"element_id={other['sys_id']}^ORelement=work_notes",
            "sysparm_fields": "value",
        },
    )
    assert len(either.json()["result"]) == 3


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT", "DELETE"])
def test_sys_journal_field_cannot_be_written_directly(snow: Snow, method: str) -> None:
    record = create(snow, {"work_notes": "n"})
    [entry] = snow.session().get(snow.table("sys_journal_field")).json()["result"]
    url = snow.table("sys_journal_field", "" if method == "POST" else entry["sys_id"])
    response = snow.session().request(
        method, url, json={"value": "rewritten", "element_id": record["sys_id"]}
    )
    assert response.status_code == 403 and response.json()["error"]["message"] == "Operation Failed"


def test_direct_priority_write_is_overwritten_by_the_lookup(snow: Snow) -> None:
    record = create(snow, {"impact": "2", "urgency": "2", "priority": "1"})
    assert record["priority"] == "3"
    assert patch(snow, record["sys_id"], {"priority": "1"})["priority"] == "3"
    assert patch(snow, record["sys_id"], {"impact": 1, "urgency": 1})["priority"] == "1"


def test_no_change_update_bumps_nothing(snow: Snow) -> None:
    record = create(snow, {"short_description": "same", "work_notes": ""})
    snow.skew(60)
    again = patch(snow, record["sys_id"], {"short_description": "same", "sys_mod_count": "42", "bogus": "x"})
    assert (again["sys_updated_on"], again["sys_mod_count"]) == (record["sys_updated_on"], "0")
    assert snow.session().get(snow.table("sys_journal_field")).json()["result"] == []


def test_resolve_needs_close_fields_then_stamps_and_close_deactivates(snow: Snow) -> None:
    record = create(snow, {"short_description": "x"})
    refused = snow.session().patch(snow.table("incident", str(record["sys_id"])), json={"state": "6"})
    assert refused.status_code == 403
    assert refused.json()["error"]["detail"].startswith("Data Policy Exception:")
    assert snow.app.get_record("incident", str(record["sys_id"]))["state"] == "1"
    resolved = patch(
        snow, record["sys_id"], {"state": "6", "close_code": "Solution provided", "close_notes": "fixed"}
    )
    assert (resolved["incident_state"], resolved["resolved_at"], resolved["active"]) == ("6", STAMP, "true")
    assert resolved["resolved_by"]["value"] == reference_sys_id("sys_user", "svc.mim-connector")  # type: ignore[index]
    closed = patch(snow, record["sys_id"], {"state": "7"})
    assert (closed["active"], closed["closed_at"]) == ("false", STAMP)
    snow.control.post("settings", {"resolve_requires_close_fields": False})
    assert patch(snow, create(snow, {})["sys_id"], {"state": "6"})["state"] == "6"


def test_major_incident_fields(snow: Snow) -> None:
    record = create(
        snow,
        {
            "short_description": "Payments down",
            "major_incident_state": "proposed",
            "business_impact": "all card payments",
        },
    )
    svc = reference_sys_id("sys_user", "svc.mim-connector")
    assert record["proposed_by"]["value"] == svc and record["proposed_on"] == STAMP  # type: ignore[index]
    child = create(
        snow,
        {"parent_incident": record["sys_id"], "correlation_id": "ACME-42", "correlation_display": "ACME"},
    )
    assert child["parent_incident"]["value"] == record["sys_id"]  # type: ignore[index]
    accepted = patch(snow, record["sys_id"], {"major_incident_state": "accepted"})
    assert accepted["promoted_by"]["value"] == svc and accepted["promoted_on"] == STAMP  # type: ignore[index]
    canceled = patch(snow, record["sys_id"], {"state": "8"})
    assert (canceled["major_incident_state"], canceled["active"]) == ("canceled", "false")
    found = snow.session().get(
        snow.table("incident"),
        params={
            "sysparm_query": "parent_incident.number=INC0010001^correlation_idSTARTSWITHacme",
            "sysparm_fields": "number",
        },
    )
    assert found.json()["result"] == [{"number": "INC0010002"}]


def test_dot_walked_fields_and_conditions(snow: Snow) -> None:
    create(snow, {"assignment_group": MIM_TEAM, "cmdb_ci": WEB_LB})
    create(snow, {"assignment_group": reference_sys_id("sys_user_group", "Service Desk")})
    response = snow.session().get(
        snow.table("incident"),
        params={
            "sysparm_query": "assignment_group.name=MIM Team^cmdb_ci.vendor.nameLIKEacme",
            "sysparm_fields": "number,assignment_group.name,cmdb_ci.business_criticality,cmdb_ci.vendor",
        },
    )
    [row] = response.json()["result"]
    assert (
        row["assignment_group.name"] == "MIM Team"
        and row["cmdb_ci.business_criticality"] == "1 - most critical"
    )
    assert row["cmdb_ci.vendor"]["value"] == reference_sys_id("core_company", "ACME Corp")


def test_display_values_true_and_all_in_the_readers_time_zone(snow: Snow) -> None:
    record = create(snow, {"assignment_group": MIM_TEAM, "state": "2", "impact": "1"})
    berlin = snow.session(BERLIN)
    fields = "state,priority,assignment_group,opened_at,sys_updated_on,number"
    shown = berlin.get(
        snow.table("incident", str(record["sys_id"])),
        params={"sysparm_display_value": "true", "sysparm_fields": fields},
    ).json()["result"]
    assert shown["state"] == "In Progress" and shown["priority"] == "3 - Moderate"
    assert shown["assignment_group"] == {
        "display_value": "MIM Team",
        "link": snow.table("sys_user_group", MIM_TEAM),
    }
    assert shown["opened_at"] == "2024-05-06 09:08:09", "CEST display of 07:08:09 UTC"
    both = berlin.get(
        snow.table("incident"),
        params={
            "sysparm_display_value": "all",
            "sysparm_exclude_reference_link": "true",
            "sysparm_fields": fields,
        },
    ).json()["result"][0]
    assert both["state"] == {"display_value": "In Progress", "value": "2"}
    assert both["assignment_group"] == {"display_value": "MIM Team", "value": MIM_TEAM}
    assert both["sys_updated_on"] == {"display_value": "2024-05-06 09:08:09", "value": STAMP}


def test_input_display_value_resolves_names_labels_and_local_times(snow: Snow) -> None:
    record = (
        snow.session(BERLIN)
        .post(
            snow.table("incident"),
            params={"sysparm_input_display_value": "true"},
            json={
                "assignment_group": "MIM Team",
                "impact": "1 - High",
                "u_supplier_eta": "x",
                "opened_at": "2024-05-06 10:00:00",
            },
        )
        .json()["result"]
    )
    assert record["assignment_group"]["value"] == MIM_TEAM and record["impact"] == "1"
    assert record["opened_at"] == "2024-05-06 08:00:00"
    child = (
        snow.session()
        .post(
            snow.table("incident"),
            params={"sysparm_input_display_value": "true"},
            json={"parent_incident": record["number"], "state": "In Progress"},
        )
        .json()["result"]
    )
    assert (child["parent_incident"]["value"], child["state"]) == (record["sys_id"], "2")


def test_invalid_query_field_is_silently_dropped_unless_configured(snow: Snow) -> None:
    create(snow, {"urgency": "1"})
    create(snow, {"urgency": "3"})
    session = snow.session()
    params = {"sysparm_query": "urgncy=1^active=true", "sysparm_fields": "urgency,no_such_field"}
    rows = session.get(snow.table("incident"), params=params).json()["result"]
    assert sorted(row["urgency"] for row in rows) == ["1", "3"], "the typo turns the filter off"
    assert all(row.keys() == {"urgency"} for row in rows)
    snow.control.post("settings", {"invalid_query_returns_no_rows": True})
    assert session.get(snow.table("incident"), params=params).json()["result"] == []


def test_problem_numbers_and_rome_state_lock(snow: Snow) -> None:
    session = snow.session()
    problem = session.post(snow.table("problem"), json={"short_description": "root cause"}).json()["result"]
    assert (problem["number"], problem["state"]) == ("PRB0040001", "101")
    create(snow, {"problem_id": problem["sys_id"]})
    snow.control.post("settings", {"problem_state_writable": False})
    refused = session.patch(snow.table("problem", problem["sys_id"]), json={"state": "102"})
    assert refused.status_code == 403
    allowed = session.patch(snow.table("problem", problem["sys_id"]), json={"cause_notes": "disk"})
    assert allowed.json()["result"]["cause_notes"] == "disk"


def test_reference_data_is_seeded(snow: Snow) -> None:
    session = snow.session()

    def names(table: str, query: str = "") -> list[str]:
        params = {"sysparm_query": query + "^ORDERBYname", "sysparm_fields": "name"}
        return [row["name"] for row in session.get(snow.table(table), params=params).json()["result"]]

    assert "MIM Team" in names("sys_user_group") and names("core_company", "vendor=true") == [
        "ACME Corp",
        "Globex",
        "Initech",
    ]
    assert names("cmdb_ci_service", "business_criticality=1 - most critical") == ["Payments", "Website"]
    assert names("cmdb_ci", "vendor.name=Globex") == ["wan-link-ams", "wan-link-fra"]
    states = session.get(
        snow.table("sys_choice"),
        params={
            "sysparm_query": "name=incident^element=state^ORDERBYsequence",
            "sysparm_fields": "value,label",
        },
    ).json()["result"]
    assert [s["value"] for s in states] == ["1", "2", "3", "6", "7", "8"]
    users = session.get(
        snow.table("sys_user"), params={"sysparm_query": "user_name=berta", "sysparm_fields": "time_zone"}
    )
    assert users.json()["result"] == [{"time_zone": "Europe/Berlin"}]


def test_concurrent_writers_serialise_on_one_record(snow: Snow) -> None:
    record = create(snow, {"short_description": "busy"})

    def note(index: int) -> int:
        response = snow.session().patch(
            snow.table("incident", str(record["sys_id"])), json={"work_notes": f"n{index}"}
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(note, range(40))) == {200}
    assert snow.app.get_record("incident", str(record["sys_id"]))["sys_mod_count"] == "40"
    journal = snow.session().get(snow.table("sys_journal_field"), params={"sysparm_fields": "value"})
    assert sorted(int(row["value"][1:]) for row in journal.json()["result"]) == list(range(40))
