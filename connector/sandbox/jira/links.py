"""Issue links between two issues of one site: link types, create, find, delete, ``linkedIssues()``.

Direction, as Jira Server's ``LinkIssueResource`` and ``DefaultIssueLinkManager`` implement it and
as Jira Cloud behaves (Atlassian's ``TestLinkIssueResource`` func test; "Jira issue linking model"
on developer.atlassian.com; the measured reports in mozilla/jira-bugzilla-integration#1285 and
atlassian/atlassian-mcp-server#112): ``POST issueLink`` with ``inwardIssue`` A and ``outwardIssue``
B makes A the link's *source* and B its *destination*, and reads "A <outward> B" / "B <inward> A".
So ``{"type": "Problem/Incident", "inwardIssue": INC-1, "outwardIssue": PRB-1}`` means "INC-1
causes PRB-1". On INC-1, ``issuelinks`` shows PRB-1 under ``outwardIssue``; on PRB-1 it shows INC-1
under ``inwardIssue``. Atlassian's reference text calls the ``inwardIssue`` of the request the
"from (outward) issue"; the names are confusing, the behaviour is as above.

What a link write does, as ``DefaultIssueLinkManager`` does it: one ``Link`` changelog item on each
issue ("This issue causes PRB-1" on the source, "This issue is caused by INC-1" on the
destination), ``updated`` bumped on both (JRA-7156), both re-indexed. A request repeating an
existing link (same source, destination and type) changes nothing but still adds its comment,
which goes to the source issue. Unknown link types and invisible issues are 404s, not 400s.
"""

from __future__ import annotations

from typing import Any

from connector.sandbox.jira.errors import ISSUE_NOT_FOUND, JiraApiError, bad_request, field_errors
from connector.sandbox.jira.issues import COMMENT_EMPTY, commit, new_comment
from connector.sandbox.jira.model import ChangeItem, Comment, Issue, IssueLink
from connector.sandbox.jira.site import JiraSite
from connector.sandbox.jira.values import InvalidValue, WriteContext, rich_text

SELF_LINK = "You cannot link an issue to itself."
LINKED_ISSUES = "linkedIssues"


def find_link_type(site: JiraSite, type_id: str) -> str:
    """``GET issueLinkType/{id}``: the id of an existing link type; 400 for a non-number, else 404."""
    if not type_id.isdigit():
        raise bad_request(f"The issue link type id '{type_id}' is invalid.")
    if type_id not in site.link_types:
        raise JiraApiError(404, f"No issue link type with id '{type_id}' found.")
    return type_id


def find_link(site: JiraSite, link_id: str) -> IssueLink:
    """An issue link by id: 400 for a non-number, 404 when there is none."""
    if not link_id.isdigit():
        raise bad_request(f"The issue link id '{link_id}' is invalid.")
    link = site.issue_links.get(link_id)
    if link is None:
        raise JiraApiError(404, f"No issue link with id '{link_id}' exists.")
    return link


def ends(site: JiraSite, link: IssueLink) -> tuple[Issue, Issue]:
    """The source and destination issues of a stored link."""
    return site.issues[link.source_id], site.issues[link.destination_id]


