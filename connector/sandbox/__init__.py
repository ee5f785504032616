"""The sandbox: local simulators of the ServiceNow Table API and the Jira REST API.

Real HTTP servers on loopback that the real clients (pysnow, python-jira) talk to. They are the
demo's embedded default, the bed of the integration tests and a dry-run ground for admins. Every
simulator also serves a control API under ``/_sandbox/`` (request journal, fault injection, clock
skew, reset) that the real platforms do not have.
"""
