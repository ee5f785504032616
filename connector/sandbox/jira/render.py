"""Jira's JSON representations of the simulator's state, for API v2 (strings) and v3 (ADF).

Every function takes a :class:`View`: which site, its base URL (for absolute ``self`` links), the
API version asked for, and the requesting user's time zone (timestamps are shown in it).
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from connector.sandbox.jira.adf import text_to_adf
from connector.sandbox.jira.dates import format_jira_time
from connector.sandbox.jira.model import Comment, History, Issue, IssueLink, RemoteLink
from connector.sandbox.jira.site import JiraSite, ProjectInfo
from connector.sandbox.jira.workflow import CATEGORIES

ISSUE_EXPAND = "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations"
CHANGELOG_RECENT = 100


@dataclass(frozen=True)
class View:
    """Who is looking, at which site and through which API version."""

    site: JiraSite
    site_url: str
    api_version: str
    zone: tzinfo

    @property
    def rest(self) -> str:
        """The REST base URL, e.g. ``http://127.0.0.1:8080/acme/rest/api/2``."""
        return f"{self.site_url}/rest/api/{self.api_version}"

    def time(self, moment: datetime | None) -> str | None:
        """A timestamp in Jira's format and the viewer's zone."""
        return format_jira_time(moment, self.zone) if moment is not None else None

    def rich(self, text: str | None) -> Any:
        """A rich-text value: a string on v2, an ADF document on v3."""
        if text is None:
            return None
        return text_to_adf(text) if self.api_version == "3" else text


def avatars(view: View, owner: str) -> dict[str, str]:
    """Avatar URLs in the four sizes Jira lists."""
    return {
        f"{n}x{n}": f"{view.site_url}/secure/useravatar?size={n}&ownerId={owner}" for n in (48, 24, 16, 32)
    }


def user_json(view: View, username: str | None) -> dict[str, Any] | None:
    """A user as Cloud (``accountId``) or Data Center (``name``/``key``) shows it."""
    if username is None or username not in view.site.users:
        return None
    user = view.site.users[username]
    out: dict[str, Any]
    if view.site.is_cloud:
        out = {"self": f"{view.rest}/user?accountId={user.account_id}", "accountId": user.account_id}
    else:
        key = view.site.user_keys[username]
        out = {"self": f"{view.rest}/user?username={username}", "name": username, "key": key}
    out |= {
        "emailAddress": user.email,
        "avatarUrls": avatars(view, username),
        "displayName": user.display_name,
        "active": True,
        "timeZone": user.time_zone,
    }
    if view.site.is_cloud:
        out["accountType"] = "atlassian"
    return out


def category_json(view: View, status: str) -> dict[str, Any]:
    """The ``statusCategory`` of a status."""
    info = CATEGORIES[view.site.statuses[status][1]]
    return {
        "self": f"{view.rest}/statuscategory/{info.category_id}",
        "id": info.category_id,
        "key": info.key,
        "colorName": info.color_name,
        "name": info.name,
    }


def status_json(view: View, status: str) -> dict[str, Any]:
    """A status with its category."""
    status_id = view.site.statuses[status][0]
    return {
        "self": f"{view.rest}/status/{status_id}",
        "description": "",
        "iconUrl": f"{view.site_url}/images/icons/statuses/generic.png",
        "name": status,
        "id": status_id,
        "statusCategory": category_json(view, status),
    }


def named_json(view: View, kind: str, name: str | None) -> dict[str, Any] | None:
    """A priority (``kind="priority"``) or resolution (``"resolution"``) by name."""
    if name is None:
        return None
    catalogue = view.site.priorities if kind == "priority" else view.site.resolutions
    out: dict[str, Any] = {
        "self": f"{view.rest}/{kind}/{catalogue[name]}",
        "id": catalogue[name],
        "name": name,
    }
    if kind == "priority":
        out["iconUrl"] = f"{view.site_url}/images/icons/priorities/{name.lower()}.svg"
    else:
        out["description"] = ""
    return out


def issuetype_json(view: View, name: str) -> dict[str, Any]:
    """An issue type."""
    type_id = view.site.issue_types[name]
    return {
        "self": f"{view.rest}/issuetype/{type_id}",
        "id": type_id,
        "description": "",
        "iconUrl": f"{view.site_url}/images/icons/issuetypes/{name.lower()}.svg",
        "name": name,
        "subtask": False,
        "hierarchyLevel": 0,
    }


