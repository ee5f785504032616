"""One supplier's Jira site in memory behind :class:`~connector.core.ports.JiraPort`, with fault switches.

It answers as :class:`connector.jira.adapter.JiraAdapter` does over the sandbox: field values as
text through the adapter's own :func:`~connector.jira.values.field_text` (written through
:func:`~connector.jira.values.field_payload`), our stamp property on reads and search hits,
comments oldest first, the latest status change and each field's last author from the changelog,
workflow transitions numbered 11, 21, 31... as classic Jira does (a transition not offered from the
current status, or missing a field its screen requires, is a 400:
:class:`~connector.core.errors.InvalidRequest`), ``updated`` bumped by every write that changes
something, ``None`` for an issue read that does not exist and
:class:`~connector.core.errors.TicketNotAccessible` (a 404) for a write to one.

Search reads an index, as Jira's does: each write refreshes it while :attr:`FakeJira.index_live`
is true; set it false and search shows issues as they were (new ones not at all), while direct
reads show them as they are. Search bounds are floored to the minute (JQL precision, the account's
zone being UTC); pages are read as the caller iterates, one request each.

Actors: the port writes as the integration account (:attr:`FakeJira.account_id`); a test acts as
a supplier engineer with :meth:`FakeJira.agent_comment`, :meth:`FakeJira.agent_move` and
:meth:`FakeJira.agent_edit`, which no fault touches. Every port call is logged in :attr:`FakeJira.calls`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from connector.config.supplier_file import SupplierMapping, Workflow
from connector.core.errors import InvalidRequest, TicketNotAccessible
from connector.core.models import IssueStamp, StatusChange, SupplierComment, SupplierIssue
from connector.core.ports import IssueRef, JiraAccount, JiraPort, Transition
from connector.core.priority import in_background
from connector.jira.values import field_payload, field_text, identity_of
from tests.fakes.clock import Clock
from tests.fakes.faults import Faults

T = TypeVar("T")
WRITES = frozenset({"create_issue", "update_issue", "transition", "add_comment", "upsert_remote_link"})
RECONCILE_PAGE = 100
"""Issues per page of the lost-create search (as the adapter asks)."""
AGENT = ("jdoe", "Jane Doe")
DEFAULT_RESOLUTION = "Done"


@dataclass
class Comment:
    comment_id: str
    author_id: str
    author: str
    body: str
    created: datetime


@dataclass
class History:
    """One changelog entry: ``items`` are (field id, from text, to text)."""

    history_id: int
    author_id: str
    author: str
    created: datetime
    items: list[tuple[str, str, str]]


@dataclass(frozen=True)
class Indexed:
    """What search knows of an issue: its ``updated`` and properties when last indexed."""

    updated: datetime
    properties: Mapping[str, Any]


@dataclass
class FakeIssue:
    """An issue as the site holds it; ``values`` are field values in Jira's JSON shapes."""

    issue_id: str
    key: str
    project: str
    issue_type: str
    status: str
    reporter_id: str
    created: datetime
    updated: datetime
    values: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    comments: list[Comment] = field(default_factory=list)
    history: list[History] = field(default_factory=list)
    remote_links: dict[str, tuple[str, str]] = field(default_factory=dict)
    """globalId -> (url, title)."""
    indexed: Indexed | None = None

    @property
    def stamp(self) -> IssueStamp | None:
        """Our stamp property, as a read decodes it."""
        return identity_of({"properties": self.properties})


@dataclass(frozen=True)
class _Step:
    transition_id: str
    name: str
    to: str
    from_: tuple[str, ...]
    requires: tuple[str, ...]

    def available_from(self, status: str) -> bool:
        return status in self.from_ if self.from_ else status != self.to


