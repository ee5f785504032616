"""Answers no simulator gives on purpose, at the adapter boundary: the real clients (pysnow, python-jira)
read them through ``responses`` and the adapters raise the classified error, in one line, with no
secret and no chained traceback.

Truncated JSON, a proxy's multi-line text or HTML page on a read and on a write, a login page with
200, a connection reset on a read. Covered against the simulators and not repeated here: a
hibernating instance's HTML page with 200 (tests/adapters/test_servicenow_adapter.py), a write
whose connection drops after commit (both adapters' tests), refused and unreachable connections
(tests/unit/test_transport.py). No server: this file is in the fast tier.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
import responses

from connector.config.connector_file import JiraSite, ServiceNowSite
from connector.core.errors import ConnectorError, Unavailable, UncertainOutcome
from connector.http.retry import RetryPolicy
from connector.jira.adapter import JiraAdapter
from connector.servicenow.adapter import ServiceNowAdapter
from tests.factories import FakeClock

ONCE = RetryPolicy(attempts=1)
"""One attempt: the classification is the point, not the retries."""
SNOW = "https://acme.service-now.com"
JIRA = "https://acme.atlassian.net"
SNOW_PASSWORD = "Snow-Pa55-for-client-errors-91c2"
JIRA_TOKEN = "Jira-Token-for-client-errors-4d7e"
SYS_ID = "0123456789abcdef0123456789abcdef"
INCIDENTS = f"{SNOW}/api/now/table/incident"
SERVER_INFO = {
    "baseUrl": JIRA,
    "version": "1001.0.0-SNAPSHOT",
    "versionNumbers": [1001, 0, 0],
    "deploymentType": "Cloud",
    "buildNumber": 100,
    "serverTitle": "Jira",
}
PROXY_PAGE = f"""<html>
  <head><title>502 Bad Gateway</title></head>
  <body>
    <h1>Bad Gateway</h1>
    <p>The upstream answered nothing. Request: Authorization {JIRA_TOKEN} {SNOW_PASSWORD}</p>
  </body>
</html>
"""


@pytest.fixture(autouse=True)
def everything_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Debug logs too (the clients' own included): a secret must reach none of them."""
    caplog.set_level(logging.DEBUG)


@pytest.fixture
def answers() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def snow(monkeypatch: pytest.MonkeyPatch) -> Iterator[ServiceNowAdapter]:
    monkeypatch.setenv("CLIENT_ERRORS_SN_PASSWORD", SNOW_PASSWORD)
    site = ServiceNowSite.model_validate(
        {
            "instance_url": SNOW,
            "auth": {"type": "basic", "username": "svc.mim", "password": "${CLIENT_ERRORS_SN_PASSWORD}"},
        }
    )
    clock = FakeClock()
    adapter = ServiceNowAdapter(site, policy=ONCE, sleep=clock.sleep, clock=clock)
    yield adapter
    adapter.close()