def project_json(view: View, info: ProjectInfo, *, issue_types: bool, brief: bool = False) -> dict[str, Any]:
    """A project; ``brief`` is the form embedded in issues."""
    out: dict[str, Any] = {
        "self": f"{view.rest}/project/{info.project_id}",
        "id": info.project_id,
        "key": info.key,
        "name": info.spec.name,
        "projectTypeKey": "software",
        "simplified": False,
        "avatarUrls": avatars(view, info.key),
    }
    if brief:
        return out
    out |= {
        "expand": "description,lead,issueTypes,url,projectKeys,permissions,insight",
        "description": "",
        "style": "classic",
        "isPrivate": False,
    }
    if issue_types:
        out["issueTypes"] = [issuetype_json(view, name) for name in info.spec.issue_types]
    return out


def comment_json(view: View, issue: Issue, comment: Comment) -> dict[str, Any]:
    """A comment (``body`` a string on v2, ADF on v3)."""
    out: dict[str, Any] = {
        "self": f"{view.rest}/issue/{issue.issue_id}/comment/{comment.comment_id}",
        "id": comment.comment_id,
        "author": user_json(view, comment.author),
        "body": view.rich(comment.body),
        "updateAuthor": user_json(view, comment.update_author),
        "created": view.time(comment.created),
        "updated": view.time(comment.updated),
    }
    if comment.visibility is not None:
        out["visibility"] = comment.visibility
    if view.site.is_cloud:
        out["jsdPublic"] = True
    return out


def comments_page(
    view: View, issue: Issue, comments: list[Comment], start_at: int, max_results: int, total: int
) -> dict[str, Any]:
    """A ``PageOfComments``."""
    return {
        "self": f"{view.rest}/issue/{issue.issue_id}/comment",
        "startAt": start_at,
        "maxResults": max_results,
        "total": total,
        "comments": [comment_json(view, issue, c) for c in comments],
    }


def remote_link_json(view: View, issue: Issue, link: RemoteLink) -> dict[str, Any]:
    """A remote link; fields an upsert left out are absent (Jira stores them as null)."""
    out: dict[str, Any] = {
        "id": link.link_id,
        "self": f"{view.rest}/issue/{issue.key}/remotelink/{link.link_id}",
    }
    if link.global_id is not None:
        out["globalId"] = link.global_id
    if link.application is not None:
        out["application"] = link.application
    if link.relationship is not None:
        out["relationship"] = link.relationship
    out["object"] = {key: value for key, value in link.object.items() if value is not None}
    return out


def link_type_json(view: View, type_id: str) -> dict[str, Any]:
    """An ``IssueLinkType``."""
    link_type = view.site.link_types[type_id]
    return {
        "id": type_id,
        "name": link_type.name,
        "inward": link_type.inward,
        "outward": link_type.outward,
        "self": f"{view.rest}/issueLinkType/{type_id}",
    }


def linked_issue_json(view: View, issue: Issue) -> dict[str, Any]:
    """A ``LinkedIssue``: the other end of a link with the few fields Jira embeds."""
    fields: dict[str, Any] = {"summary": issue.summary, "status": status_json(view, issue.status)}
    if issue.priority is not None:
        fields["priority"] = named_json(view, "priority", issue.priority)
    fields["issuetype"] = issuetype_json(view, issue.issue_type)
    return {
        "id": issue.issue_id,
        "key": issue.key,
        "self": f"{view.rest}/issue/{issue.issue_id}",
        "fields": fields,
    }


def issue_link_json(view: View, link: IssueLink, source: Issue, destination: Issue) -> dict[str, Any]:
    """``GET issueLink/{id}``: ``inwardIssue`` is the source, ``outwardIssue`` the destination."""
    return {
        "id": link.link_id,
        "self": f"{view.rest}/issueLink/{link.link_id}",
        "type": link_type_json(view, link.type_id),
        "inwardIssue": linked_issue_json(view, source),
        "outwardIssue": linked_issue_json(view, destination),
    }


