"""ServiceNowAdapter against the ServiceNow simulator over HTTP: paging, journal, writes, errors, OAuth, secrets."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import pytest
import requests

from connector.core.errors import (
    AuthError,
    InvalidRequest,
    TicketNotAccessible,
    Unavailable,
    UncertainOutcome,
)
from connector.core.times import parse_servicenow_time
from connector.servicenow.adapter import ServiceNowAdapter
from tests.adapters.servicenow_sandbox import (
    CLIENT_SECRET,
    ENV,
    FAST,
    PASSWORD,
    SVC,
    T0,
    FakeTime,
    Served,
    serve,
    site,
    stamp,
)

KEYSET_ORDER = "ORDERBYsys_updated_on^ORDERBYsys_id"
Make = Callable[..., ServiceNowAdapter]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    running = serve()
    yield running
    running.server.stop()


@pytest.fixture
def snow(served: Served, monkeypatch: pytest.MonkeyPatch) -> Served:
    served.control.reset()
    # The adapter sets it for a loopback instance; restored after each test.
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return served


@pytest.fixture
def make(snow: Served) -> Iterator[Make]:
    made: list[ServiceNowAdapter] = []

    def build(
        *, oauth: bool = False, time_: FakeTime | None = None, **overrides: object
    ) -> ServiceNowAdapter:
        extra = {"sleep": time_.sleep, "clock": time_.clock} if time_ else {}
        adapter = ServiceNowAdapter(site(snow.url, oauth=oauth, **overrides), policy=FAST, **extra)
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        adapter.close()


def calls(snow: Served, seq: int) -> list[tuple[str, str, int]]:
    return [(e["method"], e["path"], e["status"]) for e in snow.requests_since(seq)]


# --- keyset paging ---------------------------------------------------------------------------------


def test_keyset_paging_returns_every_incident_once_in_order_across_ties(snow: Served, make: Make) -> None:
    made = [snow.insert(second) for second in [0] * 7 + [1] * 7 + [2] * 2 + [4] * 7]
    adapter = make()
    seq = snow.control.last_seq()
    fields = ["short_description", "opened_by", "opened_by.user_name"]

    seen = list(adapter.incidents_changed(T0, fields, page_size=3))

    assert [(i.sys_updated_on, i.sys_id) for i in seen] == sorted(
        (parse_servicenow_time(r["sys_updated_on"]), r["sys_id"]) for r in made
    )
    first = seen[0]
    assert first.mod_count == 0 and first.number.startswith("INC")
    assert dict(first.fields) == {
        "short_description": "test",
        "opened_by": made[0]["opened_by"],
        "opened_by.user_name": SVC.user_name,
    }
    pages = snow.requests_since(seq)
    assert len(pages) == 8, "23 rows in pages of 3: 7 full pages and a short one"
    queries = [parse_qs(page["query"]) for page in pages]
    assert queries[0]["sysparm_query"] == [f"sys_updated_on>={stamp(T0)}^{KEYSET_ORDER}"]
    last = seen[2]
    assert last.sys_updated_on is not None
    on = stamp(last.sys_updated_on)
    assert queries[1]["sysparm_query"] == [
        f"sys_updated_on>{on}^NQsys_updated_on={on}^sys_id>{last.sys_id}^{KEYSET_ORDER}"
    ]
    for query in queries:
        assert query["sysparm_limit"] == ["3"]
        assert query["sysparm_fields"] == ["sys_id,number,sys_mod_count,sys_updated_on," + ",".join(fields)]
        assert query["sysparm_exclude_reference_link"] == ["true"]
        assert query["sysparm_display_value"] == ["false"]
        assert query["sysparm_no_count"] == ["true"]


def test_simulator_orders_across_nq_blocks_wherever_orderby_stands(snow: Served) -> None:
    made = sorted((r["sys_updated_on"], r["sys_id"]) for r in (snow.insert(s) for s in [0] * 5 + [1] * 3))
    on, sys_id = made[1]
    blocks = (f"sys_updated_on>{on}", f"sys_updated_on={on}^sys_id>{sys_id}")
    session = requests.Session()
    session.auth = (SVC.user_name, PASSWORD)
    answers = []
    for query in (
        f"{blocks[0]}^NQ{blocks[1]}^{KEYSET_ORDER}",
        f"{blocks[0]}^{KEYSET_ORDER}^NQ{blocks[1]}",
        f"{KEYSET_ORDER}^{blocks[0]}^NQ{blocks[1]}",
    ):
        response = session.get(
            f"{snow.url}/api/now/table/incident",
            params={"sysparm_query": query, "sysparm_fields": "sys_id,sys_updated_on", "sysparm_limit": "4"},
            timeout=5,
        )
        answers.append([(row["sys_updated_on"], row["sys_id"]) for row in response.json()["result"]])
    session.close()
    assert answers == [made[2:6]] * 3, "the union of both blocks, ordered as a whole, then limited"


def test_rows_updated_while_paging_come_again_or_in_the_next_poll(snow: Served, make: Make) -> None:
    made = sorted((snow.insert(0) for _ in range(5)), key=lambda r: r["sys_id"])
    a, b, c, d, e = (r["sys_id"] for r in made)
    adapter = make()
    rows = adapter.incidents_changed(T0, [], page_size=2)
    first_page = [next(rows), next(rows)]
    poll_start = adapter.server_time()
    assert [i.sys_id for i in first_page] == [a, b] and poll_start == T0

    adapter.update_incident(a, {"short_description": "same second, behind the cursor"})
    snow.at(10)
    adapter.update_incident(b, {"short_description": "seen, then changed"})
    adapter.update_incident(e, {"short_description": "not yet seen, then changed"})
    rest = list(rows)

    later = T0 + timedelta(seconds=10)
    assert [(i.sys_id, i.mod_count) for i in rest] == [(c, 0), (d, 0), *sorted([(b, 1), (e, 1)])]
    assert {i.sys_updated_on for i in rest[2:]} == {later}
    assert poll_start is not None
    next_poll = {i.sys_id: i.mod_count for i in adapter.incidents_changed(poll_start, [], page_size=2)}
    assert next_poll[a] == 1, "the next poll from the poll's start re-reads the cursor's second"


@pytest.mark.parametrize("skew", [-7200, 5400])
def test_server_clock_skew_does_not_hide_records_written_after_since(
    snow: Served, make: Make, skew: int
) -> None:
    snow.insert(0)
    snow.control.set_clock(skew)
    adapter = make()
    assert adapter.server_time() is None
    before = list(adapter.incidents_changed(T0 - timedelta(days=1), [], page_size=10))
    watermark = adapter.server_time()
    assert watermark == T0 + timedelta(seconds=skew), "the server's Date header, not our clock"
    written = snow.app.insert("incident", {"short_description": "after"}, user=SVC.user_name)

    after = [i.sys_id for i in adapter.incidents_changed(watermark, [], page_size=10)]

    assert written["sys_id"] in after
    assert len(before) == 1


def test_a_page_out_of_keyset_order_stops_paging(snow: Served, make: Make) -> None:
    made = sorted((snow.insert(0) for _ in range(3)), key=lambda r: r["sys_id"])
    replayed = {k: made[0][k] for k in ("sys_id", "number", "sys_mod_count", "sys_updated_on")}
    # What a dropped condition looks like: the next page starts over instead of after the cursor.
    snow.control.add_fault(
        path="/api/now/table/incident", query="NQ", status=200, body={"result": [replayed]}
    )
    rows = make().incidents_changed(T0, [], page_size=2)
    assert [next(rows).sys_id, next(rows).sys_id] == [made[0]["sys_id"], made[1]["sys_id"]]
    with pytest.raises(InvalidRequest, match="out of keyset order"):
        next(rows)


def test_bad_watermark_and_page_size_are_refused_before_any_request(snow: Served, make: Make) -> None:
    adapter = make()
    seq = snow.control.last_seq()
    with pytest.raises(InvalidRequest, match="watermark"):
        next(adapter.incidents_changed(datetime(2024, 5, 6, 7, 8, 9), [], 10))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(InvalidRequest, match="page size"):
        next(adapter.journal_since(T0, 0))
    assert calls(snow, seq) == []


# --- journal ---------------------------------------------------------------------------------------


def test_journal_since_and_journal_of_read_incident_entries_in_order(snow: Served, make: Make) -> None:
    x = snow.insert(0, work_notes="x note 1")["sys_id"]
    y = snow.insert(0, comments="y comment 1")["sys_id"]
    snow.at(1)
    snow.app.insert(
        "problem", {"short_description": "p", "work_notes": "not an incident"}, user=SVC.user_name
    )
    adapter = make()
    adapter.update_incident(x, {"work_notes": "x note 2", "comments": "x comment 2"})
    adapter.add_journal(y, "work_notes", "y note 2")

    entries = list(adapter.journal_since(T0, page_size=2))

    stored = [r for r in snow.records("sys_journal_field") if r["name"] == "incident"]
    assert [(e.sys_created_on, e.sys_id) for e in entries] == sorted(
        (parse_servicenow_time(r["sys_created_on"]), r["sys_id"]) for r in stored
    )
    assert len(entries) == 5 and {e.created_by for e in entries} == {SVC.user_name}
    assert "not an incident" not in {e.value for e in entries}
    of_x = adapter.journal_of(x)
    assert (of_x[0].element, of_x[0].value) == ("work_notes", "x note 1")
    assert {(e.element, e.value) for e in of_x[1:]} == {
        ("work_notes", "x note 2"),
        ("comments", "x comment 2"),
    }
    assert {e.incident_sys_id for e in of_x} == {x}
    assert [e.value for e in adapter.journal_since(T0 + timedelta(seconds=1), page_size=10)] == [
        e.value for e in entries if e.sys_created_on == T0 + timedelta(seconds=1)
    ]


def test_a_journal_row_without_a_readable_creation_time_is_an_unexpected_answer(
    snow: Served, make: Make
) -> None:
    x = snow.insert(0, work_notes="x note 1")["sys_id"]
    row = next(r for r in snow.records("sys_journal_field") if r["element_id"] == x)
    bad = {**{k: row[k] for k in ("sys_id", "element", "element_id", "value", "sys_created_by")}}
    bad["sys_created_on"] = "06/05/2024 07:08:09"
    snow.control.add_fault(path="/api/now/table/sys_journal_field", status=200, body={"result": [bad]})

    with pytest.raises(Unavailable, match="sys_created_on '06/05/2024 07:08:09'"):
        list(make().journal_since(T0, page_size=10))


def test_an_incident_without_sys_updated_on_has_no_time(snow: Served, make: Make) -> None:
    made = snow.insert(0)
    row = {k: made[k] for k in ("sys_id", "number", "sys_mod_count")}
    snow.control.add_fault(path=f"/api/now/table/incident/{made['sys_id']}", status=200, body={"result": row})

    read = make().incident(made["sys_id"], [])

    assert read is not None and read.sys_id == made["sys_id"] and read.sys_updated_on is None


# --- writes ----------------------------------------------------------------------------------------


def test_update_incident_and_add_journal_are_one_patch_each(snow: Served, make: Make) -> None:
    sys_id = snow.insert(0)["sys_id"]
    adapter = make()
    path = f"/api/now/table/incident/{sys_id}"

    seq = snow.control.last_seq()
    assert adapter.update_incident(sys_id, {"short_description": "changed", "impact": "1"}) == 1
    update = snow.requests_since(seq)
    seq = snow.control.last_seq()
    adapter.add_journal(sys_id, "work_notes", "Supplier ACME-12 says: restarted")
    note = snow.requests_since(seq)

    assert [(r["method"], r["path"], r["query"], r["status"]) for r in update + note] == [
        ("PATCH", path, "sysparm_fields=sys_id%2Csys_mod_count", 200)
    ] * 2
    assert update[0]["body"] == {"short_description": "changed", "impact": "1"}
    assert note[0]["body"] == {"work_notes": "Supplier ACME-12 says: restarted"}
    record = snow.app.get_record("incident", sys_id) or {}
    assert (record["short_description"], record["priority"], record["sys_mod_count"]) == ("changed", "3", "2")
    journal = snow.records("sys_journal_field")
    assert [(j["element"], j["element_id"], j["value"], j["sys_created_by"]) for j in journal] == [
        ("work_notes", sys_id, "Supplier ACME-12 says: restarted", SVC.user_name)
    ]
    seq = snow.control.last_seq()
    adapter.update_incident(sys_id, {})
    adapter.add_journal(sys_id, "comments", "")
    assert calls(snow, seq) == [], "nothing to write, nothing sent"


def test_data_policy_refusal_is_an_invalid_request_not_a_permission_problem(snow: Served, make: Make) -> None:
    sys_id = snow.insert(0)["sys_id"]
    adapter = make()
    seq = snow.control.last_seq()
    with pytest.raises(InvalidRequest, match="403 Operation Failed: Data Policy Exception"):
        adapter.update_incident(sys_id, {"state": "6"})
    assert len(calls(snow, seq)) == 1


def test_patch_answered_after_commit_by_a_dropped_connection_is_uncertain_and_applied(
    snow: Served, make: Make
) -> None:
    sys_id = snow.insert(0)["sys_id"]
    adapter = make()
    snow.control.add_fault(
        path="/api/now/table/incident/", method="PATCH", when="after_commit", action="drop"
    )
    seq = snow.control.last_seq()

    with pytest.raises(UncertainOutcome, match="may have been applied"):
        adapter.add_journal(sys_id, "comments", "sent once")

    assert calls(snow, seq) == [("PATCH", f"/api/now/table/incident/{sys_id}", 0)], "never repeated"
    assert [j["value"] for j in snow.records("sys_journal_field")] == ["sent once"]


# --- reads and errors ------------------------------------------------------------------------------


def test_incident_by_sys_id_and_none_when_missing(snow: Served, make: Make) -> None:
    made = snow.insert(0, impact="2")
    adapter = make()
    found = adapter.incident(made["sys_id"], ["impact", "priority"])
    assert found is not None
    assert (found.number, found.mod_count, dict(found.fields)) == (
        made["number"],
        0,
        {"impact": "2", "priority": "4"},
    )
    assert adapter.incident("0" * 32, ["impact"]) is None
    with pytest.raises(TicketNotAccessible):
        adapter.update_incident("0" * 32, {"impact": "1"})
    with pytest.raises(InvalidRequest, match="not a sys_id"):
        adapter.incident("../sys_user", [])


def test_wrong_password_is_an_auth_error_without_retry(
    snow: Served, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SN_TEST_PASSWORD", "not-the-password")
    adapter = make()
    seq = snow.control.last_seq()
    with pytest.raises(AuthError, match="401 User Not Authenticated"):
        adapter.incident("0" * 32, [])
    assert calls(snow, seq) == [("GET", f"/api/now/table/incident/{'0' * 32}", 401)]


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_keeps_every_request_away_until_retry_after_expires(snow: Served, make: Make, form: str) -> None:
    fake = FakeTime()
    adapter = make(time_=fake)
    header = (
        "7" if form == "seconds" else format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    )
    floor = 7 if form == "seconds" else 28
    snow.control.add_fault(
        path="/api/now/table/incident", status=429, headers={"Retry-After": header}, count=1
    )
    seq = snow.control.last_seq()

    rows = list(adapter.incidents_changed(T0, [], page_size=10))

    assert rows == []
    assert [status for _m, _p, status in calls(snow, seq)] == [429, 200]
    assert sum(fake.sleeps) >= floor, "fake time only moves by sleeping: the retry waited out Retry-After"


def test_503_is_retried_then_succeeds(snow: Served, make: Make) -> None:
    sys_id = snow.insert(0)["sys_id"]
    adapter = make()
    snow.control.add_fault(path="/api/now/table/incident/", method="GET", status=503, count=1)
    seq = snow.control.last_seq()
    assert adapter.incident(sys_id, []) is not None
    assert [status for _m, _p, status in calls(snow, seq)] == [503, 200]


def test_get_timing_out_is_retried(snow: Served, make: Make) -> None:
    sys_id = snow.insert(0)["sys_id"]
    adapter = make(timeout="300ms")
    fault = snow.control.add_fault(path="/api/now/table/incident/", method="GET", delay_ms=900, count=1)
    started = time.monotonic()

    assert adapter.incident(sys_id, []) is not None

    assert 0.3 <= time.monotonic() - started < 0.9
    deadline = time.monotonic() + 3
    while not any(e["fault"] == fault["id"] for e in snow.requests_since(0)) and time.monotonic() < deadline:
        time.sleep(0.05)  # let the slow answer land in the journal before the next test resets it


def test_html_page_with_200_is_unavailable(snow: Served, make: Make) -> None:
    adapter = make()
    page = "<html><head><title>Instance Hibernating page</title></head><body>zzz</body></html>"
    snow.control.add_fault(
        path="/api/now/table/incident", status=200, body=page, headers={"Content-Type": "text/html"}
    )
    seq = snow.control.last_seq()
    with pytest.raises(Unavailable, match="HTML page"):
        list(adapter.incidents_changed(T0, [], page_size=10))
    assert len(calls(snow, seq)) == FAST.attempts


# --- OAuth -----------------------------------------------------------------------------------------


def token_calls(snow: Served, seq: int) -> list[tuple[str, int]]:
    """(what, status) of each request: the grant type for token requests, else the method."""
    out = []
    for entry in snow.requests_since(seq):
        if entry["path"] == "/oauth_token.do":
            out.append((parse_qs(entry["body"])["grant_type"][0], entry["status"]))
        else:
            out.append((entry["method"], entry["status"]))
    return out


def test_oauth_password_grant_then_refresh_before_expiry_and_once_on_401(snow: Served, make: Make) -> None:
    sys_id = snow.insert(0)["sys_id"]
    fake = FakeTime()
    adapter = make(oauth=True, time_=fake)
    seq = snow.control.last_seq()

    assert adapter.incident(sys_id, []) is not None
    assert token_calls(snow, seq) == [("password", 200), ("GET", 200)]
    grant, read = snow.requests_since(seq)
    assert read["user"] == SVC.user_name
    assert {k: v[0] for k, v in parse_qs(grant["body"]).items()}.keys() == {
        "grant_type",
        "username",
        "password",
        "client_id",
        "client_secret",
    }, "client credentials in the form, as ServiceNow documents the grant"

    seq = snow.control.last_seq()
    fake.advance(timedelta(seconds=1780))
    adapter.add_journal(sys_id, "comments", "after a proactive refresh")
    assert token_calls(snow, seq) == [("refresh_token", 200), ("PATCH", 200)]
    refresh = parse_qs(snow.requests_since(seq)[0]["body"])
    assert set(refresh) == {"grant_type", "refresh_token", "client_id", "client_secret"}, "no leaked params"

    seq = snow.control.last_seq()
    snow.control.set_clock(3600)  # the server now holds our access token for expired
    assert adapter.incident(sys_id, []) is not None
    assert token_calls(snow, seq) == [("GET", 401), ("refresh_token", 200), ("GET", 200)]

    seq = snow.control.last_seq()
    snow.control.set_clock(3600 + 101 * 86400)  # and the refresh token too
    assert adapter.incident(sys_id, []) is not None
    assert token_calls(snow, seq) == [("GET", 401), ("refresh_token", 401), ("password", 200), ("GET", 200)]


def test_oauth_token_expired_by_the_wall_clock_is_renewed_before_sending(snow: Served, make: Make) -> None:
    snow.control.post("settings", {"token_ttl_seconds": 1})
    adapter = make(oauth=True, time_=FakeTime())
    assert adapter.incident("0" * 32, []) is None
    time.sleep(1.6)  # oauthlib checks round(time()) + expires_in; our fake monotonic clock stood still
    seq = snow.control.last_seq()
    assert adapter.incident("0" * 32, []) is None
    assert token_calls(snow, seq) == [("refresh_token", 200), ("GET", 404)]


def test_oauth_refused_credentials_are_an_auth_error(
    snow: Served, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SN_TEST_CLIENT_SECRET", "Recognisable-Wrong-Secret-99")
    adapter = make(oauth=True)
    seq = snow.control.last_seq()
    with pytest.raises(AuthError, match="password grant"):
        adapter.incident("0" * 32, [])
    assert token_calls(snow, seq) == [("password", 401)]


def test_secrets_never_reach_messages_or_logs(
    snow: Served, make: Make, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.DEBUG)
    sys_id = snow.insert(0)["sys_id"]
    messages = []
    oauth = make(oauth=True)
    oauth.add_journal(sys_id, "work_notes", "via oauth")
    snow.control.set_clock(3600)
    assert oauth.incident(sys_id, ["short_description"]) is not None
    snow.control.add_fault(path="/api/now/table/incident", status=500, count=FAST.attempts)
    with pytest.raises(Unavailable) as unavailable:
        oauth.incident(sys_id, [])
    messages.append(str(unavailable.value))
    monkeypatch.setenv("SN_TEST_PASSWORD", "Recognisable-Wrong-Pa55-11")
    for adapter in (make(), make(oauth=True)):
        with pytest.raises(AuthError) as refused:
            adapter.incident(sys_id, [])
        messages.append(str(refused.value))

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged, "the clients did log at DEBUG"
    for secret in (PASSWORD, CLIENT_SECRET, "Recognisable-Wrong-Pa55-11"):
        assert secret not in logged
        assert not any(secret in message for message in messages)
