"""A Jepsen-style checker: the final state of both sides against what people did. Pure.

Definitions (a *link* is an incident x supplier the incident is, or ever was, routed to):

* **issues** - per link, the issues stamped for it: none is *lost*, more than one *duplicated*
  (each extra counts); an issue stamped for a pair that is not a link, or carrying no stamp, is
  *unexpected*.
* **comments out** - every public comment (by its token) must appear in exactly one comment of
  each linked issue: absent is *lost*, twice or more *duplicated*; a token in an issue of another
  incident, or a connector comment with no source (neither a public comment nor the problem
  notice), is *unexpected*.
* **comments in** - every supplier comment must appear in exactly one journal entry of its
  incident; same meanings. Connector notes with no source (not a mirrored comment, link note,
  status note or marked system note) are *unexpected*; a status note for a move the engineer
  never made (an echo of our own move) too. Each issue gets exactly one link note.
* **fields** - a *lost field change* is a field whose final value is not what the other side
  implies: every ServiceNow-owned field the mapping renders (summary, description, priority,
  labels, custom fields, bridge) equals its rendering from the final incident; the incident state
  and each issue's status are the story's (:mod:`tests.scenarios.model`); the shared workaround
  is the last writer's on both sides; every supplier-owned incident field shows the issue's value
  (one of the issues' when several suppliers own it); the latest root cause reached the problem;
  a problem linked to the incident is linked (remote link) and announced once on every issue.
* **leaks** - a canary (``CANARY-``) in any request to a Jira site, or anywhere in Jira's data.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from connector.config.supplier_file import SupplierMapping
from tests.scenarios import expected
from tests.scenarios.journal import CANARY_PREFIX, Leak
from tests.scenarios.model import Ledger, Story
from tests.scenarios.snapshot import Issue, Snapshot

TOKEN = re.compile(r"\b([CS]\d{5}z)\b")
MARKER = "[mim-connector ref:"
STATUS_NOTE = re.compile(r"^\[(?P<key>[^\]]+)\] .+ moved the issue from (?P<was>.+) to (?P<now>.+)\.\n")
PROBLEM_NOTICE = "Please record the root cause on this issue"
CATEGORIES = (
    "issues:lost",
    "issues:duplicated",
    "issues:unexpected",
    "comments-out:lost",
    "comments-out:duplicated",
    "comments-out:unexpected",
    "comments-in:lost",
    "comments-in:duplicated",
    "comments-in:unexpected",
    "link-notes:wrong",
    "fields:lost",
    "problems:duplicated",
    "leaks",
    "oracle:gap",
)


@dataclass
class Findings:
    """Counts by category (see :data:`CATEGORIES`), what was checked, and a line per finding."""

    counts: Counter[str] = field(default_factory=Counter)
    checked: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)

    def add(self, category: str, detail: str, n: int = 1) -> None:
        """Record ``n`` findings of ``category``."""
        self.counts[category] += n
        self.details.append(f"{category}: {detail}")

    @property
    def failed(self) -> dict[str, int]:
        """The categories with findings."""
        return {name: n for name, n in self.counts.items() if n}


@dataclass(frozen=True)
class Context:
    """What the checker needs besides the snapshot."""

    mappings: Mapping[str, SupplierMapping]
    instance_url: str
    connector_users: frozenset[str] = frozenset({"svc.mim-connector"})


def check(snapshot: Snapshot, ledger: Ledger, context: Context, leaks: list[Leak]) -> Findings:
    """Every property of the module docstring over ``snapshot``."""
    findings = Findings()
    links = _links(snapshot, ledger, context, findings)
    _issues(snapshot, ledger, links, findings)
    primary = {pair: issues[0] for pair, issues in links.items() if issues}
    _comments_out(snapshot, ledger, primary, findings)
    _comments_in(snapshot, ledger, primary, context, findings)
    for (sys_id, supplier), issue in primary.items():
        _fields(snapshot, ledger.story(sys_id), supplier, issue, context, findings)
    for story in ledger.stories.values():
        _shared_owners(snapshot, story, primary, context, findings)
        _problem(snapshot, story, primary, findings)
    _leaks(snapshot, leaks, findings)
    return findings


def _links(
    snapshot: Snapshot, ledger: Ledger, context: Context, findings: Findings
) -> dict[tuple[str, str], list[Issue]]:
    """Every link with the issues stamped for it."""
    links: dict[tuple[str, str], list[Issue]] = {}
    for sys_id, story in ledger.stories.items():
        record = snapshot.incidents[sys_id]
        routed = set(story.statuses)
        for supplier, mapping in context.mappings.items():
            if expected.routed(mapping, record) and supplier not in routed:
                # People track routing after their own writes; a gap means the oracle is wrong.
                findings.add("oracle:gap", f"{story.number} is routed to {supplier} unbeknown to the story")
                routed.add(supplier)
        for supplier in sorted(routed):
            links[(sys_id, supplier)] = sorted(
                snapshot.issues_of(sys_id, supplier), key=lambda i: int(i.issue_id)
            )
    return links


def _issues(
    snapshot: Snapshot, ledger: Ledger, links: dict[tuple[str, str], list[Issue]], findings: Findings
) -> None:
    findings.checked["issues"] = len(links)
    for (sys_id, supplier), issues in links.items():
        number = ledger.story(sys_id).number
        if not issues:
            findings.add("issues:lost", f"{number} has no issue at {supplier}")
        elif len(issues) > 1:
            keys = ", ".join(i.key for i in issues)
            findings.add(
                "issues:duplicated",
                f"{number} has {len(issues)} issues at {supplier}: {keys}",
                len(issues) - 1,
            )
    for issue in snapshot.issues:
        if (issue.incident_sys_id, issue.supplier) not in links:
            findings.add("issues:unexpected", f"{issue.key} (stamp {issue.incident_sys_id}) has no source")


def _comments_out(
    snapshot: Snapshot, ledger: Ledger, primary: dict[tuple[str, str], Issue], findings: Findings
) -> None:
    for (sys_id, _supplier), issue in primary.items():
        mine = {t for t, owner in ledger.public_comments.items() if owner == sys_id}
        seen: Counter[str] = Counter()
        for comment in issue.comments:
            tokens = set(TOKEN.findall(comment.body))
            seen.update(t for t in tokens if t in ledger.public_comments)
            if comment.by_connector and not tokens & mine and PROBLEM_NOTICE not in comment.body:
                findings.add("comments-out:unexpected", f"{issue.key}: {comment.body[:80]!r}")
        for token in mine:
            findings.checked["comments-out"] += 1
            if seen[token] == 0:
                findings.add("comments-out:lost", f"{token} never reached {issue.key}")
            elif seen[token] > 1:
                findings.add(
                    "comments-out:duplicated", f"{token} {seen[token]}x in {issue.key}", seen[token] - 1
                )
        for token in seen.keys() - mine:
            findings.add("comments-out:unexpected", f"{token} of another incident in {issue.key}")


def _comments_in(
    snapshot: Snapshot,
    ledger: Ledger,
    primary: dict[tuple[str, str], Issue],
    context: Context,
    findings: Findings,
) -> None:
    keys = {issue.key: pair for pair, issue in primary.items()}
    for sys_id in ledger.stories:
        journal = snapshot.journals.get(sys_id, [])
        ours = [e for e in journal if e.created_by in context.connector_users]
        mine = {t for t, c in ledger.supplier_comments.items() if c.incident_sys_id == sys_id}
        seen: Counter[str] = Counter()
        link_notes: Counter[str] = Counter()
        status_notes: Counter[tuple[str, str]] = Counter()
        for entry in ours:
            tokens = set(TOKEN.findall(entry.value)) & ledger.supplier_comments.keys()
            seen.update(tokens)
            status = STATUS_NOTE.match(entry.value)
            if entry.value.startswith("Mirrored to "):
                link_notes[entry.value.split(" as ", 1)[1].split(":", 1)[0]] += 1
            elif status:
                status_notes[(status["key"], status["now"])] += 1
            elif not tokens and MARKER not in entry.value:
                findings.add("comments-in:unexpected", f"{sys_id}: {entry.value[:80]!r}")
        for token in mine:
            findings.checked["comments-in"] += 1
            if seen[token] == 0:
                findings.add("comments-in:lost", f"{token} never reached its incident")
            elif seen[token] > 1:
                findings.add("comments-in:duplicated", f"{token} {seen[token]}x", seen[token] - 1)
        for token in seen.keys() - mine:
            findings.add("comments-in:unexpected", f"{token} of another incident on {sys_id}")
        for (key, status), n in status_notes.items():
            if n > ledger.moves[(key, status)]:
                findings.add(
                    "comments-in:unexpected",
                    f"{n} status notes '{key} -> {status}', the engineer moved it there {ledger.moves[(key, status)]}x",
                    n - ledger.moves[(key, status)],
                )
        for key, pair in keys.items():
            if pair[0] == sys_id and link_notes[key] != 1:
                findings.add("link-notes:wrong", f"{link_notes[key]} link notes for {key}")


def _fields(
    snapshot: Snapshot, story: Story, supplier: str, issue: Issue, context: Context, findings: Findings
) -> None:
    mapping = context.mappings[supplier]
    record = snapshot.incidents[story.sys_id]
    wanted = expected.outbound_text(mapping, record, context.instance_url)
    wanted["status"] = story.statuses.get(supplier, issue.status)
    for shared in mapping.shared:
        wanted[shared.jira] = expected.redact(mapping, story.workaround).strip()
    actual = dict(issue.fields) | {"status": issue.status}
    for name, value in wanted.items():
        findings.checked["fields"] += 1
        have = actual.get(name, "")
        if name == "labels":
            have = " ".join(sorted(have.split()))
        if expected.norm(have) != expected.norm(value):
            findings.add("fields:lost", f"{issue.key} {name}: {have[:60]!r}, expected {value[:60]!r}")
    if expected.stamp_globals(story.sys_id) not in issue.remote_links:
        findings.add("fields:lost", f"{issue.key} has no remote link to its incident")
    checks = {"state": story.state, "u_workaround": story.workaround}
    for name, value in checks.items():
        findings.checked["fields"] += 1
        if record.get(name, "") != value:
            findings.add("fields:lost", f"{story.number} {name}: {record.get(name)!r}, expected {value!r}")


def _shared_owners(
    snapshot: Snapshot,
    story: Story,
    primary: dict[tuple[str, str], Issue],
    context: Context,
    findings: Findings,
) -> None:
    """Supplier-owned incident fields: the value one of the owning issues implies."""
    record = snapshot.incidents[story.sys_id]
    candidates: dict[str, set[str]] = {}
    for supplier, mapping in context.mappings.items():
        issue = primary.get((story.sys_id, supplier))
        if issue is None:
            continue
        values = {**issue.fields, "key": issue.key, "status": issue.status, "supplier": mapping.display_name}
        for name, template in mapping.inbound.fields.items():
            rendered = re.sub(r"\{([^}]+)\}", lambda m, v=values: v.get(m.group(1), ""), template)
            candidates.setdefault(name, set()).add(rendered.strip())
    for name, values in candidates.items():
        findings.checked["fields"] += 1
        if record.get(name, "") not in values:
            findings.add(
                "fields:lost",
                f"{story.number} {name}: {record.get(name)!r}, expected one of {sorted(values)}",
            )
    keys = ", ".join(sorted(i.key for (sys_id, _s), i in primary.items() if sys_id == story.sys_id))
    if keys and record.get("correlation_display", "") != keys:
        findings.add(
            "fields:lost",
            f"{story.number} correlation_display {record.get('correlation_display')!r}, expected {keys!r}",
        )


def _problem(
    snapshot: Snapshot, story: Story, primary: dict[tuple[str, str], Issue], findings: Findings
) -> None:
    stamped = [
        p
        for p in snapshot.problems.values()
        if p["correlation_id"] == f"mim-connector:problem:{story.sys_id}"
    ]
    if len(stamped) > 1:
        findings.add("problems:duplicated", f"{story.number} got {len(stamped)} problems", len(stamped) - 1)
    problem_id = snapshot.incidents[story.sys_id].get("problem_id", "")
    if story.root_cause:
        # The root cause goes to the incident's problem, or to the one opened for it (the desk may
        # have linked another problem since).
        texts = []
        for problem in [snapshot.problems.get(problem_id), *stamped]:
            if problem is not None:
                notes = snapshot.journals.get(problem["sys_id"], [])
                texts += [problem["cause_notes"], *(e.value for e in notes if e.element == "work_notes")]
        findings.checked["fields"] += 1
        if not any(story.root_cause in text for text in texts):
            findings.add(
                "fields:lost", f"{story.number}: root cause {story.root_cause[:30]!r} not on its problem"
            )
    if not problem_id:
        return
    number = snapshot.problems[problem_id]["number"]
    for (sys_id, _supplier), issue in primary.items():
        if sys_id != story.sys_id:
            continue
        findings.checked["fields"] += 1
        if f"servicenow:problem:{problem_id}" not in issue.remote_links:
            findings.add("fields:lost", f"{issue.key} has no link to problem {number}")
        notices = [
            c for c in issue.comments if c.by_connector and number in c.body and PROBLEM_NOTICE in c.body
        ]
        if len(notices) != 1:
            kind = "comments-out:lost" if not notices else "comments-out:duplicated"
            findings.add(
                kind, f"{issue.key}: {len(notices)} notices of problem {number}", max(1, len(notices) - 1)
            )


def _leaks(snapshot: Snapshot, leaks: list[Leak], findings: Findings) -> None:
    for leak in leaks:
        findings.add("leaks", f"{leak.method} {leak.path} by {leak.user}: {leak.excerpt!r}")
    for issue in snapshot.issues:
        texts = [*issue.fields.values(), *(c.body for c in issue.comments)]
        for text in texts:
            if CANARY_PREFIX in text:
                findings.add("leaks", f"{issue.key} shows {text[text.find(CANARY_PREFIX) :][:40]!r}")