def _object(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise bad_request(f"Can not deserialize '{key}': expected a JSON object.")
    return value


def _type_of(site: JiraSite, raw: dict[str, Any], messages: list[str], errors: dict[str, str]) -> str | None:
    type_id, name = str(raw.get("id") or "").strip(), str(raw.get("name") or "").strip()
    if type_id:
        if type_id not in site.link_types:
            messages.append(f"No issue link type with id '{type_id}' found.")
            return None
        return type_id
    if name:
        found = next((tid for tid, lt in site.link_types.items() if lt.name == name), None)
        if found is None:
            messages.append(f"No issue link type with name '{name}' found.")
        return found
    errors["issuelinks"] = "Issue link type id or name is required."
    return None


def _issue_of(site: JiraSite, raw: dict[str, Any], messages: list[str]) -> Issue | None:
    ref = raw.get("id") or raw.get("key")
    issue = site.issue(str(ref)) if ref else None
    if issue is None and ISSUE_NOT_FOUND not in messages:
        messages.append(ISSUE_NOT_FOUND)
    return issue


def _comment(ctx: WriteContext, raw: Any) -> Comment | None:
    """The comment a link request adds to its source issue, checked before anything is written."""
    if not isinstance(raw, dict) or raw.get("body") is None:
        return None
    try:
        text = rich_text(ctx, raw["body"])
    except InvalidValue as exc:
        raise field_errors({"comment": str(exc)}) from None
    if not text or not text.strip():
        raise field_errors({"comment": COMMENT_EMPTY})
    comment = new_comment(ctx, text)
    if isinstance(raw.get("visibility"), dict):
        comment.visibility = raw["visibility"]
    return comment


def _link_item(link_type_words: str, other: Issue, *, removed: bool = False) -> ChangeItem:
    text = f"This issue {link_type_words} {other.key}"
    if removed:
        return ChangeItem("Link", "", "jira", other.key, text, None, None)
    return ChangeItem("Link", "", "jira", None, None, other.key, text)


def create_link(ctx: WriteContext, body: Any) -> IssueLink:
    """``POST issueLink``: link ``inwardIssue`` (source) to ``outwardIssue`` (destination).

    Raises 404 for an unknown link type or issue (all such messages at once), 400 for a self-link,
    a malformed body or an empty comment; nothing is written when it raises. Returns the stored link,
    the existing one when the request repeats it.
    """
    if not isinstance(body, dict):
        raise bad_request("The issue link request must be a JSON object.")
    site = ctx.site
    messages: list[str] = []
    errors: dict[str, str] = {}
    type_id = _type_of(site, _object(body, "type"), messages, errors)
    source = _issue_of(site, _object(body, "inwardIssue"), messages)
    destination = _issue_of(site, _object(body, "outwardIssue"), messages)
    if type_id is None or source is None or destination is None:
        raise JiraApiError(404, messages, errors)
    if source.issue_id == destination.issue_id:
        raise bad_request(SELF_LINK)
    comment = _comment(ctx, body.get("comment"))
    link = next(
        (
            known
            for known in source.links
            if (known.source_id, known.destination_id, known.type_id)
            == (source.issue_id, destination.issue_id, type_id)
        ),
        None,
    )
    if link is None:
        link = IssueLink(
            str(site.next_id("issuelink", 10000)), type_id, source.issue_id, destination.issue_id
        )
        site.issue_links[link.link_id] = link
        link_type = site.link_types[type_id]
        source.links.append(link)
        destination.links.append(link)
        commit(ctx, source, [_link_item(link_type.outward, destination)])
        commit(ctx, destination, [_link_item(link_type.inward, source)])
    if comment is not None:
        source.comments.append(comment)
        commit(ctx, source, [], touched=True)
    return link


def delete_link(ctx: WriteContext, link: IssueLink) -> None:
    """``DELETE issueLink/{id}``: drop the link from both issues, with a changelog item on each."""
    site = ctx.site
    source, destination = ends(site, link)
    link_type = site.link_types[link.type_id]
    del site.issue_links[link.link_id]
    source.links.remove(link)
    destination.links.remove(link)
    commit(ctx, source, [_link_item(link_type.outward, destination, removed=True)])
    commit(ctx, destination, [_link_item(link_type.inward, source, removed=True)])


def linked_issue_ids(site: JiraSite, args: tuple[str, ...]) -> list[str]:
    """JQL ``linkedIssues(issueKey[, linkDescription])``: ids of the issues linked to ``issueKey``.

    The description is read from ``issueKey``'s side, case-insensitively: ``linkedIssues(INC-1,
    "causes")`` finds what INC-1 causes. Uses the live links (Jira evaluates functions at query
    time); the issues found are then matched against the lagging index like any other clause.
    """
    if not 1 <= len(args) <= 2:
        raise bad_request(
            f"Function '{LINKED_ISSUES}' expected between '1' and '2' arguments but got '{len(args)}'."
        )
    issue = site.issue(args[0])
    if issue is None:
        raise bad_request(f"Issue '{args[0]}' could not be found in function '{LINKED_ISSUES}'.")
    wanted = args[1].strip().lower() if len(args) == 2 else None
    if wanted is not None and not any(
        wanted in (lt.inward.lower(), lt.outward.lower()) for lt in site.link_types.values()
    ):
        raise bad_request(f"Issue link type '{args[1]}' could not be found in function '{LINKED_ISSUES}'.")
    found: list[str] = []
    for link in issue.links:
        other_id, outward = link.other_end(issue.issue_id)
        link_type = site.link_types[link.type_id]
        if wanted is None or wanted == (link_type.outward if outward else link_type.inward).lower():
            found.append(other_id)
    return found