class FakeJira:
    """A Jira site in memory; implements :class:`~connector.core.ports.JiraPort`."""

    def __init__(
        self,
        site: str,
        project: str,
        workflow: Workflow,
        clock: Clock,
        *,
        deployment: str = "cloud",
        account_id: str = "mim-connector",
        base_url: str = "https://jira.example",
    ) -> None:
        self.site = site
        self.deployment = deployment
        self.project = project
        self.workflow = workflow
        self.clock = clock
        self.account_id = account_id
        self.base_url = base_url
        self.users = {account_id: "MIM Connector", AGENT[0]: AGENT[1]}
        self.faults = Faults(f"jira:{site}")
        self.calls: list[str] = []
        """Every request of the port, by operation, in order (a search: one per page)."""
        self.background: list[str] = []
        """The requests of :attr:`calls` sent as background work (:mod:`connector.core.priority`)."""
        self.issues: dict[str, FakeIssue] = {}
        """By key."""
        self.index_live = True
        self._steps = tuple(
            _Step(str(11 + 10 * n), t.name, t.to, t.from_, t.requires)
            for n, t in enumerate(workflow.transitions)
        )
        self._ids = {
            "issue": itertools.count(10001),
            "comment": itertools.count(10001),
            "history": itertools.count(10001),
        }
        self._numbers = itertools.count(1)
        self._answered = False

    @classmethod
    def for_mapping(cls, site: str, mapping: SupplierMapping, clock: Clock, **options: Any) -> FakeJira:
        """The site of a supplier mapping: its project and workflow."""
        return cls(site, mapping.jira.project, mapping.jira.workflow, clock, **options)

    # --- a supplier engineer (no faults, not logged) ---------------------------------------------------

    def agent_comment(self, key: str, body: str, author: str = AGENT[0]) -> str:
        """A comment by a supplier engineer; its id."""
        return self._comment(self._issue(key), body, author).comment_id

    def agent_move(self, key: str, to_status: str, author: str = AGENT[0], resolution: str = "Fixed") -> None:
        """A supplier engineer takes the transition to ``to_status`` offered from the current status."""
        issue = self._issue(key)
        step = next((s for s in self._steps if s.available_from(issue.status) and s.to == to_status), None)
        if step is None:
            raise AssertionError(f"{key}: no transition from {issue.status} to {to_status}")
        self._transition(issue, step.transition_id, {"resolution": resolution}, author)

    def agent_edit(self, key: str, author: str = AGENT[0], **fields: Any) -> None:
        """A supplier engineer edits fields."""
        self._update(self._issue(key), fields, author)

    def reindex(self) -> None:
        """Bring the search index up to date with every issue (after :attr:`index_live` was false)."""
        for issue in self.issues.values():
            issue.indexed = Indexed(issue.updated, {k: _copy(v) for k, v in issue.properties.items()})

    def issues_of(self, project: str | None = None) -> list[FakeIssue]:
        """Issues of ``project`` (default: the site's), in key order."""
        project = project or self.project
        return sorted(
            (i for i in self.issues.values() if i.project == project), key=lambda i: int(i.issue_id)
        )

    def writes(self) -> list[str]:
        """The port's write requests, in order."""
        return [call for call in self.calls if call in WRITES]

    # --- JiraPort ---------------------------------------------------------------------------------------

    def server_time(self) -> datetime | None:
        """The clock as of the last answer; ``None`` before any call."""
        return self.clock() if self._answered else None

    def myself(self) -> JiraAccount:
        """The integration account; its zone is UTC."""
        return self._call("myself", lambda: JiraAccount(self.account_id, self.users[self.account_id], "UTC"))

    def issues_updated_since(self, project: str, since: datetime, page_size: int) -> Iterator[IssueRef]:
        """Issues of ``project`` indexed with ``updated >= since`` (to the minute), oldest first."""
        bound = _minute(since)

        def hits() -> list[FakeIssue]:
            found = [i for i in self._indexed(project) if i.indexed and i.indexed.updated >= bound]
            return sorted(found, key=lambda i: (_indexed(i).updated, int(i.issue_id)))

        return self._search("issues_updated_since", hits, page_size)

    def created_by_me_since(self, project: str, since: datetime) -> Iterator[IssueRef]:
        """Issues of ``project`` we reported, indexed, with ``created >= since`` (to the minute), newest first."""
        bound = _minute(since)

        def hits() -> list[FakeIssue]:
            found = [
                i for i in self._indexed(project) if i.reporter_id == self.account_id and i.created >= bound
            ]
            return sorted(found, key=lambda i: (i.created, int(i.issue_id)), reverse=True)

        return self._search("created_by_me_since", hits, RECONCILE_PAGE)

    def issue(self, key_or_id: str, fields: Sequence[str], *, comments: bool = True) -> SupplierIssue | None:
        """One issue read directly, with our stamp, its comments and what its changelog says; ``None`` if absent."""
        found = self._call("issue", lambda: self._find(key_or_id))
        return self._read(found, fields, comments) if found is not None else None

    def create_issue(
        self, project: str, issue_type: str, fields: Mapping[str, Any], properties: Mapping[str, Any]
    ) -> IssueRef:
        """Create an issue with its properties (one request); reported by the integration account."""
        if project != self.project:
            raise InvalidRequest(f"jira:{self.site}: project: valid project is required")
        if not fields.get("summary"):
            raise InvalidRequest(f"jira:{self.site}: summary: You must specify a summary of the issue.")

        def create() -> IssueRef:
            created = self._create(project, issue_type, fields, properties, self.account_id)
            return IssueRef(created.issue_id, created.key)

        return self._call("create_issue", create, write=True)

    def update_issue(self, key: str, fields: Mapping[str, Any]) -> None:
        """Edit fields (one request); ``status`` cannot be edited."""
        if "status" in fields:
            raise InvalidRequest(f"jira:{self.site}: status: Field 'status' cannot be set.")
        self._call(
            "update_issue", lambda: self._update(self._issue(key), fields, self.account_id), write=True
        )

    def transitions(self, key: str) -> list[Transition]:
        """Transitions offered from the issue's current status, in id order."""

        def offered() -> list[Transition]:
            issue = self._issue(key)
            return [
                Transition(s.transition_id, s.name, s.to)
                for s in self._steps
                if s.available_from(issue.status)
            ]

        return self._call("transitions", offered)

    def transition(self, key: str, transition_id: str, fields: Mapping[str, Any]) -> None:
        """Take one transition with its screen's fields; one not offered now is a 400."""
        self._call(
            "transition",
            lambda: self._transition(self._issue(key), transition_id, fields, self.account_id),
            write=True,
        )

    def add_comment(self, key: str, body: str) -> SupplierComment:
        """Add a comment as the integration account."""
        comment = self._call(
            "add_comment", lambda: self._comment(self._issue(key), body, self.account_id), write=True
        )
        return _comment(comment)

    def upsert_remote_link(self, key: str, global_id: str, url: str, title: str) -> None:
        """Create or replace the remote link ``global_id``."""

        def upsert() -> None:
            issue = self._issue(key)
            if issue.remote_links.get(global_id) != (url, title):
                issue.remote_links[global_id] = (url, title)
                self._commit(issue, None, touched=True)

        self._call("upsert_remote_link", upsert, write=True)

    # --- the site ---------------------------------------------------------------------------------------

    def _call(self, operation: str, apply: Callable[[], T], *, write: bool = False) -> T:
        self.calls.append(operation)
        if in_background():
            self.background.append(operation)
        result = self.faults.run(operation, apply, write=write)
        self._answered = True
        return result

    def _search(
        self, operation: str, hits: Callable[[], list[FakeIssue]], page_size: int
    ) -> Iterator[IssueRef]:
        """Pages of ``hits()``, each evaluated afresh when the caller gets to it; each issue once."""
        seen: set[str] = set()
        start = 0
        while True:

            def page(start: int = start) -> list[IssueRef]:
                return [_ref(issue) for issue in hits()[start : start + page_size]]

            batch = self._call(operation, page)
            for ref in batch:
                if ref.issue_id not in seen:
                    seen.add(ref.issue_id)
                    yield ref
            start += len(batch)
            if len(batch) < page_size:
                return

    def _indexed(self, project: str) -> list[FakeIssue]:
        return [i for i in self.issues.values() if i.project == project and i.indexed is not None]

    def _find(self, key_or_id: str) -> FakeIssue | None:
        found = self.issues.get(key_or_id.upper())
        return found or next((i for i in self.issues.values() if i.issue_id == key_or_id), None)

    def _issue(self, key: str) -> FakeIssue:
        found = self._find(key)
        if found is None:
            raise TicketNotAccessible(
                f"jira:{self.site}: {key}: HTTP 404 Issue does not exist or you do not have permission to see it."
            )
        return found

    def _create(
        self,
        project: str,
        issue_type: str,
        fields: Mapping[str, Any],
        properties: Mapping[str, Any],
        author: str,
    ) -> FakeIssue:
        now = self.clock()
        issue = FakeIssue(
            str(next(self._ids["issue"])),
            f"{project}-{next(self._numbers)}",
            project,
            issue_type,
            self.workflow.initial,
            author,
            now,
            now,
            {field_id: field_payload(field_id, value) for field_id, value in fields.items()},
            {name: _copy(value) for name, value in properties.items()},
        )
        self.issues[issue.key] = issue
        self._commit(issue, None, touched=True)
        return issue

    def _update(self, issue: FakeIssue, fields: Mapping[str, Any], author: str) -> None:
        items = self._set(
            issue, {field_id: field_payload(field_id, value) for field_id, value in fields.items()}
        )
        self._commit(issue, self._history(author, items) if items else None)

    def _set(self, issue: FakeIssue, values: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        items = []
        for field_id, new in values.items():
            old = issue.values.get(field_id)
            if field_text(field_id, old) != field_text(field_id, new):
                items.append((field_id, field_text(field_id, old), field_text(field_id, new)))
            issue.values[field_id] = new
        return items

    def _transition(
        self, issue: FakeIssue, transition_id: str, fields: Mapping[str, Any], author: str
    ) -> None:
        step = next((s for s in self._steps if s.transition_id == transition_id), None)
        if step is None or not step.available_from(issue.status):
            raise InvalidRequest(
                f"jira:{self.site}: Transition id '{transition_id}' is not valid for this issue."
            )
        values = {
            f: field_payload(f, v) for f, v in fields.items() if f in step.requires or f == "resolution"
        }
        missing = [f for f in step.requires if not values.get(f)]
        if missing:
            raise InvalidRequest(f"jira:{self.site}: {', '.join(missing)}: is required.")
        was_done = self._category(issue.status) == "done"
        if self._category(step.to) == "done":
            values["resolution"] = (
                values.get("resolution") or issue.values.get("resolution") or {"name": DEFAULT_RESOLUTION}
            )
        elif was_done:
            values["resolution"] = None
        else:
            values.pop("resolution", None)
        items = [("status", issue.status, step.to)]
        issue.status = step.to
        items += self._set(issue, values)
        self._commit(issue, self._history(author, items), touched=True)

    def _comment(self, issue: FakeIssue, body: str, author: str) -> Comment:
        comment = Comment(
            str(next(self._ids["comment"])), author, self.users.get(author, author), body, self.clock()
        )
        issue.comments.append(comment)
        self._commit(issue, None, touched=True)
        return comment

    def _history(self, author: str, items: list[tuple[str, str, str]]) -> History:
        return History(
            next(self._ids["history"]), author, self.users.get(author, author), self.clock(), items
        )

    def _commit(self, issue: FakeIssue, history: History | None, *, touched: bool = False) -> None:
        """A write: its changelog entry, ``updated`` bumped, the index told (while it is live)."""
        if history is not None:
            issue.history.append(history)
        if history is not None or touched:
            issue.updated = self.clock()
        if self.index_live:
            issue.indexed = Indexed(issue.updated, {k: _copy(v) for k, v in issue.properties.items()})

    def _category(self, status: str) -> str:
        return self.workflow.statuses[status].category

    def _read(self, issue: FakeIssue, fields: Sequence[str], comments: bool) -> SupplierIssue:
        status_change = None
        authors: dict[str, str] = {}
        for history in issue.history:
            for field_id, from_text, to_text in history.items:
                authors[field_id] = history.author_id
                if field_id == "status":
                    status_change = StatusChange(
                        str(history.history_id),
                        history.author_id,
                        history.author,
                        from_text,
                        to_text,
                        history.created,
                    )
        return SupplierIssue(
            issue_id=issue.issue_id,
            key=issue.key,
            url=f"{self.base_url}/browse/{issue.key}",
            status=issue.status,
            status_category=self._category(issue.status),
            updated=issue.updated,
            fields=MappingProxyType(
                {f: field_text(f, self._raw(issue, f)) for f in fields if f != "issuelinks"}
            ),
            identity=issue.stamp,
            comments=tuple(_comment(c) for c in issue.comments) if comments else (),
            links=(),
            status_change=status_change,
            field_authors=MappingProxyType(authors),
        )

    def _raw(self, issue: FakeIssue, field_id: str) -> Any:
        """A field's value as Jira's JSON has it (``status`` and the dates are the issue's own)."""
        if field_id == "status":
            return {"name": issue.status}
        if field_id in ("updated", "created"):
            moment: datetime = getattr(issue, field_id)
            return moment.strftime("%Y-%m-%dT%H:%M:%S.000%z")
        if field_id == "reporter":
            return {"displayName": self.users.get(issue.reporter_id, issue.reporter_id)}
        return issue.values.get(field_id)


def _ref(issue: FakeIssue) -> IssueRef:
    """A search hit: the issue as indexed."""
    indexed = _indexed(issue)
    return IssueRef(
        issue.issue_id, issue.key, indexed.updated, identity_of({"properties": indexed.properties})
    )


def _indexed(issue: FakeIssue) -> Indexed:
    assert issue.indexed is not None
    return issue.indexed


def _comment(comment: Comment) -> SupplierComment:
    return SupplierComment(
        comment.comment_id, comment.author, comment.author_id, comment.body, comment.created, comment.created
    )


def _minute(moment: datetime) -> datetime:
    """A JQL bound: ``moment`` floored to the minute (the account's zone is UTC)."""
    if moment.tzinfo is None:
        raise ValueError("JQL bounds need a timezone-aware datetime")
    return moment.replace(second=0, microsecond=0)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


if TYPE_CHECKING:  # mypy proves the fake satisfies the port
    _PORT: type[JiraPort] = FakeJira
