"""The Jira side: one adapter per supplier site, over python-jira 3.10.5.

:class:`~connector.jira.adapter.JiraAdapter` implements :class:`connector.core.ports.JiraPort`;
:mod:`connector.jira.client` builds python-jira and makes the calls it cannot make right;
:mod:`connector.jira.values` converts Jira's JSON values, timestamps and JQL dates. Nothing
outside this package imports python-jira. Importing this package (or :mod:`connector.jira.values`)
does not import python-jira or requests.
"""
