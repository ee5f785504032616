"""The Jira simulator: Cloud and Data Center sites on one loopback server.

Modules, outermost first:

- ``app``: :class:`JiraApp` - site routing by context path, authentication, rate limits, control API.
- ``routes`` (URL map), ``routes_meta``, ``routes_issue``, ``routes_parts``, ``routes_search``: handlers.
- ``call``: the authenticated request a handler gets; ``params``: Jira-style query parameters.
- ``site``: one site's catalogue, issues (by id and key) and runtime settings.
- ``issues``, ``transitions``, ``parts``, ``values``: writes with Jira's validation and changelog.
- ``search``, ``index``, ``jql``, ``jqleval``: JQL over the lagging index, both paging styles.
- ``render``, ``adf``, ``dates``: JSON representations, v3 rich text, timestamps and JQL dates.
- ``fields``, ``workflow``, ``limits``, ``model``, ``errors``: the pieces those share.
"""

from connector.sandbox.jira.app import JiraApp

__all__ = ["JiraApp"]
