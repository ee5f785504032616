"""Jira values to text and back, timestamps, JQL literals and error messages (pure, no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from connector.jira.values import (
    field_authors,
    field_payload,
    field_text,
    identity_of,
    jira_message,
    jql_minute,
    jql_string,
    latest_status_change,
    status_category,
)


def test_jql_bounds_are_floored_minutes_in_the_given_zone() -> None:
    moment = datetime(2026, 11, 22, 9, 59, 59, 999000, tzinfo=UTC)
    assert jql_minute(moment, ZoneInfo("Europe/Berlin")) == "2026-11-22 10:59"
    assert jql_minute(moment, ZoneInfo("Asia/Kolkata")) == "2026-11-22 15:29"
    assert jql_minute(moment, timezone(timedelta(hours=-5))) == "2026-11-22 04:59"
    with pytest.raises(ValueError, match="timezone-aware"):
        jql_minute(datetime(2026, 11, 22), UTC)  # noqa: DTZ001 - the point of the test


def test_jql_strings_are_quoted_and_escaped() -> None:
    assert jql_string('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'


@pytest.mark.parametrize(
    ("field_id", "value", "text"),
    [
        ("priority", {"name": "High", "id": "2"}, "High"),
        ("labels", ["p1", "db", "mim"], "db mim p1"),
        ("components", [{"name": "Storage"}, {"name": "Network"}], "Network, Storage"),
        ("assignee", {"accountId": "5b10", "displayName": "Jane Doe", "name": "jane"}, "Jane Doe"),
        ("customfield_10100", {"value": "Sev 1", "id": "10001"}, "Sev 1"),
        ("customfield_10061", "2026-11-22T10:00:00.000+0000", "2026-11-22T10:00:00.000+0000"),
        ("customfield_10070", 3.0, "3.0"),
        ("assignee", None, ""),
        ("labels", [], ""),
    ],
)
def test_field_values_read_as_text(field_id: str, value: object, text: str) -> None:
    assert field_text(field_id, value) == text


@pytest.mark.parametrize(
    ("field_id", "value", "payload"),
    [
        ("priority", "High", {"name": "High"}),
        ("priority", "", None),
        ("resolution", "Done", {"name": "Done"}),
        ("labels", ["a", "b"], ["a", "b"]),
        ("labels", "a b", ["a", "b"]),
        ("components", ["Storage", "Network"], [{"name": "Storage"}, {"name": "Network"}]),
        ("components", "Storage, Network", [{"name": "Storage"}, {"name": "Network"}]),
        ("description", "two\nlines", "two\nlines"),
        ("customfield_10050", "INC0010001", "INC0010001"),
        ("assignee", {"accountId": "5b10"}, {"accountId": "5b10"}),
    ],
)
def test_field_values_are_written_as_jira_v2_expects(field_id: str, value: object, payload: object) -> None:
    assert field_payload(field_id, value) == payload


def test_status_categories_use_our_vocabulary() -> None:
    assert [status_category(k) for k in ("new", "indeterminate", "done", "undefined")] == [
        "todo",
        "in_progress",
        "done",
        "undefined",
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"errorMessages":["Issue does not exist"],"errors":{}}', "Issue does not exist"),
        (
            '{"errorMessages":[],"errors":{"summary":"You must specify a summary."}}',
            "summary: You must specify a summary.",
        ),
        (
            '{"title":"Unsupported Media Type","detail":"Content-Type \'null\' is not supported."}',
            "Content-Type 'null' is not supported.",
        ),
        ("<html>\n  <body>Hibernating</body>\n</html>", "<html> <body>Hibernating</body> </html>"),
    ],
)
def test_error_messages_come_from_jiras_envelope(body: str, message: str) -> None:
    assert jira_message(400, body) == message


def _history(history_id: str, created: str, author: str, was: str, now: str) -> dict[str, object]:
    return {
        "id": history_id,
        "created": created,
        "author": {"accountId": author, "displayName": author.title()},
        "items": [{"field": "status", "fromString": was, "toString": now}],
    }


def test_the_latest_status_change_is_the_highest_history_id_even_if_a_clock_stepped_back() -> None:
    raw = {
        "changelog": {
            "histories": [
                _history("10007", "2026-01-01T10:00:00.000+0000", "mim", "Open", "In Progress"),
                {"id": "10008", "created": "2026-01-01T10:01:00.000+0000", "items": [{"field": "labels"}]},
                # The server clock went back 90 s between the two moves.
                _history("10009", "2026-01-01T09:58:40.000+0000", "jane", "In Progress", "Resolved"),
            ]
        }
    }
    change = latest_status_change(raw, cloud=True)
    assert change is not None
    assert (change.change_id, change.author_id, change.from_status, change.to_status) == (
        "10009",
        "jane",
        "In Progress",
        "Resolved",
    )
    assert latest_status_change({"changelog": {"histories": []}}, cloud=True) is None
    assert latest_status_change({}, cloud=True) is None


def test_who_changed_each_field_last_comes_from_the_changelog_by_history_id() -> None:
    def history(history_id: str, author: str, *items: dict[str, str]) -> dict[str, object]:
        return {
            "id": history_id,
            "created": "2026-01-01T10:00:00.000+0000",
            "author": {"accountId": author},
            "items": list(items),
        }

    raw = {
        "changelog": {
            "histories": [
                history("10009", "jane", {"field": "summary", "fieldId": "summary"}),
                history("10007", "mim", {"field": "summary", "fieldId": "summary"}, {"field": "Flagged"}),
                history("10008", "mim", {"field": "SNOW Ref", "fieldId": "customfield_10050"}),
            ]
        }
    }
    assert field_authors(raw, cloud=True) == {"summary": "jane", "Flagged": "mim", "customfield_10050": "mim"}
    assert field_authors({}, cloud=True) == {}


def test_our_stamp_property_is_read_whole_and_only_when_it_has_a_stamp() -> None:
    value = {
        "stamp": "ab12",
        "incident_sys_id": "sys1",
        "incident_number": "INC0010001",
        "instance": "mim-connector",
        "servicenow": "acme.service-now.com",
    }
    identity = identity_of({"properties": {"mim-connector": value}})
    assert identity is not None
    assert (identity.stamp, identity.incident_sys_id, identity.servicenow) == (
        "ab12",
        "sys1",
        "acme.service-now.com",
    )
    assert identity_of({"properties": {"mim-connector": {"incident_sys_id": "sys1"}}}) is None
    assert identity_of({"properties": {"mim-connector": "ab12"}}) is None
    assert identity_of({}) is None
