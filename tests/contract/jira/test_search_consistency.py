"""JQL dates in the user's time zone with minute precision, property JQL, and the index lag."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.contract.jira.conftest import Served, Site, cloud_client


def keys(site: Site, jql: str, client=None) -> list[str]:
    return [
        issue.key for issue in (client or site.client).search_issues(jql, maxResults=False, fields="summary")
    ]


def local_minute(moment: datetime, zone: str, offset_minutes: int = 0, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return (moment.astimezone(ZoneInfo(zone)) + timedelta(minutes=offset_minutes)).strftime(fmt)


def test_updated_literals_are_minutes_in_the_api_users_zone(site: Site) -> None:
    issue = site.new_issue()
    updated = site.served.app.peek_issue(site.name, issue.key).updated
    zone = "Europe/Berlin" if site.cloud else "Asia/Kolkata"
    floor = local_minute(updated, zone)
    project = site.project
    assert keys(site, f'project = {project} AND updated >= "{floor}"') == [issue.key], (
        "the whole minute is included"
    )
    assert keys(site, f'project = {project} AND updated >= "{local_minute(updated, zone, 1)}"') == []
    assert keys(
        site, f'project = {project} AND updated <= "{local_minute(updated, zone, 1, "%Y/%m/%d %H:%M")}"'
    ) == [issue.key]
    assert keys(
        site, f'project = {project} AND updated >= "{local_minute(updated, zone, fmt="%Y-%m-%d")}"'
    ) == [issue.key]
    assert keys(site, f"project = {project} AND updated >= -5m AND created > -1d") == [issue.key]
    assert keys(site, f"project = {project} AND updated <= -5m") == []
    utc_next_minute = local_minute(updated, "UTC", 1)
    assert keys(site, f'project = {project} AND updated < "{utc_next_minute}"') == [], (
        "a UTC wall-clock literal is an earlier instant for a user east of UTC"
    )


def test_the_same_literal_means_another_instant_for_a_utc_user(cloud: Site, served: Served) -> None:
    issue = cloud.new_issue()
    updated = served.app.peek_issue("acme", issue.key).updated
    literal = local_minute(updated, "UTC", 1)
    jane = cloud_client(served, email="jane@acme.example", token="jane-token")
    assert jane.myself()["timeZone"] == "UTC"
    assert keys(cloud, f'project = ACME AND updated < "{literal}"', client=jane) == [issue.key]
    assert keys(cloud, f'project = ACME AND updated < "{literal}"') == [], (
        "Berlin reads it an hour or two earlier"
    )
    jane.close()


def test_issue_property_clauses(site: Site) -> None:
    first, second = site.new_issue(), site.new_issue()
    site.client.add_issue_property(
        first.key, "servicenow", {"sys_id": "abc123", "priority": 1, "tags": ["p1", "mim"]}
    )
    site.client.add_issue_property(second.key, "servicenow", {"sys_id": "def456", "priority": 3})
    project = site.project
    assert keys(site, f'project = {project} AND issue.property[servicenow].sys_id = "abc123"') == [first.key]
    assert keys(site, f"project = {project} AND issue.property[servicenow].priority > 2") == [second.key]
    assert keys(site, f"project = {project} AND issue.property[servicenow].tags = mim") == [first.key]
    assert keys(
        site,
        f"project = {project} AND issue.property[servicenow].sys_id in (abc123, def456) ORDER BY key ASC",
    ) == [first.key, second.key]


def test_clauses_combine_with_and_or_not_and_order(site: Site) -> None:
    a = site.new_issue("Router down", labels=["mim-proposed"], customfield_10050="INC0010001")
    b = site.new_issue("Switch flapping", labels=["servicenow"], priority={"name": "High"})
    c = site.new_issue("Router slow")
    p = site.project
    assert keys(site, f'project = {p} AND summary ~ "router" ORDER BY key DESC') == [c.key, a.key]
    assert keys(site, f"project = {p} AND (labels = mim-proposed OR priority = High) ORDER BY key") == [
        a.key,
        b.key,
    ]
    assert keys(site, f"project = {p} AND NOT labels in (servicenow, mim-proposed) ORDER BY key") == [c.key]
    assert keys(site, f"project = {p} AND labels != servicenow") == [a.key], "!= never matches an empty field"
    assert keys(site, f"project = {p} AND labels is EMPTY") == [c.key]
    assert keys(site, f'"SNOW Ref" ~ INC0010001 AND project in ({p})') == [a.key]
    assert keys(site, f"cf[10050] ~ INC0010001 AND key in ({a.key}, {b.key})") == [a.key]
    assert keys(
        site,
        f'project = {p} AND statusCategory = "To Do" AND resolution = Unresolved ORDER BY priority ASC, key DESC',
    ) == [b.key, c.key, a.key]
    assert keys(site, f"id = {b.id}") == [b.key]


def test_search_lags_behind_writes_but_gets_are_fresh(site: Site) -> None:
    site.settings(index_lag_seconds=60)
    issue = site.new_issue("Before")
    jql = f"project = {site.project}"
    assert keys(site, jql) == [], "a new issue is not in the index yet"
    assert site.client.issue(issue.key).fields.summary == "Before"
    site.settings(index_lag_seconds=0)
    assert keys(site, jql) == [issue.key]
    site.settings(index_lag_seconds=60)
    issue.update(fields={"summary": "After"})
    [stale] = site.client.search_issues(jql, fields="summary")
    assert stale.fields.summary == "Before" and site.client.issue(issue.key).fields.summary == "After"
    issue.delete()
    assert keys(site, jql) == [issue.key], "a deleted issue lingers in search until the index catches up"


def test_reconcile_issues_makes_listed_ids_consistent(cloud: Site) -> None:
    cloud.settings(index_lag_seconds=60)
    old = cloud.new_issue("Indexed before")
    cloud.settings(index_lag_seconds=0)
    keys(cloud, "project = ACME")
    cloud.settings(index_lag_seconds=60)
    new = cloud.new_issue("Just created")
    old.update(fields={"summary": "Renamed"})
    plain = cloud.client.enhanced_search_issues("project = ACME", fields="summary")
    assert [(i.key, i.fields.summary) for i in plain] == [(old.key, "Indexed before")]
    reconciled = cloud.client.enhanced_search_issues(
        "project = ACME", fields="summary", reconcileIssues=[int(new.id), int(old.id)]
    )
    assert [(i.key, i.fields.summary) for i in reconciled] == [
        (new.key, "Just created"),
        (old.key, "Renamed"),
    ]
    too_many = cloud.http.get(
        cloud.rest("search/jql"),
        params={"jql": "project = ACME", "reconcileIssues": list(range(1, 52))},
        timeout=5,
    )
    assert too_many.status_code == 400
