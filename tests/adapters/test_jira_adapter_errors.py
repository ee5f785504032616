"""JiraAdapter when Jira says no: bad credentials, 429s and their scopes, answers lost after commit.

Sleep and the monotonic clock are fake (:class:`FakeTime`), so waits are asserted, not waited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from connector.core.errors import AuthError, FatalError, RateLimited, Unavailable, UncertainOutcome
from connector.core.secrets import UnresolvedSecret
from connector.http.transport import THROTTLE_MARGIN
from connector.jira.adapter import JiraAdapter
from tests.adapters.jira_sandbox import (
    ACME_TOKEN,
    GLOBEX_PASSWORD,
    GLOBEX_PAT,
    NO_RETRIES,
    Jira,
    Served,
    make_jira,
    serve,
    site_config,
)

STAMP = {"mim-connector": {"stamp": "INC0010002@mim-connector"}}


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    yield from serve()


@pytest.fixture(params=["cloud", "datacenter"])
def deployment(request: pytest.FixtureRequest, served: Served) -> str:
    served.control.reset()
    return str(request.param)


@pytest.fixture
def jira(served: Served, deployment: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Jira]:
    made = make_jira(served, deployment, monkeypatch)
    made.adapter.myself()
    yield made
    made.adapter.close()


@pytest.fixture
def strict(served: Served, deployment: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Jira]:
    """An adapter that does not retry: a 429 surfaces as ``RateLimited`` and leaves its scope closed."""
    made = make_jira(served, deployment, monkeypatch, policy=NO_RETRIES)
    made.adapter.myself()
    yield made
    made.adapter.close()


def _issue_path(jira: Jira, key: str) -> str:
    return f"^/{jira.name}/rest/api/2/issue/{key}$"


# --- credentials ---------------------------------------------------------------------------------------


def test_bad_credentials_are_an_auth_error_that_leaks_no_secret(
    served: Served, deployment: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-secret-3c1d9e8f77"
    monkeypatch.setenv("WRONG_JIRA_TOKEN", wrong)
    auth = (
        {"type": "api_token", "email": "mim@acme.example", "token": "${WRONG_JIRA_TOKEN}"}
        if deployment == "cloud"
        else {"type": "pat", "token": "${WRONG_JIRA_TOKEN}"}
    )
    adapter = JiraAdapter("site", site_config(served, deployment, auth=auth))
    with pytest.raises(AuthError) as caught:
        adapter.myself()
    adapter.close()
    message = str(caught.value)
    assert message.startswith("jira:site: GET myself -> 401")
    for secret in (wrong, ACME_TOKEN, GLOBEX_PAT):
        assert secret not in message and secret not in caplog.text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_data_center_basic_auth_and_an_unset_variable(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.control.reset()
    auth = {"type": "basic", "username": "mim-connector", "password": "${GLOBEX_JIRA_PASSWORD}"}
    config = site_config(served, "datacenter", auth=auth)
    monkeypatch.delenv("GLOBEX_JIRA_PASSWORD", raising=False)
    with pytest.raises(UnresolvedSecret, match="GLOBEX_JIRA_PASSWORD is not set"):
        JiraAdapter("globex", config)
    monkeypatch.setenv("GLOBEX_JIRA_PASSWORD", GLOBEX_PASSWORD)
    adapter = JiraAdapter("globex", config)
    assert adapter.myself().account_id == "mim-connector"
    adapter.close()


def test_a_deployment_that_does_not_match_the_site_is_fatal(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GLOBEX_JIRA_PAT", GLOBEX_PAT)
    config = site_config(served, "datacenter", url=f"{served.url}/acme")
    with pytest.raises(FatalError, match="deploymentType 'Cloud' but is configured as datacenter"):
        JiraAdapter("acme", config).myself()


# --- 429 -------------------------------------------------------------------------------------------------


def test_retry_after_in_seconds_keeps_the_request_back_until_it_expires(jira: Jira) -> None:
    key = jira.new_issue()
    jira.served.control.add_fault(
        path=_issue_path(jira, key), method="GET", status=429, headers={"Retry-After": "7"}, count=1
    )
    start, before = jira.seq(), jira.time.now
    assert jira.adapter.issue(key, ["summary"]) is not None
    assert [e["status"] for e in jira.journal(start)] == [429, 200]
    assert sum(jira.time.waits) >= 7 and jira.time.now - before >= 7


def test_an_http_date_retry_after_is_honoured_too(jira: Jira) -> None:
    key = jira.new_issue()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    jira.served.control.add_fault(
        path=_issue_path(jira, key), method="GET", status=429, headers={"Retry-After": when}, count=1
    )
    start = jira.seq()
    assert jira.adapter.issue(key, ["summary"]) is not None
    assert [e["status"] for e in jira.journal(start)] == [429, 200]
    assert 118 <= sum(jira.time.waits) <= 121


def test_a_429_without_reason_closes_the_whole_site(strict: Jira) -> None:
    key = strict.new_issue()
    strict.served.control.add_fault(
        path=_issue_path(strict, key), method="GET", status=429, headers={"Retry-After": "9"}, count=1
    )
    with pytest.raises(RateLimited) as caught:
        strict.adapter.issue(key, ["summary"])
    assert caught.value.retry_after == 9
    assert set(strict.adapter.transport.limiter.gate.closed()) == {f"jira:{strict.name}"}
    start = strict.seq()
    strict.adapter.transitions(key)
    assert strict.time.waits == [pytest.approx(9 + THROTTLE_MARGIN)], "the next request waited for the site"
    assert len(strict.journal(start)) == 1


def test_per_issue_write_limit_closes_only_that_issues_writes(strict: Jira) -> None:
    limited, other = strict.new_issue(), strict.new_issue()
    strict.settings(issue_write_limits=[[1, 30]])
    strict.adapter.update_issue(limited, {"summary": "first write"})
    start = strict.seq()
    with pytest.raises(RateLimited):
        strict.adapter.add_comment(limited, "second write")
    refused = strict.journal(start)[0]
    assert refused["status"] == 429
    closed = strict.adapter.transport.limiter.gate.closed()
    assert (
        set(closed) == {f"jira:{strict.name}:issue:{limited}"}
        and 0 < closed[f"jira:{strict.name}:issue:{limited}"] <= 30 + THROTTLE_MARGIN
    )

    strict.settings(issue_write_limits=[[20, 2], [100, 30]])  # let the simulator accept again
    strict.adapter.update_issue(other, {"summary": "another issue"})
    strict.adapter.issue(limited, ["summary"])
    strict.adapter.transitions(limited)
    assert strict.time.waits == [], "other issues and reads of this one went at once"
    strict.adapter.add_comment(limited, "after the window")
    assert strict.time.waits == [pytest.approx(closed[f"jira:{strict.name}:issue:{limited}"])]


def test_burst_limit_closes_only_that_endpoint(strict: Jira) -> None:
    key = strict.new_issue()
    strict.settings(burst_per_second=2)
    strict.adapter.transitions(key)
    strict.adapter.transitions(key)
    with pytest.raises(RateLimited):
        strict.adapter.transitions(key)
    assert set(strict.adapter.transport.limiter.gate.closed()) == {
        f"jira:{strict.name}:GET:issue.transitions"
    }
    strict.adapter.issue(key, ["summary"])
    assert strict.time.waits == []
    strict.settings(burst_per_second=100)  # the simulator's window is real time; ours is fake
    strict.adapter.transitions(key)
    assert len(strict.time.waits) == 1 and strict.time.waits[0] >= 1


def test_per_issue_write_windows_pace_us_before_jira_has_to(
    served: Served, deployment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    jira = make_jira(served, deployment, monkeypatch, issue_write_limits=[{"max": 2, "per": "10s"}])
    key = jira.new_issue()
    for n in range(3):
        jira.adapter.add_comment(key, f"comment {n}")
    assert jira.time.waits == [pytest.approx(10)]
    jira.adapter.close()


# --- lost answers ---------------------------------------------------------------------------------------


def test_a_create_whose_answer_is_lost_is_uncertain_and_reconciled_by_search(jira: Jira) -> None:
    jira.settings(index_lag_seconds=30)
    since = datetime.now(UTC)
    jira.served.control.add_fault(
        path=f"^/{jira.name}/rest/api/2/issue$", method="POST", when="after_commit", action="drop", count=1
    )
    start = jira.seq()
    with pytest.raises(UncertainOutcome, match="may have been applied"):
        jira.adapter.create_issue(jira.project, jira.issue_type, {"summary": "Lost answer"}, STAMP)
    assert [e["status"] for e in jira.journal(start)] == [0], "sent once, never repeated"
    created = jira.served.app.peek_issue(jira.name, f"{jira.project}-1")
    assert created is not None and created.properties == {"mim-connector": STAMP["mim-connector"]}

    assert list(jira.adapter.created_by_me_since(jira.project, since)) == [], "search has not seen it yet"
    jira.served.control.set_clock(31)
    start = jira.seq()
    found = list(jira.adapter.created_by_me_since(jira.project, since))
    assert [ref.key for ref in found] == [f"{jira.project}-1"]
    assert found[0].identity is not None and found[0].identity.stamp == "INC0010002@mim-connector"
    assert [e["path"].rsplit("/", 1)[-1] for e in jira.journal(start)] == [
        "jql" if jira.cloud else "search"
    ], "the stamp comes with the search page: no read per issue"


@pytest.mark.parametrize("body", [{}, {"id": "10001"}, {"key": None, "id": "10001"}])
def test_a_create_answered_success_without_its_issue_is_uncertain_with_one_clear_message(
    jira: Jira, body: dict[str, object]
) -> None:
    """Jira said 200 but not what it created: the issue may exist, so never a blind repeat or a crash."""
    jira.served.control.add_fault(
        path=f"^/{jira.name}/rest/api/2/issue$",
        method="POST",
        when="after_commit",
        status=200,
        body=body,
        count=1,
    )
    start = jira.seq()
    with pytest.raises(UncertainOutcome) as caught:
        jira.adapter.create_issue(jira.project, jira.issue_type, {"summary": "Answer without id"}, STAMP)
    assert str(caught.value) == (
        f"jira:{jira.name}: POST issue answered without the new issue's id and key; it may have been created"
    )
    assert [e["status"] for e in jira.journal(start)] == [200], "sent once, never repeated"
    created = jira.served.app.peek_issue(jira.name, f"{jira.project}-1")
    assert created is not None, "it was created: the stamp search will find it"


def test_an_issue_read_without_its_id_is_a_classified_error(jira: Jira) -> None:
    key = jira.new_issue()
    jira.served.control.add_fault(
        path=_issue_path(jira, key), method="GET", status=200, body={"key": key, "fields": {}}, count=5
    )
    with pytest.raises(Unavailable, match=rf"GET issue {key}: unexpected answer \(missing 'id'\)"):
        jira.adapter.issue(key, ["summary"])


# --- bad answers ----------------------------------------------------------------------------------------


def test_a_search_answer_without_issues_is_an_error_not_an_empty_page(jira: Jira) -> None:
    key = jira.new_issue()
    since = datetime.now(UTC) - timedelta(hours=1)
    # What a proxy or a broken node might answer: a 200 with a search page's shape but no issues.
    body = {"isLast": True} if jira.cloud else {"startAt": 0, "maxResults": 50, "total": 0}
    jira.served.control.add_fault(
        path=f"^/{jira.name}/rest/api/[23]/search(/jql)?$", method="GET", status=200, body=body
    )
    start = jira.seq()
    with pytest.raises(Unavailable, match=r"GET search(/jql)?: the answer has no list of issues"):
        list(jira.adapter.issues_updated_since(jira.project, since, 50))
    assert [e["status"] for e in jira.journal(start)] == [200, 200, 200], "retried like any bad answer"

    jira.served.control.clear_faults()
    jira.time.now += 3600  # past the cool-down the failed tries opened
    assert [ref.key for ref in jira.adapter.issues_updated_since(jira.project, since, 50)] == [key]
