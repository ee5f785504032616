"""The JQL parser and evaluator, without HTTP: syntax, semantics, time zones, minute precision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from connector.sandbox.jira.errors import JiraApiError
from connector.sandbox.jira.issues import create_issue
from connector.sandbox.jira.jql import Clause, Junction, Negation, parse
from connector.sandbox.jira.jqleval import JqlContext, compile_query, sort_issues
from connector.sandbox.jira.model import Issue
from connector.sandbox.jira.site import JiraSite
from connector.sandbox.jira.values import WriteContext
from connector.sandbox.spec import DEFAULT_WORKFLOW, JiraCustomField, JiraProject, JiraSiteSpec, JiraUser

SPEC = JiraSiteSpec(
    name="acme",
    deployment="cloud",
    users=(JiraUser("Bot", "bot@acme.example", "bot", api_token="t", time_zone="America/New_York"),),
    projects=(
        JiraProject("SUP", "Support", ("Incident",), DEFAULT_WORKFLOW),
        JiraProject("OPS", "Operations", ("Incident",), DEFAULT_WORKFLOW),
    ),
    custom_fields=(
        JiraCustomField("customfield_10050", "SNOW Ref"),
        JiraCustomField("customfield_10060", "Impact", "number"),
    ),
)
NEW_YORK = ZoneInfo("America/New_York")
T0 = datetime(2026, 11, 22, 15, 30, 45, 500000, tzinfo=UTC)  # 10:30:45.5 in New York


@pytest.fixture
def site() -> JiraSite:
    site = JiraSite(SPEC)
    issues = [
        ("SUP", "Router down in DC1", ["mim-proposed"], "INC0010001", 3.0, T0),
        ("SUP", "Switch flapping", [], None, None, T0 + timedelta(minutes=1)),
        ("OPS", "Router slow", ["servicenow", "mim-accepted"], "INC0010002", 1.0, T0 - timedelta(days=2)),
    ]
    for project, summary, labels, ref, impact, when in issues:
        fields = {
            "project": {"key": project},
            "issuetype": {"name": "Incident"},
            "summary": summary,
            "labels": labels,
        }
        if ref:
            fields |= {"customfield_10050": ref, "customfield_10060": impact}
        create_issue(WriteContext(site, "bot", when, "2"), {"fields": fields})
    site.issues["10001"].properties["servicenow"] = {"sys_id": "abc", "priority": 1}
    return site


def run(
    site: JiraSite, jql: str, *, zone: ZoneInfo = NEW_YORK, now: datetime = T0 + timedelta(minutes=5)
) -> list[str]:
    context = JqlContext(site, "bot", zone, now)
    query = parse(jql)
    predicate = compile_query(query, context)
    found: list[Issue] = [i for i in site.issues.values() if predicate(i)]
    return [i.key for i in sort_issues(found, query.order_by, context)]


def test_precedence_and_parentheses() -> None:
    query = parse("a = 1 OR b = 2 AND NOT c = 3")
    assert isinstance(query.where, Junction) and query.where.kind == "OR"
    right = query.where.children[1]
    assert isinstance(right, Junction) and right.kind == "AND" and isinstance(right.children[1], Negation)
    grouped = parse("(a = 1 OR b = 2) && !c = 3 order by updated desc, key")
    assert isinstance(grouped.where, Junction) and grouped.where.kind == "AND"
    assert [(k.field.name, k.descending) for k in grouped.order_by] == [("updated", True), ("key", None)]


def test_fields_operands_and_lists() -> None:
    clause = parse('issue.property[servicenow].sys_id in ("abc", def, EMPTY)').where
    assert (
        isinstance(clause, Clause)
        and clause.field.property_key == "servicenow"
        and clause.field.property_path == "sys_id"
    )
    assert (
        clause.operator == "IN"
        and clause.is_list
        and [v.text for v in clause.values] == ["abc", "def", "EMPTY"]
    )
    assert clause.values[2].empty and clause.values[0].quoted
    negated = parse("status not in (Open) and resolution is not empty and assignee = currentUser()").where
    assert isinstance(negated, Junction)
    assert [c.operator for c in negated.children if isinstance(c, Clause)] == ["NOT IN", "IS NOT", "="]
    assert parse('"SNOW Ref" ~ "INC\\"1"').where == parse('"SNOW Ref" ~ \'INC"1\'').where


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        (
            "project =",
            "Error in the JQL Query: Expecting either a value, list or function but got the end of the query. (line 1, character 10)",
        ),
        (
            "(project = A",
            "Error in the JQL Query: Expecting ')' but got the end of the query. (line 1, character 13)",
        ),
        (
            "project WAS A",
            "Error in the JQL Query: The operator 'WAS' is not supported by the Jira sandbox. (line 1, character 9)",
        ),
        (
            "project = A ORDER updated",
            "Error in the JQL Query: Expecting 'BY' but got 'updated'. (line 1, character 19)",
        ),
        ("= A", "Error in the JQL Query: Expecting a field name but got '='. (line 1, character 1)"),
    ],
)
def test_syntax_errors(jql: str, message: str) -> None:
    with pytest.raises(JiraApiError) as caught:
        parse(jql)
    assert (caught.value.status, caught.value.messages) == (400, [message])


def test_project_key_status_and_labels(site: JiraSite) -> None:
    assert run(site, "project = sup ORDER BY key ASC") == ["SUP-1", "SUP-2"]
    assert run(site, "project in (Operations, 10000) ORDER BY key") == ["OPS-1", "SUP-1", "SUP-2"]
    assert run(site, "key in (SUP-2, ops-1) ORDER BY key DESC") == ["SUP-2", "OPS-1"]
    assert run(site, 'status = "open" AND statusCategory = new') == ["SUP-2", "SUP-1", "OPS-1"]
    assert run(site, "status != Open") == []
    assert run(site, "labels in (mim-accepted, mim-proposed) ORDER BY created") == ["OPS-1", "SUP-1"]
    assert run(site, "labels not in (mim-accepted)") == ["SUP-1"]
    assert run(site, "labels in (EMPTY, mim-proposed) order by key") == ["SUP-1", "SUP-2"]


def test_text_custom_fields_and_properties(site: JiraSite) -> None:
    assert run(site, 'summary ~ "router" order by key') == ["OPS-1", "SUP-1"]
    assert run(site, 'summary ~ "rout*"') == ["SUP-1", "OPS-1"]
    assert run(site, 'summary ~ "\\"router down\\""') == ["SUP-1"]
    assert run(site, "summary !~ router") == ["SUP-2"]
    assert run(site, "cf[10050] ~ INC0010002") == ["OPS-1"]
    assert run(site, '"SNOW Ref" ~ INC001') == [], "text search matches whole words, not prefixes"
    assert run(site, "Impact >= 2") == ["SUP-1"]
    assert run(site, '"SNOW Ref" is EMPTY') == ["SUP-2"]
    assert run(site, "issue.property[servicenow].sys_id = abc") == ["SUP-1"]
    assert run(site, "issue.property[servicenow].priority < 2") == ["SUP-1"]
    assert run(site, "issue.property[servicenow].sys_id is EMPTY ORDER BY key") == ["OPS-1", "SUP-2"]


def test_dates_are_read_in_the_users_zone_with_minute_precision(site: JiraSite) -> None:
    # SUP-1 was written at 10:30:45.5 New York time, SUP-2 a minute later.
    assert run(site, 'updated >= "2026-11-22 10:30" order by key') == ["SUP-1", "SUP-2"], (
        "the whole minute counts"
    )
    assert run(site, 'updated >= "2026/11/22 10:31"') == ["SUP-2"]
    assert run(site, 'updated < "2026-11-22 10:31"') == ["SUP-1", "OPS-1"]
    assert run(site, 'updated >= "2026-11-22 15:31"') == [], "15:31 in New York is 20:31 UTC"
    assert run(site, 'updated >= "2026-11-22 15:31"', zone=ZoneInfo("UTC")) == ["SUP-2"]
    assert run(site, 'created >= "2026-11-22"') == ["SUP-2", "SUP-1"]
    assert run(site, "updated >= -5m") == ["SUP-2", "SUP-1"]
    assert run(site, "updated >= -4m") == ["SUP-2"]
    assert run(site, "created < -1d") == ["OPS-1"]
    assert run(site, "updated <= now()") == ["SUP-2", "SUP-1", "OPS-1"]


def test_the_dst_switch_is_the_zones_business(site: JiraSite) -> None:
    summer = JqlContext(site, "bot", NEW_YORK, T0)
    predicate = compile_query(parse('created >= "2026-07-01 12:00"'), summer)
    issue = site.issues["10001"]
    issue.created = datetime(2026, 7, 1, 16, 0, tzinfo=UTC)  # 12:00 EDT (UTC-4), not EST
    assert predicate(issue)
    issue.created -= timedelta(milliseconds=1)
    assert not predicate(issue)


@pytest.mark.parametrize(
    ("jql", "message"),
    [
        ("project = NOPE", "The value 'NOPE' does not exist for the field 'project'."),
        ("key = SUP-99", "An issue with key 'SUP-99' does not exist for field 'key'."),
        ("status in (Open, Gone)", "The value 'Gone' does not exist for the field 'status'."),
        ("project = SUP", None),
        ("priority ~ High", "The operator '~' is not supported by the 'priority' field."),
        ("project in SUP", "Operator 'in' does not support the non-list value 'SUP' for field 'project'."),
        ("labels is mim", "The operator 'IS' only supports EMPTY or NULL for field 'labels'."),
        ("updated > startOfDay()", "Unable to find JQL function 'startOfDay()'."),
        (
            "customfield_10050 ~ x",
            "Field 'customfield_10050' does not exist or you do not have permission to view it.",
        ),
    ],
)
def test_validation_messages(site: JiraSite, jql: str, message: str | None) -> None:
    if message is None:
        assert run(site, jql)
        return
    with pytest.raises(JiraApiError) as caught:
        run(site, jql)
    assert caught.value.messages == [message]


def test_lax_validation_turns_unknown_values_into_warnings(site: JiraSite) -> None:
    context = JqlContext(site, "bot", NEW_YORK, T0, strict=False)
    predicate = compile_query(parse("project = NOPE OR key = SUP-1"), context)
    assert [i.key for i in site.issues.values() if predicate(i)] == ["SUP-1"]
    assert context.warnings == ["The value 'NOPE' does not exist for the field 'project'."]


def test_order_by_several_fields_with_empty_values_last(site: JiraSite) -> None:
    assert run(site, "project in (SUP, OPS) ORDER BY Impact DESC, key ASC") == ["SUP-1", "OPS-1", "SUP-2"]
    assert run(site, "project in (SUP, OPS) ORDER BY Impact ASC") == ["OPS-1", "SUP-1", "SUP-2"]
    assert run(site, "project in (SUP, OPS) ORDER BY project ASC, created DESC") == [
        "OPS-1",
        "SUP-2",
        "SUP-1",
    ]
