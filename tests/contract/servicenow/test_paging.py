"""Paging: keyset on (sys_updated_on, sys_id) with ties, X-Total-Count, Link headers, v1 vs v2."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tests.contract.servicenow.conftest import Snow

KEYSET_ORDER = "^ORDERBYsys_updated_on^ORDERBYsys_id"


def make_incidents(snow: Snow, seconds: list[int]) -> list[tuple[str, str]]:
    """One incident per entry, written at T0 + that many seconds; returns (sys_updated_on, sys_id)."""
    made = []
    for offset in seconds:
        snow.skew(offset)
        record = snow.session().post(snow.table("incident"), json={"short_description": str(offset)}).json()
        made.append((record["result"]["sys_updated_on"], record["result"]["sys_id"]))
    snow.skew(0)
    return made


def test_keyset_paging_with_ties_in_one_second_sees_every_row_once(snow: Snow) -> None:
    made = make_incidents(snow, [0, 0, 0, 0, 1, 1, 1, 2, 5, 5])
    session = snow.session()
    seen: list[tuple[str, str]] = []
    query = "sys_updated_on>=1970-01-01 00:00:00" + KEYSET_ORDER
    while True:
        params = {"sysparm_query": query, "sysparm_limit": "3", "sysparm_fields": "sys_id,sys_updated_on"}
        page = session.get(snow.table("incident"), params=params).json()["result"]
        seen += [(row["sys_updated_on"], row["sys_id"]) for row in page]
        if len(page) < 3:
            break
        last_on, last_id = seen[-1]
        query = f"sys_updated_on>{last_on}{KEYSET_ORDER}^NQsys_updated_on={last_on}^sys_id>{last_id}"
    assert seen == sorted(made)


def test_closed_watermark_with_overlap_returns_the_boundary_again(snow: Snow) -> None:
    made = make_incidents(snow, [0, 0, 1])
    response = snow.session().get(
        snow.table("incident"),
        params={"sysparm_query": f"sys_updated_on>={made[-1][0]}{KEYSET_ORDER}", "sysparm_fields": "sys_id"},
    )
    assert [row["sys_id"] for row in response.json()["result"]] == [made[-1][1]]


def test_total_count_and_link_headers_follow_offsets(snow: Snow) -> None:
    make_incidents(snow, [0] * 5)
    session = snow.session()
    params = {"sysparm_query": "active=true^ORDERBYnumber", "sysparm_limit": "2", "sysparm_fields": "number"}
    first = session.get(snow.table("incident"), params=params)
    assert first.headers["X-Total-Count"] == "5"
    assert set(first.links) == {"first", "next", "last"}
    next_url = first.links["next"]["url"]
    assert urlsplit(next_url).netloc == urlsplit(snow.url).netloc
    assert parse_qs(urlsplit(next_url).query) == {
        "sysparm_query": ["active=true^ORDERBYnumber"],
        "sysparm_limit": ["2"],
        "sysparm_fields": ["number"],
        "sysparm_offset": ["2"],
    }
    numbers = [row["number"] for row in first.json()["result"]]
    response = first
    while "next" in response.links:
        response = session.get(response.links["next"]["url"])
        numbers += [row["number"] for row in response.json()["result"]]
    assert numbers == [f"INC001000{i}" for i in range(1, 6)]
    assert set(response.links) == {"first", "prev", "last"}
    assert parse_qs(urlsplit(response.links["last"]["url"]).query)["sysparm_offset"] == ["4"]


def test_single_page_has_no_link_header_and_flags_suppress_headers(snow: Snow) -> None:
    make_incidents(snow, [0, 0, 0])
    session = snow.session()
    whole = session.get(snow.table("incident"))
    assert "Link" not in whole.headers and whole.headers["X-Total-Count"] == "3"
    quiet = session.get(
        snow.table("incident"),
        params={
            "sysparm_limit": "1",
            "sysparm_no_count": "true",
            "sysparm_suppress_pagination_header": "TRUE",
        },
    )
    assert "Link" not in quiet.headers and "X-Total-Count" not in quiet.headers
    uncounted = session.get(snow.table("incident"), params={"sysparm_limit": "1", "sysparm_no_count": "true"})
    assert set(uncounted.links) == {"first", "next"}, "no count, so no last"


def test_default_limit_returns_everything_in_one_page(snow: Snow) -> None:
    for index in range(25):
        snow.app.insert("incident", {"short_description": str(index)}, user="svc.mim-connector")
    response = snow.session().get(snow.table("incident"), params={"sysparm_fields": "number"})
    assert len(response.json()["result"]) == 25 and "Link" not in response.headers


def test_v1_answers_404_on_an_empty_result_v2_and_default_200(snow: Snow) -> None:
    session = snow.session()
    query = {"sysparm_query": "number=INC0000000"}
    v1 = session.get(f"{snow.url}/api/now/v1/table/incident", params=query)
    assert v1.status_code == 404 and v1.json()["error"]["message"] == "No Record found"
    for path in ("/api/now/v2/table/incident", "/api/now/table/incident"):
        response = session.get(snow.url + path, params=query)
        assert (response.status_code, response.json()) == (200, {"result": []})
    snow.app.insert("incident", {"number": "INC0000000"}, user="svc.mim-connector")
    assert len(session.get(f"{snow.url}/api/now/v1/table/incident", params=query).json()["result"]) == 1


def test_name_value_params_filter_and_unknown_params_are_ignored(snow: Snow) -> None:
    snow.app.insert("incident", {"short_description": "a", "urgency": "1"}, user="svc.mim-connector")
    snow.app.insert("incident", {"short_description": "b", "urgency": "2"}, user="svc.mim-connector")
    session = snow.session()
    params = {
        "urgency": "1",
        "table_name": "incident",
        "file_name": "x.txt",
        "sysparm_fields": "short_description",
    }
    assert session.get(snow.table("incident"), params=params).json()["result"] == [{"short_description": "a"}]
    combined = {"sysparm_query": "short_description=b^NQshort_description=a", "urgency": "2"}
    rows = session.get(snow.table("incident"), params={**combined, "sysparm_fields": "short_description"})
    assert rows.json()["result"] == [{"short_description": "b"}]


def test_links_from_an_offset_off_the_page_grid(snow: Snow) -> None:
    for _ in range(5):
        snow.app.insert("incident", {}, user="svc.mim-connector")
    response = snow.session().get(
        snow.table("incident"), params={"sysparm_limit": "2", "sysparm_offset": "3"}
    )
    offsets = {
        rel: parse_qs(urlsplit(link["url"]).query)["sysparm_offset"] for rel, link in response.links.items()
    }
    assert offsets == {"first": ["0"], "prev": ["1"], "last": ["3"]}
    assert len(response.json()["result"]) == 2
