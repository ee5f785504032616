"""What the mirroring decisions look at for one incident x supplier, and the vocabulary they share. Pure.

:class:`EntityView` is everything a plan may depend on; the shadow keys name what is remembered
between cycles (besides plain field values); whose a journal entry is (:func:`ours_in_servicenow`)
is judged from the stamps of :mod:`connector.core.markers`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from connector.config.supplier_file import SupplierMapping
from connector.core import shadows
from connector.core.links import Link
from connector.core.markers import own_ref
from connector.core.models import Incident, JournalEntry, SupplierIssue
from connector.core.times import format_jira_time, parse_instant, servicenow_time_or_none
from connector.mirror.redaction import sanitize

SUMMARY_LIMIT = 255
TEXT_LIMIT = 32_000

# Shadow keys that are not field names.
LABELS_OURS = "@labels_ours"
STATE_DONE = "@state"
REMOTE_LINK = "@remote_link"
SUPPLIER_STATUS = "@supplier_status"
STATUS_CHANGE = "@status_change"
PROBLEM_LINK = "@problem_link"
ROOT_CAUSE = "@root_cause"
CAUSE_NOTES = "@cause_notes"
STATE_PENDING = shadows.pending("state")
"""A move of ours towards an incident state, whose answer we may not have heard."""


def dated(state: str, incident: Incident) -> str:
    """``state`` as status mirroring records it: ``<state>#<reopen_count>`` of ``incident`` now.

    A reopen bumps ServiceNow's ``reopen_count``, so a state set away and back through a reopen
    (resolved, reopened, resolved again) while a link was not looked at is still news to it. Bare
    when the instance does not return the count.
    """
    reopened = incident.get("reopen_count")
    return f"{state}#{reopened}" if state and reopened else state


def same_state(recorded: str | None, token: str) -> bool:
    """Whether a recorded state stands for ``token``; a bare one (no ``#reopen_count``) stands for any reopen."""
    if recorded is None:
        return False
    return recorded == token or ("#" not in recorded and recorded == token.split("#", 1)[0])


@dataclass(frozen=True)
class EntityView:
    """Everything the planner may look at for one incident x supplier."""

    incident: Incident
    supplier: str
    mapping: SupplierMapping
    states: Mapping[str, str]
    """Incident state value -> label on this instance."""
    routed: bool
    link: Link | None
    issue: SupplierIssue | None
    journal: Sequence[JournalEntry]
    jira_shadow: Mapping[str, str]
    snow_shadow: Mapping[str, str]
    mirrored_out: frozenset[str]
    """Journal entries (sys_id) already in the comment ledger for this link."""
    mirrored_in: frozenset[str]
    """Supplier comment ids (and event keys) already in the comment ledger."""
    account_id: str
    integration_user: str
    incident_url: str
    sibling_keys: tuple[str, ...] = ()
    """Keys of every supplier issue of this incident (for ``correlation_display``)."""
    instance_url: str = ""
    """The ServiceNow instance's base URL (links to other records, e.g. the problem)."""
    created_in_jira: frozenset[str] = frozenset()
    """Ids of the Jira comments our outbound ledger entries created: ours, whatever their text."""

    def record_url(self, table: str, sys_id: str) -> str:
        """A browser link to a record of this instance."""
        return f"{self.instance_url}/nav_to.do?uri={table}.do?sys_id={sys_id}"


def ours_in_servicenow(entry: JournalEntry, integration_user: str) -> bool:
    """Whether a journal entry is one we wrote: by our account, ending with our stamp line.

    A desk user's comment that quotes or pastes one of our notes is theirs, wherever the marker
    stands in it, and is mirrored like any other. ServiceNow user names compare without case.
    """
    return own_ref(entry.value) is not None and entry.created_by.casefold() == integration_user.casefold()


_CODE_TAG = re.compile(r"\[(\s*/?\s*code\s*)\]", re.IGNORECASE)


def journal_safe(text: str) -> str:
    """A supplier's text as it may enter a ServiceNow journal: sanitised, its ``[code]`` tags inert.

    Instances that allow code tags (``glide.ui.security.allow_codetag``) render what stands
    between ``[code]`` and ``[/code]`` in a journal entry as HTML, for the desk and, in comments,
    for the caller: from a third party that is markup injection. The tags' brackets become
    parentheses, so the text still reads as it was written. Control characters, escape sequences
    and bidi overrides are dropped as in every outbound text (:func:`connector.mirror.redaction.sanitize`).
    """
    return _CODE_TAG.sub(r"(\1)", sanitize(text))


def jira_variables(view: EntityView) -> dict[str, str]:
    """What inbound templates see: the issue's fields as text, its key, URL, status and supplier."""
    assert view.issue is not None
    issue = view.issue
    return {
        **issue.fields,
        "key": issue.key,
        "url": issue.url,
        "status": issue.status,
        "supplier": view.mapping.display_name,
    }


def norm(text: str) -> str:
    """Text as compared across systems: line endings and surrounding blanks do not count."""
    return text.replace("\r\n", "\n").strip()


def same(left: str, right: str) -> bool:
    """Equal as text, or the same instant written two ways (ServiceNow's and Jira's formats)."""
    if norm(left) == norm(right):
        return True
    a, b = parse_instant(norm(left)), parse_instant(norm(right))
    return a is not None and a == b


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying so."""
    return text if len(text) <= limit else text[: limit - 20] + " …(truncated)"


def jira_time(sn_time: str) -> str:
    """A ServiceNow date-time (UTC) as a Jira date-time value; other text unchanged."""
    moment = servicenow_time_or_none(sn_time)
    return format_jira_time(moment) if moment else sn_time
