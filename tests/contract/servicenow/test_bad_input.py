"""Bad input gets the platform's status and envelope, and the server keeps serving."""

from __future__ import annotations

import pytest
import requests

from tests.contract.servicenow.conftest import Snow


def envelope(response: requests.Response) -> tuple[int, str, str | None]:
    body = response.json()
    assert body["status"] == "failure"
    return response.status_code, body["error"]["message"], body["error"]["detail"]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2", b'"just a string"', b"42"])
def test_malformed_json_body(snow: Snow, body: bytes) -> None:
    session = snow.session()
    response = session.post(snow.table("incident"), data=body, headers={"Content-Type": "application/json"})
    assert envelope(response) == (400, "Exception while reading request", "The payload is not valid JSON.")
    assert session.get(snow.table("incident")).status_code == 200


def test_an_array_body_inserts_only_its_first_record(snow: Snow) -> None:
    response = snow.session().post(
        snow.table("incident"), json=[{"short_description": "a"}, {"short_description": "b"}]
    )
    assert response.status_code == 201 and response.json()["result"]["short_description"] == "a"
    assert len(snow.session().get(snow.table("incident")).json()["result"]) == 1


def test_unknown_table_and_unknown_paths(snow: Snow) -> None:
    session = snow.session()
    assert envelope(session.get(snow.table("incidnet"))) == (
        400,
        "Invalid table incidnet",
        "Table incidnet does not exist",
    )
    assert envelope(session.post(snow.table("task"), json={}))[:2] == (400, "Invalid table task")
    assert envelope(session.get(f"{snow.url}/api/now/doc")) == (
        404,
        "Requested URI does not represent any resource",
        None,
    )
    assert envelope(session.get(f"{snow.url}/api/now/table/incident/a/b"))[0] == 404


def test_unknown_record(snow: Snow) -> None:
    session = snow.session()
    missing = snow.table("incident", "0" * 32)
    expected = (404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
    assert envelope(session.get(missing)) == expected
    assert envelope(session.patch(missing, json={"urgency": "1"})) == expected
    assert envelope(session.delete(missing)) == expected


@pytest.mark.parametrize(
    ("method", "sys_id"), [("POST", "x" * 32), ("PUT", ""), ("PATCH", ""), ("DELETE", "")]
)
def test_wrong_method(snow: Snow, method: str, sys_id: str) -> None:
    response = snow.session().request(method, snow.table("incident", sys_id), json={})
    assert envelope(response)[:2] == (405, "Method not Supported")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + "c3ZjLm1pbS1jb25uZWN0b3I6d3Jvbmc="},  # svc.mim-connector:wrong
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Digest whatever"},
    ],
)
def test_bad_authentication(snow: Snow, headers: dict[str, str]) -> None:
    response = requests.get(snow.table("incident"), headers=headers, timeout=5)
    assert envelope(response) == (401, "User Not Authenticated", "Required to provide Auth information")
    assert snow.session().get(snow.table("incident")).status_code == 200


def test_head_and_method_override(snow: Snow) -> None:
    session = snow.session()
    head = session.head(snow.table("incident"))
    assert head.status_code == 200 and head.content == b"" and "X-Total-Count" in head.headers
    record = session.post(snow.table("incident"), json={"urgency": "1"}).json()["result"]
    overridden = session.post(
        snow.table("incident", record["sys_id"]),
        json={"urgency": "2"},
        headers={"X-HTTP-Method-Override": "PATCH"},
    )
    assert overridden.json()["result"]["urgency"] == "2"
    silent = session.patch(
        snow.table("incident", record["sys_id"]),
        json={"urgency": "3"},
        headers={"X-no-response-body": "true"},
    )
    assert (silent.status_code, silent.content) == (200, b"")


def test_odd_paging_parameters_fall_back_to_defaults(snow: Snow) -> None:
    snow.app.insert("incident", {}, user="svc.mim-connector")
    params = {"sysparm_limit": "many", "sysparm_offset": "-3", "sysparm_display_value": "maybe"}
    response = snow.session().get(snow.table("incident"), params=params)
    assert response.status_code == 200 and len(response.json()["result"]) == 1


def test_a_hibernating_instance_can_be_simulated_with_a_fault(snow: Snow) -> None:
    page = "<html><head><title>Instance Hibernating page</title></head></html>"
    snow.control.add_fault(
        path="^/api/now/", status=200, body=page, headers={"Content-Type": "text/html"}, count=1
    )
    with pytest.raises(requests.JSONDecodeError):
        snow.incidents().get(query="").all()
    assert snow.incidents().get(query="").all() == []