@pytest.fixture
def jira(answers: responses.RequestsMock, monkeypatch: pytest.MonkeyPatch) -> Iterator[JiraAdapter]:
    """A Cloud adapter that has connected (``serverInfo``) and no other request answered yet."""
    monkeypatch.setenv("CLIENT_ERRORS_JIRA_TOKEN", JIRA_TOKEN)
    answers.get(f"{JIRA}/rest/api/2/serverInfo", json=SERVER_INFO)
    answers.get(
        f"{JIRA}/rest/api/2/myself", json={"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "MIM"}
    )
    site = JiraSite.model_validate(
        {
            "url": JIRA,
            "deployment": "cloud",
            "auth": {
                "type": "api_token",
                "email": "mim@acme.example",
                "token": "${CLIENT_ERRORS_JIRA_TOKEN}",
            },
        }
    )
    clock = FakeClock()
    adapter = JiraAdapter("acme", site, policy=ONCE, sleep=clock.sleep, clock=clock)
    adapter.myself()
    yield adapter
    adapter.close()


def assert_reported_in_one_line(error: ConnectorError, caplog: pytest.LogCaptureFixture, *parts: str) -> None:
    """One line naming ``parts``; no secret in it or in the log; no client exception chained for a traceback."""
    text = str(error)
    assert "\n" not in text, text
    for part in parts:
        assert part in text, text
    for secret in (SNOW_PASSWORD, JIRA_TOKEN):
        assert secret not in text
        assert secret not in caplog.text
    assert error.__cause__ is None and error.__suppress_context__, "raised from None"


# --- ServiceNow through pysnow ---------------------------------------------------------------------------


def test_servicenow_read_answered_with_truncated_json_is_unavailable(
    answers: responses.RequestsMock, snow: ServiceNowAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    answers.get(
        INCIDENTS,
        body='{"result": [{"sys_id": "a1", "sys_updated_on": "2024-05-0',
        content_type="application/json",
    )
    with pytest.raises(Unavailable) as caught:
        list(snow.incidents_changed(datetime(2024, 5, 1, tzinfo=UTC), [], page_size=10))
    assert_reported_in_one_line(caught.value, caplog, "servicenow: GET incident", "not JSON")


def test_servicenow_write_answered_with_truncated_json_may_have_been_applied(
    answers: responses.RequestsMock, snow: ServiceNowAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    answers.patch(
        f"{INCIDENTS}/{SYS_ID}", body='{"result": {"sys_id": "01234', content_type="application/json"
    )
    with pytest.raises(UncertainOutcome) as caught:
        snow.update_incident(SYS_ID, {"state": "2"})
    assert_reported_in_one_line(caught.value, caplog, "servicenow: PATCH incident", "may have been applied")


def test_servicenow_proxy_text_page_on_a_read_is_unavailable_in_one_line(
    answers: responses.RequestsMock, snow: ServiceNowAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    page = "Service Unavailable\n\nThe server is temporarily unable to service your request.\n"
    answers.get(INCIDENTS, body=page, status=503, content_type="text/plain")
    with pytest.raises(Unavailable) as caught:
        list(snow.incidents_changed(datetime(2024, 5, 1, tzinfo=UTC), [], page_size=10))
    assert_reported_in_one_line(
        caught.value, caplog, "servicenow: GET incident -> 503 Service Unavailable The server is temporarily"
    )


def test_servicenow_proxy_html_page_on_a_write_may_have_been_applied(
    answers: responses.RequestsMock, snow: ServiceNowAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    answers.patch(f"{INCIDENTS}/{SYS_ID}", body=PROXY_PAGE, status=502, content_type="text/html")
    with pytest.raises(UncertainOutcome) as caught:
        snow.add_journal(SYS_ID, "comments", "Supplier is on it")
    assert_reported_in_one_line(
        caught.value, caplog, "servicenow: PATCH incident -> 502 an HTML page, not JSON"
    )


def test_servicenow_connection_reset_on_a_read_is_unavailable(
    answers: responses.RequestsMock, snow: ServiceNowAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    answers.get(f"{INCIDENTS}/{SYS_ID}", body=requests.ConnectionError("Connection reset by peer"))
    with pytest.raises(Unavailable) as caught:
        snow.incident(SYS_ID, [])
    assert_reported_in_one_line(caught.value, caplog, "servicenow: GET incident: no answer")


# --- Jira through python-jira ----------------------------------------------------------------------------


def test_jira_login_page_answered_200_is_unavailable_not_a_decoding_crash(
    answers: responses.RequestsMock, jira: JiraAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    page = f"<html><body><form action='/login'>Log in to continue {JIRA_TOKEN}</form></body></html>"
    answers.get(f"{JIRA}/rest/api/2/issue/ACME-1", body=page, content_type="text/html")
    with pytest.raises(Unavailable) as caught:
        jira.issue("ACME-1", ["summary"])
    assert_reported_in_one_line(caught.value, caplog, "jira:acme: GET issue ACME-1: unreadable answer")


def test_jira_read_answered_with_truncated_json_is_unavailable(
    answers: responses.RequestsMock, jira: JiraAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    answers.get(f"{JIRA}/rest/api/2/issue/ACME-1/transitions", body='{"transitions": [{"id": "11", "na')
    with pytest.raises(Unavailable) as caught:
        jira.transitions("ACME-1")
    assert_reported_in_one_line(caught.value, caplog, "jira:acme: GET", "unreadable answer")


def test_jira_write_answered_with_truncated_json_may_have_been_applied(
    answers: responses.RequestsMock, jira: JiraAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    answers.post(f"{JIRA}/rest/api/2/issue/ACME-1/comment", body='{"id": "10001", "body": "Suppl', status=201)
    with pytest.raises(UncertainOutcome) as caught:
        jira.add_comment("ACME-1", "Supplier is on it")
    assert_reported_in_one_line(
        caught.value, caplog, "jira:acme: POST issue ACME-1 comment", "unreadable answer"
    )


def test_jira_proxy_html_page_on_a_write_may_have_been_applied_in_one_line_without_the_secret(
    answers: responses.RequestsMock, jira: JiraAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    answers.put(f"{JIRA}/rest/api/2/issue/ACME-1", body=PROXY_PAGE, status=502, content_type="text/html")
    with pytest.raises(UncertainOutcome) as caught:
        jira.update_issue("ACME-1", {"summary": "Disk array degraded"})
    assert_reported_in_one_line(caught.value, caplog, "jira:acme: PUT issue ACME-1 -> 502", "Bad Gateway")


def test_jira_connection_reset_on_a_read_is_unavailable(
    answers: responses.RequestsMock, jira: JiraAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    answers.get(f"{JIRA}/rest/api/2/issue/ACME-1", body=requests.ConnectionError("Connection reset by peer"))
    with pytest.raises(Unavailable) as caught:
        jira.issue("ACME-1", ["summary"])
    assert_reported_in_one_line(caught.value, caplog, "jira:acme: GET issue ACME-1: no answer")
