"""The ServiceNow side: the adapter, its pysnow client and its session.

ServiceNow's data model (tables, columns, state sets, choices) is shared vocabulary and lives in
:mod:`connector.core.vocabulary`. Importing this package does not import pysnow or requests.
"""