def issue_links_json(view: View, issue: Issue) -> list[dict[str, Any]]:
    """The ``issuelinks`` field: each link once, showing only the *other* issue.

    On the source the destination appears as ``outwardIssue`` (read: this issue <outward> it), on
    the destination the source appears as ``inwardIssue`` (this issue <inward> it). Grouped by link
    type like Jira's ``LinkCollection`` (types by name here), outward links before inward, oldest first.
    """
    site = view.site
    entries: list[tuple[tuple[str, int, int], dict[str, Any]]] = []
    for link in issue.links:
        other_id, outward = link.other_end(issue.issue_id)
        other = site.issues.get(other_id)
        if other is None:
            continue
        entry = {
            "id": link.link_id,
            "self": f"{view.rest}/issueLink/{link.link_id}",
            "type": link_type_json(view, link.type_id),
            "outwardIssue" if outward else "inwardIssue": linked_issue_json(view, other),
        }
        entries.append(((site.link_types[link.type_id].name, 0 if outward else 1, int(link.link_id)), entry))
    return [entry for _order, entry in sorted(entries, key=lambda pair: pair[0])]


def custom_value(view: View, issue: Issue, field_id: str) -> Any:
    """The JSON value of a custom field."""
    value = issue.custom.get(field_id)
    definition = view.site.fields.get(field_id)
    if value is None or definition is None:
        return None
    if definition.kind == "datetime":
        return view.time(value)
    if definition.kind == "text":
        return view.rich(value)
    return list(value) if isinstance(value, list) else value


def field_value(view: View, issue: Issue, field_id: str) -> Any:
    """The JSON value of any issue field."""
    simple: dict[str, Any] = {
        "summary": lambda: issue.summary,
        "description": lambda: view.rich(issue.description),
        "issuetype": lambda: issuetype_json(view, issue.issue_type),
        "project": lambda: project_json(view, view.site.project_of(issue), issue_types=False, brief=True),
        "status": lambda: status_json(view, issue.status),
        "priority": lambda: named_json(view, "priority", issue.priority),
        "labels": lambda: list(issue.labels),
        "resolution": lambda: named_json(view, "resolution", issue.resolution),
        "resolutiondate": lambda: view.time(issue.resolution_date),
        "created": lambda: view.time(issue.created),
        "updated": lambda: view.time(issue.updated),
        "statuscategorychangedate": lambda: view.time(issue.status_changed),
        "reporter": lambda: user_json(view, issue.reporter),
        "assignee": lambda: user_json(view, issue.assignee),
        "creator": lambda: user_json(view, issue.creator),
        "comment": lambda: comments_page(
            view, issue, issue.comments, 0, len(issue.comments), len(issue.comments)
        ),
        "duedate": lambda: issue.due_date.isoformat() if issue.due_date else None,
        "issuelinks": lambda: issue_links_json(view, issue),
    }
    getter = simple.get(field_id)
    return getter() if getter is not None else custom_value(view, issue, field_id)


def changelog_json(view: View, issue: Issue) -> dict[str, Any]:
    """The ``changelog`` of ``expand=changelog``: the most recent entries first, truncated."""
    recent = issue.history[::-1][:CHANGELOG_RECENT]
    return {
        "startAt": 0,
        "maxResults": len(recent),
        "total": len(issue.history),
        "histories": [history_json(view, h) for h in recent],
    }


def history_json(view: View, history: History) -> dict[str, Any]:
    """One changelog entry, as Jira sends it.

    ``from``/``to`` are null where Jira has no id; ``fieldId`` is absent for items without one
    (issue ``Link`` items).
    """
    return {
        "id": history.history_id,
        "author": user_json(view, history.author),
        "created": view.time(history.created),
        "items": [
            {
                "field": item.field,
                "fieldtype": item.field_type,
                **({"fieldId": item.field_id} if item.field_id else {}),
                "from": item.from_value,
                "fromString": item.from_string,
                "to": item.to_value,
                "toString": item.to_string,
            }
            for item in history.items
        ],
    }


def issue_json(
    view: View,
    issue: Issue,
    field_ids: list[str],
    *,
    expand: AbstractSet[str] = frozenset(),
    properties: Sequence[str] = (),
) -> dict[str, Any]:
    """An ``IssueBean`` with the chosen fields, optional changelog/names and entity properties."""
    out: dict[str, Any] = {
        "expand": ISSUE_EXPAND,
        "id": issue.issue_id,
        "self": f"{view.rest}/issue/{issue.issue_id}",
        "key": issue.key,
    }
    if properties:
        wanted = (
            issue.properties
            if "*all" in properties
            else {k: v for k, v in issue.properties.items() if k in properties}
        )
        out["properties"] = dict(wanted)
    out["fields"] = {field_id: field_value(view, issue, field_id) for field_id in field_ids}
    if "names" in expand:
        out["names"] = {f: d.name for f in field_ids if (d := view.site.fields.get(f)) is not None}
    if "changelog" in expand:
        out["changelog"] = changelog_json(view, issue)
    return out
