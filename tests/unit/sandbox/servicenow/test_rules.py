"""Business rules: priority lookup, incident defaults and stamps, data policy, MIM, problem state."""

from __future__ import annotations

from datetime import UTC

import pytest

from connector.sandbox.servicenow.errors import ServiceNowError
from connector.sandbox.servicenow.rules import Actor, apply_rules, priority_of
from connector.sandbox.servicenow.settings import Settings

ACTOR = Actor("svc", "u-svc", UTC)
T0, T1 = "2024-01-01 10:00:00", "2024-01-01 11:00:00"


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        ("1", "1", "1"),
        ("1", "2", "2"),
        ("1", "3", "3"),
        ("2", "1", "2"),
        ("2", "2", "3"),
        ("2", "3", "4"),
        ("3", "1", "3"),
        ("3", "2", "4"),
        ("3", "3", "5"),
    ],
)
def test_priority_matrix(impact: str, urgency: str, priority: str) -> None:
    assert priority_of(impact, urgency) == priority


def test_priority_is_none_outside_the_matrix() -> None:
    assert priority_of("4", "1") is None
    assert priority_of("", "1") is None


def insert(table: str, values: dict[str, str], settings: Settings | None = None) -> dict[str, str]:
    record = dict(values)
    apply_rules(table, None, record, set(values), ACTOR, T0, settings or Settings())
    return record


def update(
    table: str, old: dict[str, str], values: dict[str, str], settings: Settings | None = None
) -> dict[str, str]:
    new = {**old, **values}
    apply_rules(table, old, new, set(values), ACTOR, T1, settings or Settings())
    return new


def test_incident_defaults_and_a_direct_priority_write_is_overwritten() -> None:
    record = insert("incident", {"priority": "1", "short_description": "x"})
    assert record == {
        "priority": "5",
        "short_description": "x",
        "state": "1",
        "incident_state": "1",
        "impact": "3",
        "urgency": "3",
        "active": "true",
        "opened_at": T0,
        "opened_by": "u-svc",
        "reopen_count": "0",
    }
    assert update("incident", record, {"priority": "1"})["priority"] == "5"
    assert update("incident", record, {"impact": "1", "urgency": "2"})["priority"] == "2"


def test_resolve_requires_close_fields_unless_the_policy_is_off() -> None:
    record = insert("incident", {})
    with pytest.raises(ServiceNowError) as refused:
        update("incident", record, {"state": "6", "close_code": "Solution provided"})
    assert (refused.value.status, refused.value.message) == (403, "Operation Failed")
    assert (
        refused.value.detail == "Data Policy Exception: The following fields are mandatory: Resolution notes"
    )
    resolved = update("incident", record, {"state": "6"}, Settings(resolve_requires_close_fields=False))
    assert (resolved["resolved_at"], resolved["resolved_by"], resolved["active"]) == (T1, "u-svc", "true")


def test_close_cancel_and_reopen_stamps() -> None:
    record = insert("incident", {"close_code": "Duplicate", "close_notes": "dup"})
    closed = update("incident", record, {"state": "7"})
    assert (closed["closed_at"], closed["closed_by"], closed["active"], closed["incident_state"]) == (
        T1,
        "u-svc",
        "false",
        "7",
    )
    reopened = update("incident", closed, {"state": "2"})
    assert reopened["active"] == "true" and reopened["reopen_count"] == "1"
    assert "resolved_at" not in reopened and "closed_at" not in reopened


def test_incident_state_twin_follows_either_side() -> None:
    record = insert("incident", {"incident_state": "2"})
    assert (record["state"], record["incident_state"]) == ("2", "2")
    assert update("incident", record, {"incident_state": "3"})["state"] == "3"


def test_major_incident_stamps_and_cancel() -> None:
    record = insert("incident", {"major_incident_state": "proposed"})
    assert (record["proposed_by"], record["proposed_on"]) == ("u-svc", T0)
    accepted = update("incident", record, {"major_incident_state": "accepted"})
    assert (accepted["promoted_by"], accepted["promoted_on"]) == ("u-svc", T1)
    canceled = update("incident", accepted, {"state": "8"})
    assert (canceled["major_incident_state"], canceled["active"]) == ("canceled", "false")
    rejected = update("incident", insert("incident", {"major_incident_state": "rejected"}), {"state": "8"})
    assert rejected["major_incident_state"] == "rejected"


def test_problem_defaults_and_state_writes_refused_like_rome() -> None:
    problem = insert("problem", {"impact": "1", "urgency": "1"})
    assert (problem["state"], problem["priority"]) == ("101", "1")
    closed = update("problem", problem, {"state": "107"})
    assert (closed["closed_at"], closed["active"]) == (T1, "false")
    rome = Settings(problem_state_writable=False)
    with pytest.raises(ServiceNowError) as refused:
        update("problem", problem, {"state": "102"}, rome)
    assert refused.value.status == 403
    assert update("problem", problem, {"state": "101", "short_description": "y"}, rome)["state"] == "101"


def test_settings_reject_unknown_keys_and_wrong_types() -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="unknown settings: nope"):
        settings.update({"nope": True})
    with pytest.raises(ValueError, match="must be a bool"):
        settings.update({"problem_state_writable": "false"})
    settings.update({"token_ttl_seconds": 5})
    assert settings.as_json()["token_ttl_seconds"] == 5
