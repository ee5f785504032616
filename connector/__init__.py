"""mim-connector: a ServiceNow <-> Jira connector for Major Incident Management.

The daemon watches ServiceNow incidents, promotes qualifying ones to major incidents by ordered
YAML rules, mirrors each incident to the Jira of every supplier involved and writes the suppliers'
work back. The decision code (rules, planner) is pure and knows nothing about HTTP; only the
adapters under ``connector.servicenow`` and ``connector.jira`` talk to the outside world.

Nothing happens at import time: configuration is read by the CLI and passed down.
"""

__version__ = "0.1.0"
