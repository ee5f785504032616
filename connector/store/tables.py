"""The state store's tables. This module owns the schema; :mod:`connector.store.migrations` builds it.

Identity and progress live here, never only in memory and never rediscovered by search alone:

* ``watermarks`` - how far each source (ServiceNow incidents, journal, each supplier site) was read;
* ``incidents`` - the last processed version of each incident (de-duplication by ``sys_mod_count``);
* ``links`` - incident <-> supplier issue, unique per (incident, supplier), created *before* the issue;
* ``shadows`` - the value of each mapped field as last synced, per link and side (no-op and echo guard);
* ``comments`` - the comment ledger: each mirrored journal entry or Jira comment, once per direction;
* ``intents`` - a row before every external write, its outcome after (crash and uncertainty recovery);
* ``dead_letters`` - entities whose processing failed, held (with later work) until retried or dropped;
* ``audit`` - every write: who, what, before, after, why;
* ``decisions`` - what the promotion rules decided per incident (written before the write it causes);
* ``condition_state`` - since when a ``for:`` condition (or "unassigned") has held for an incident;
* ``clusters`` - the major incident each cluster of related incidents was gathered under;
* ``leases`` - who holds each role (the store's one daemon on SQLite; each poller and the reconciler
  on PostgreSQL), until when, under which fencing epoch;
* ``work`` - the work queue: one item per entity (incident x supplier) to process, with its lane, due
  time and reasons; a failed entity's item stays as a dead letter (``state = dead``) until retried;
* ``claims`` - which instance's worker is processing an incident's items, until when;
* ``instances`` - the daemons sharing the store, and when each was last heard of.

Times are timezone-aware UTC. JSON columns hold our own data only (never credentials).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy import (
    false as sql_false,
)

SCHEMA_VERSION = 6

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

watermarks = Table(
    "watermarks",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("position", Text, nullable=False),
    Column("boundary", JSON, nullable=False, default=list),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("sys_id", String(32), primary_key=True),
    Column("number", String(40), nullable=False),
    Column("mod_count", Integer, nullable=False),
    Column("updated_on", String(19), nullable=False),
    Column("snapshot", JSON, nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    # v2: what the promotion rules need to find candidates without reading every snapshot.
    Column("opened_at", String(19)),
    Column("candidate", Boolean, nullable=False, default=False, server_default=sql_false()),
    Index("ix_incidents_number", "number"),
    Index("ix_incidents_candidate", "candidate", "opened_at"),
)

links = Table(
    "links",
    metadata,
    Column("link_id", Integer, primary_key=True, autoincrement=True),
    Column("incident_sys_id", String(32), nullable=False),
    Column("supplier", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("jira_issue_id", String(32)),
    Column("jira_key", String(64)),
    Column("jira_url", Text),
    Column("stamp", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # v5: the reconciler's place: when the link was last re-checked, and since when it is retired
    # (its incident closed for longer than ``reconcile.retire_after``; never re-read unless reopened).
    Column("checked_at", DateTime(timezone=True)),
    Column("retired_at", DateTime(timezone=True)),
    # v5: the issue version (id@updated) a worker last read after its own writes: a search that
    # brings back only that version brings nothing new (our own write), so it enqueues nothing.
    Column("seen_version", String(80)),
    UniqueConstraint("incident_sys_id", "supplier", name="uq_links_incident_supplier"),
    Index("ix_links_supplier_issue", "supplier", "jira_issue_id"),
    Index("ix_links_reconcile", "retired_at", "checked_at"),
)

shadows = Table(
    "shadows",
    metadata,
    Column("link_id", Integer, ForeignKey("links.link_id", ondelete="CASCADE"), primary_key=True),
    Column("side", String(16), primary_key=True),
    Column("field", String(128), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

comments = Table(
    "comments",
    metadata,
    Column("comment_id", Integer, primary_key=True, autoincrement=True),
    Column("link_id", Integer, ForeignKey("links.link_id", ondelete="CASCADE"), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("target_id", String(64)),
    Column("marker", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("link_id", "direction", "source_id", name="uq_comments_source"),
)

intents = Table(
    "intents",
    metadata,
    Column("intent_id", Integer, primary_key=True, autoincrement=True),
    Column("entity", String(128), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("stamp", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("outcome", JSON),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_intents_state", "state"),
    Index("ix_intents_entity", "entity"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("letter_id", Integer, primary_key=True, autoincrement=True),
    Column("entity", String(128), nullable=False),
    Column("state", String(16), nullable=False),
    Column("error_type", String(128), nullable=False),
    Column("error", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("held_events", Integer, nullable=False, default=0),
    Column("first_failed_at", DateTime(timezone=True), nullable=False),
    Column("last_failed_at", DateTime(timezone=True), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("manual", Boolean, nullable=False, default=False),
    Index("ix_dead_letters_entity_state", "entity", "state"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", Integer, primary_key=True, autoincrement=True),
    Column("incident_sys_id", String(32), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("mode", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("material", JSON, nullable=False),
    Column("engage", JSON, nullable=False),
    Column("parent_sys_id", String(32)),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_decisions_incident", "incident_sys_id"),
    Index("ix_decisions_at", "at"),
)

condition_state = Table(
    "condition_state",
    metadata,
    Column("incident_sys_id", String(32), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("since", DateTime(timezone=True), nullable=False),
)

clusters = Table(
    "clusters",
    metadata,
    Column("cluster_id", Integer, primary_key=True, autoincrement=True),
    Column("rule", String(64), nullable=False),
    Column("value", Text, nullable=False),
    Column("major_sys_id", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_clusters_rule_value", "rule", "value"),
)

audit = Table(
    "audit",
    metadata,
    Column("audit_id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("system", String(64), nullable=False),
    Column("operation", String(64), nullable=False),
    Column("target", Text, nullable=False),
    Column("before", JSON),
    Column("after", JSON),
    Column("reason", Text, nullable=False),
    Column("intent_id", Integer),
    Column("outcome", String(16), nullable=False),
    Index("ix_audit_target", "target"),
)

throttles = Table(
    "throttles",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("until", DateTime(timezone=True), nullable=False),
)
"""Scopes a platform closed with a 429, until when (wall clock): a restarted daemon honours them."""

leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    # The fencing token: +1 at every acquisition, never reused; a holder's writes carry its epoch.
    Column("epoch", Integer, nullable=False),
    Column("command", String(64), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("process_started_at", DateTime(timezone=True), nullable=False),
    # Boot id, PID namespace and start ticks: tells a dead holder on this machine from a live one.
    Column("process_key", String(128), nullable=False),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    Column("renewed_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
"""v4: one row per lease (``daemon``: the process that writes); a released lease keeps its row and epoch."""

work = Table(
    "work",
    metadata,
    # The dead letter's number too (``state dlq retry ID``).
    Column("item_id", Integer, primary_key=True, autoincrement=True),
    Column("entity", String(128), nullable=False, unique=True),
    Column("incident_sys_id", String(32), nullable=False),
    Column("supplier", String(64), nullable=False),
    # pending (to process at due_at), dead (failed: retried at due_at, later work held behind it),
    # resolved or dropped (a former dead letter, kept as history until new work reuses the row).
    Column("state", String(16), nullable=False),
    Column("lane", Integer, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False),
    Column("enqueued_at", DateTime(timezone=True), nullable=False),
    # +1 at every enqueue: completing a claimed item removes it only if nothing came meanwhile.
    Column("version", Integer, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("held_events", Integer, nullable=False, default=0),
    Column("error_type", String(128)),
    Column("error", Text),
    Column("first_failed_at", DateTime(timezone=True)),
    Column("last_failed_at", DateTime(timezone=True)),
    Column("manual", Boolean, nullable=False, default=False),
    Index("ix_work_due", "state", "due_at"),
    Index("ix_work_lane", "lane", "state", "due_at"),
    Index("ix_work_incident", "incident_sys_id"),
)
"""v5: the work queue; a dead letter is an item in state ``dead``."""

claims = Table(
    "claims",
    metadata,
    Column("incident_sys_id", String(32), primary_key=True),
    Column("instance_id", String(64), nullable=False),
    Column("token", String(64), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
    Column("until", DateTime(timezone=True), nullable=False),
)
"""v5: an incident whose items one worker processes (its suppliers in turn), until ``until``."""

instances = Table(
    "instances",
    metadata,
    Column("instance_id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Column("workers", Integer, nullable=False),
)
"""v5: the daemons sharing this store; one whose ``seen_at`` is older than the lease TTL is gone."""

deliveries = Table(
    "deliveries",
    metadata,
    # ``jira:<supplier>`` or ``servicenow``; the platform's identifier of one delivery (the same on
    # each of its retries).
    Column("source", String(80), primary_key=True),
    Column("delivery_id", String(128), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
)
"""v6: pushed deliveries already acted on, kept for ``push.remember`` to recognise their repeats."""

pushed = Table(
    "pushed",
    metadata,
    Column("sys_id", String(32), primary_key=True),
    Column("mod_count", Integer, primary_key=True),
    Column("number", String(40), nullable=False),
    Column("updated_on", String(19), nullable=False),
    # The fields the ServiceNow push carried (stored values), for the promotion rules.
    Column("fields", JSON, nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
)
"""v6: incident versions ServiceNow pushed, until the ServiceNow poll has given them to the rules."""
