"""Everything that knows about ServiceNow: its data model (``schema``) and, later, the adapter.

Importing this package does not import pysnow or requests; the client modules do that themselves.
"""
