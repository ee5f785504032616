"""Issue links without HTTP: JQL function arguments, link bookkeeping on the site, spec checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from connector.sandbox.jira.errors import JiraApiError
from connector.sandbox.jira.issues import create_issue
from connector.sandbox.jira.jql import Clause, parse
from connector.sandbox.jira.links import create_link, linked_issue_ids
from connector.sandbox.jira.site import JiraSite
from connector.sandbox.jira.values import WriteContext
from connector.sandbox.spec import DEFAULT_WORKFLOW, JiraIssueLinkType, JiraProject, JiraSiteSpec, JiraUser

SPEC = JiraSiteSpec(
    name="acme",
    deployment="datacenter",
    users=(JiraUser("Bot", "bot@acme.example", "bot", password="pw"),),
    projects=(JiraProject("SUP", "Support", ("Incident", "Problem"), DEFAULT_WORKFLOW),),
)
NOW = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)


@pytest.fixture
def writer() -> WriteContext:
    site = JiraSite(SPEC)
    ctx = WriteContext(site, "bot", NOW, "2")
    for summary in ("Outage", "Root cause", "Bystander"):
        create_issue(
            ctx,
            {"fields": {"project": {"key": "SUP"}, "issuetype": {"name": "Incident"}, "summary": summary}},
        )
    return ctx


def link(ctx: WriteContext, type_name: str, inward: str, outward: str) -> None:
    body = {"type": {"name": type_name}, "inwardIssue": {"key": inward}, "outwardIssue": {"key": outward}}
    create_link(ctx, body)


@pytest.mark.parametrize(
    ("jql", "args"),
    [
        ("issue in linkedIssues(SUP-1)", ("SUP-1",)),
        ('issue in linkedIssues(SUP-1, "is caused by")', ("SUP-1", "is caused by")),
        ("issue in linkedIssues(SUP-1, is caused by)", ("SUP-1", "is caused by")),
        ("updated > now()", ()),
    ],
)
def test_function_arguments_are_kept(jql: str, args: tuple[str, ...]) -> None:
    where = parse(jql).where
    assert isinstance(where, Clause) and where.values[0].function and where.values[0].args == args


def test_linked_issues_reads_the_description_from_the_argument_side(writer: WriteContext) -> None:
    link(writer, "Problem/Incident", "SUP-1", "SUP-2")
    site = writer.site
    assert linked_issue_ids(site, ("SUP-1", "CAUSES")) == ["10002"]
    assert linked_issue_ids(site, ("SUP-2", "is caused by")) == ["10001"]
    assert linked_issue_ids(site, ("SUP-2", "causes")) == []
    for args, message in (
        ((), "Function 'linkedIssues' expected between '1' and '2' arguments but got '0'."),
        (("SUP-9",), "Issue 'SUP-9' could not be found in function 'linkedIssues'."),
        (("SUP-1", "fixes"), "Issue link type 'fixes' could not be found in function 'linkedIssues'."),
    ):
        with pytest.raises(JiraApiError) as refused:
            linked_issue_ids(site, args)
        assert refused.value.messages == [message]


def test_deleting_an_issue_unlinks_it_without_touching_the_other(writer: WriteContext) -> None:
    link(writer, "Relates", "SUP-1", "SUP-2")
    site = writer.site
    survivor = site.issue("SUP-1")
    assert survivor is not None
    history_before, updated_before = len(survivor.history), survivor.updated
    later = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)
    removed = site.issue("SUP-2")
    assert removed is not None
    site.remove(removed, later)
    assert (survivor.links, site.issue_links) == ([], {})
    assert (len(survivor.history), survivor.updated) == (history_before, updated_before)


def test_link_type_names_must_be_unique() -> None:
    twice = (JiraIssueLinkType("Blocks", "is blocked by", "blocks"),) * 2
    with pytest.raises(ValueError, match="unique"):
        JiraSite(replace(SPEC, issue_link_types=twice))
