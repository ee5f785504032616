"""Prometheus metrics of the daemon, defined once. Served with ``/healthz`` and ``/readyz`` by the daemon."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "mim_requests_total",
    "HTTP requests to ServiceNow and supplier sites, by outcome",
    ["system", "method", "outcome"],
)
THROTTLED = Counter(
    "mim_throttled_total", "429 answers received (a scope was closed for Retry-After)", ["system"]
)
WRITES = Counter(
    "mim_writes_total", "External writes by operation and outcome", ["system", "operation", "outcome"]
)
PLANNED = Counter("mim_changes_planned_total", "Changes the planner decided, by kind", ["supplier", "kind"])
CONFLICTS = Counter(
    "mim_conflicts_total",
    "Edits of a field owned by the other side (logged, never ping-ponged)",
    ["supplier"],
)
TEXT_WITHHELD = Counter(
    "mim_text_withheld_total",
    "Outbound texts withheld because a redaction pattern ran out of its time budget",
    ["supplier"],
)
QUEUE_DEPTH = Gauge("mim_queue_depth", "Work items waiting in the queue (due or not), by lane", ["lane"])
QUEUE_OLDEST_DUE = Gauge(
    "mim_queue_oldest_due_seconds", "How long the oldest due item of a lane has waited", ["lane"]
)
DEAD_LETTERS = Gauge("mim_dead_letters", "Entities held in the dead-letter queue, by supplier", ["supplier"])
CYCLE_SECONDS = Histogram("mim_cycle_seconds", "Duration of one sync cycle")
WATERMARK_LAG = Gauge(
    "mim_watermark_lag_seconds",
    "How far behind now (the connector's clock) the source's watermark is; grows while its polls fail",
    ["source"],
)
SITE_UP = Gauge(
    "mim_site_up",
    "1 while the system answers; 0 while it, one of its endpoints or its credentials fail every try",
    ["system"],
)
CIRCUIT_OPEN = Gauge(
    "mim_circuit_open",
    "1 while an endpoint (scope '*': the whole system) is left alone after failing every try",
    ["system", "scope"],
)
AUTH_BACKOFF = Gauge(
    "mim_auth_backoff_seconds",
    "The current pause between two tries of refused credentials (0: accepted)",
    ["system"],
)
INSTANCES = Gauge("mim_instances", "Daemons sharing the state store (seen within the lease TTL)")
LAST_CYCLE = Gauge("mim_last_cycle_timestamp_seconds", "When the last sync cycle finished (Unix time)")
RULE_DECISIONS = Counter(
    "mim_rule_decisions_total", "Major-incident decisions written, by rule and action", ["rule", "action"]
)
RULE_DRY_RUNS = Counter(
    "mim_rule_dry_run_decisions_total",
    "Decisions made in dry run (not written), by rule and action",
    ["rule", "action"],
)
RULES_CAPPED = Counter("mim_rule_capped_total", "Decisions held back by a proposals-per-hour cap", ["rule"])
ROLE_HELD = Gauge(
    "mim_role_held",
    "1 while this process holds the singleton role (polling a source, reconciling), 0 otherwise",
    ["role"],
)
PUSH_RECEIVED = Counter(
    "mim_push_received_total",
    "Pushed deliveries accepted, by source (servicenow, jira:<supplier>) and what they led to "
    "(queued, woke_poll, echo, duplicate)",
    ["source", "outcome"],
)
PUSH_REJECTED = Counter(
    "mim_push_rejected_total",
    "Pushed deliveries refused, by source and reason (missing, malformed or mismatch signature; "
    "too_large; bad_body)",
    ["source", "reason"],
)
PUSH_MISSED = Counter(
    "mim_push_missed_total",
    "Changes a poll found that push should have delivered and did not, by source",
    ["source"],
)
