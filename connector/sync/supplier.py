"""One supplier as the executor and its collaborators need it: its Jira site adapter and project.

A plain value built by the engine per configured supplier; :meth:`Supplier.browse` is the address
a person opens one of its issues at (what a link stores as ``jira_url``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from connector.core.ports import JiraPort


@dataclass(frozen=True)
class Supplier:
    """One supplier as the executor needs it: its site adapter and where its issues are browsed."""

    name: str
    site: JiraPort
    browse_base: str
    project: str
    search_lag: timedelta

    def browse(self, jira_key: str) -> str:
        """The address a person opens ``jira_key`` at."""
        return f"{self.browse_base}/browse/{jira_key}"
