"""429s with Jira's headers, and what python-jira's own retry makes of them."""

from __future__ import annotations

import re

import pytest
from jira import JIRAError

from tests.contract.jira.conftest import Served, Site, cloud_client, dc_client

ISO_MINUTE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\dZ$")


def test_burst_limit_per_endpoint_and_method(site: Site) -> None:
    site.settings(burst_per_second=2)
    answers = [site.http.get(site.rest("myself"), timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[-1]
    assert refused.headers["Retry-After"] == "1" and refused.headers["RateLimit-Reason"] == "jira-burst-based"
    assert refused.json() == {"errorMessages": ["Rate limit exceeded."], "errors": {}}
    if site.cloud:
        assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("2", "0")
        assert ISO_MINUTE.match(refused.headers["X-RateLimit-Reset"])
    else:
        assert (
            refused.headers["X-RateLimit-Interval-Seconds"] == "1"
            and refused.headers["X-RateLimit-FillRate"] == "2"
        )
        assert answers[0].headers["X-RateLimit-Remaining"] == "1" and answers[0].headers["retry-after"] == "0"
    assert site.http.get(site.rest("field"), timeout=5).status_code == 200, (
        "another endpoint has its own bucket"
    )
    with pytest.raises(JIRAError) as caught:
        site.client.myself()
    assert caught.value.status_code == 429


def test_per_issue_write_limit(site: Site) -> None:
    issue, other = site.new_issue(), site.new_issue()
    site.settings(issue_write_limits=[[2, 30]])
    issue.update(fields={"summary": "one"})
    site.client.add_comment(issue, "two")
    with pytest.raises(JIRAError) as caught:
        issue.update(fields={"summary": "three"})
    headers = caught.value.response.headers
    assert caught.value.status_code == 429 and headers["RateLimit-Reason"] == "jira-per-issue-on-write"
    assert 1 <= int(headers["Retry-After"]) <= 30
    assert site.client.issue(issue.key).fields.summary == "one", "reads go on, the refused write did nothing"
    other.update(fields={"summary": "another issue is not limited"})


def test_python_jira_retries_a_429_after_twice_retry_after(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("jira.resilientsession.time.sleep", slept.append)
    client = cloud_client(served, max_retries=1)
    served.control.add_fault(
        path="/acme/rest/api/2/myself$", status=429, headers={"Retry-After": "3"}, count=1
    )
    assert client.myself()["displayName"] == "MIM Connector"
    assert len(slept) == 1 and 3.0 <= slept[0] <= 6.0
    client.close()


def test_an_http_date_retry_after_crashes_python_jiras_retry(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("jira.resilientsession.time.sleep", lambda _seconds: None)
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    served.control.add_fault(path="/globex/rest/api/2/myself$", status=429, headers={"Retry-After": date})
    retrying = dc_client(served, max_retries=1)
    with pytest.raises(ValueError, match="invalid literal for int"):
        retrying.myself()
    not_retrying = dc_client(served)
    with pytest.raises(JIRAError) as caught:
        not_retrying.myself()
    assert caught.value.status_code == 429
    retrying.close()
    not_retrying.close()
