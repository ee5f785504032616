"""The push receiver: Jira webhooks and the ServiceNow push, verified, remembered, turned into work.

A delivery is a hint, never a source of truth (docs/push.md). What it may do:

* ``POST /push/jira/<supplier>``: the issue it names is looked up among the links. A linked issue
  at the version our own last write left (``links.seen_version``) is our echo: nothing to do.
  Otherwise its incident x supplier is queued in the new lane, and a worker reads the issue
  itself before planning. An issue no link names wakes the supplier's poll (a search finds issues
  stamped for us that the store does not know).
* ``POST /push/servicenow``: an incident notification's version is kept for the promotion rules
  (:class:`~connector.store.deliveries.PushedVersions`), which evaluate it even if the incident
  changed again before the poll read it; either kind wakes the ServiceNow poll, which reads the
  incident and its journal and queues work as it always does.

Answers (docs/push.md): 405 not a POST; 404 no such source or no secret configured for it; 413
over ``push.max_body``, unread; 401 a missing, malformed or wrong signature, checked over the raw
body before it is parsed; 400 signed but not the platform's JSON; 200 a repeat of a delivery
already received (same identifier) or our own echo; 202 queued or a poll woken; 503 the store
could not be written (the platform retries). The delivery's identifier is recorded in the
transaction that queues its work, so a retry after a 503 is never a duplicate.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from connector.config import LoadedConfig
from connector.core.errors import CredentialError
from connector.core.secrets import Secret, SecretRef, UnresolvedSecret, resolve_in
from connector.core.signatures import Encoding, check
from connector.core.times import parse_jira_time
from connector.http.serve import ServedApp
from connector.store import Store
from connector.store.db import utcnow
from connector.store.deliveries import PushedVersion, versions_source
from connector.store.queue import NEW
from connector.store.workitems import Enqueue
from connector.sync.cycle import issue_version
from connector.telemetry import metrics

log = logging.getLogger(__name__)

SERVICENOW = "servicenow"
JIRA_PREFIX = "/push/jira/"
FORGET_EVERY = timedelta(minutes=10)
"""How often the receiver removes deliveries older than ``push.remember``."""


@dataclass(frozen=True)
class Source:
    """One platform that may push: how its deliveries are signed and named."""

    name: str
    """``servicenow`` or ``jira:<supplier>``."""
    secret: Secret
    signature_header: str
    encoding: Encoding
    delivery_header: str


def jira_source(supplier: str, secret: Secret) -> Source:
    """A supplier's Jira: ``X-Hub-Signature: sha256=<hex>``, ``X-Atlassian-Webhook-Identifier``."""
    return Source(f"jira:{supplier}", secret, "X-Hub-Signature", "hex", "X-Atlassian-Webhook-Identifier")


def servicenow_source(secret: Secret) -> Source:
    """Our ServiceNow business rule: ``X-MIM-Signature: sha256=<base64>``, ``X-MIM-Delivery``."""
    return Source(SERVICENOW, secret, "X-MIM-Signature", "base64", "X-MIM-Delivery")


def sources_from(loaded: LoadedConfig) -> dict[str, Source]:
    """The sources ``loaded`` gives a secret to: ServiceNow's ``push_secret``, each enabled site's ``webhook_secret``.

    Raises:
        connector.core.errors.CredentialError: a secret's variable is unset or its file unreadable
            (every one of them is named).
    """
    connector, base_dir = loaded.connector, loaded.base_dir
    refs: dict[str, tuple[SecretRef, Callable[[Secret], Source]]] = {}
    if connector.servicenow.push_secret is not None:
        refs[SERVICENOW] = (connector.servicenow.push_secret, servicenow_source)
    for name, site in connector.suppliers.items():
        if site.enabled and site.jira.webhook_secret is not None:
            refs[f"jira:{name}"] = (site.jira.webhook_secret, functools.partial(jira_source, name))
    sources: dict[str, Source] = {}
    problems = []
    for name, (ref, make) in refs.items():
        try:
            sources[name] = make(resolve_in(ref, base_dir))
        except UnresolvedSecret as exc:
            problems.append(f"push from {name}: {exc.brief}")
    if problems:
        raise CredentialError(problems)
    return sources


@dataclass
class Wakers:
    """What a delivery may set going in this process: the workers, a source's poll."""

    workers: Callable[[], None] = lambda: None
    poll: Callable[[str], None] = lambda source: None
    """Called with ``servicenow`` or ``jira:<supplier>``."""


@dataclass
class PushReceiver:
    """The WSGI application of ``/push/...`` for ``sources`` (``servicenow``, ``jira:<supplier>``)."""

    store: Store
    sources: Mapping[str, Source]
    max_body: int
    remember: timedelta
    wakers: Wakers = field(default_factory=Wakers)
    clock: Callable[[], datetime] = utcnow
    _forgot_at: datetime | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Answer one delivery (see the module docstring)."""
        request = Request(environ)
        request.max_content_length = self.max_body
        return self.answer(request)(environ, start_response)

    def answer(self, request: Request) -> Response:
        """The response to ``request``, after acting on it."""
        source = self._source_of(request.path)
        if source is None:
            return _reply(404, "no push endpoint here")
        if request.method != "POST":
            return _reply(405, "POST only", {"Allow": "POST"})
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            return self._refuse(source, "too_large", 413, f"a delivery is at most {self.max_body} bytes")
        problem = check(
            source.secret.reveal(), body, request.headers.get(source.signature_header), source.encoding
        )
        if problem is not None:
            return self._refuse(source, problem, 401, "signature required", request)
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return self._refuse(source, "bad_body", 400, "a JSON object was expected", request)
        delivery = request.headers.get(source.delivery_header) or "sha256:" + hashlib.sha256(body).hexdigest()
        try:
            outcome = (
                self._servicenow(source, delivery, payload)
                if source.name == SERVICENOW
                else self._jira(source, delivery, payload)
            )
            self._forget_old()
        except _BadBody as exc:
            return self._refuse(source, "bad_body", 400, str(exc), request)
        except SQLAlchemyError as exc:
            log.error("push from %s not taken: the store failed: %s", source.name, type(exc).__name__)
            return _reply(503, "the store is unavailable; retry")
        metrics.PUSH_RECEIVED.labels(source.name, outcome).inc()
        if outcome == "duplicate" or outcome == "echo":
            return _reply(200, outcome)
        return _reply(202, outcome)

    # --- the two platforms ----------------------------------------------------------------------

    def _jira(self, source: Source, delivery: str, payload: Mapping[str, Any]) -> str:
        supplier = source.name.removeprefix("jira:")
        issue = payload.get("issue")
        issue_id = issue.get("id") if isinstance(issue, dict) else None
        if not isinstance(issue_id, str | int) or not str(issue_id):
            raise _BadBody("no issue.id in the delivery")
        link = self.store.links.by_issue(supplier, str(issue_id))
        fields = issue.get("fields") if isinstance(issue, dict) else None
        updated = _jira_time(fields.get("updated") if isinstance(fields, dict) else None)
        now = self.clock()
        with self.store.engine.begin() as conn:
            if not self.store.deliveries.first(source.name, delivery, now, conn=conn):
                return "duplicate"
            if updated is not None:  # what a poll that finds this version asks (``mim_push_missed``)
                self.store.deliveries.first(
                    versions_source(source.name), issue_version(str(issue_id), updated), now, conn=conn
                )
            if link is None:
                outcome = "woke_poll"
            elif (
                updated is not None
                and payload.get("webhookEvent") != "comment_deleted"
                and self.store.links.seen_version(link.link_id) == issue_version(str(issue_id), updated)
            ):
                return "echo"
            else:
                item = Enqueue(link.incident_sys_id, supplier, reason="push", lane=NEW)
                self.store.queue.enqueue([item], now, conn=conn)
                outcome = "queued"
        if outcome == "queued":
            self.wakers.workers()
        else:
            self.wakers.poll(source.name)
        return outcome

    def _servicenow(self, source: Source, delivery: str, payload: Mapping[str, Any]) -> str:
        table, sys_id = payload.get("table"), payload.get("sys_id")
        if table not in ("incident", "sys_journal_field") or not isinstance(sys_id, str) or not sys_id:
            raise _BadBody("expected table incident or sys_journal_field and a sys_id")
        now = self.clock()
        version = _pushed_version(payload, now) if table == "incident" else None
        with self.store.engine.begin() as conn:
            if not self.store.deliveries.first(source.name, delivery, now, conn=conn):
                return "duplicate"
            if version is not None:
                self.store.pushed.keep(version, conn=conn)
                self.store.deliveries.first(
                    versions_source(source.name), f"{version.sys_id}@{version.mod_count}", now, conn=conn
                )
        self.wakers.poll(SERVICENOW)
        return "woke_poll"

    # --- helpers --------------------------------------------------------------------------------

    def _source_of(self, path: str) -> Source | None:
        if path == "/push/servicenow":
            return self.sources.get(SERVICENOW)
        if path.startswith(JIRA_PREFIX):
            return self.sources.get("jira:" + path.removeprefix(JIRA_PREFIX).strip("/"))
        return None

    def _refuse(
        self, source: Source, reason: str, status: int, message: str, request: Request | None = None
    ) -> Response:
        metrics.PUSH_REJECTED.labels(source.name, reason).inc()
        log.warning(
            "push from %s refused (%s): %s",
            source.name,
            reason,
            f"from {request.remote_addr}" if request is not None else "unread",
        )
        return _reply(status, message)

    def _forget_old(self) -> None:
        now = self.clock()
        with self._lock:
            if self._forgot_at is not None and now - self._forgot_at < FORGET_EVERY:
                return
            self._forgot_at = now
        self.store.deliveries.forget_before(now - self.remember)


class _BadBody(ValueError):
    """Signed, but not what the platform sends."""


def _pushed_version(payload: Mapping[str, Any], now: datetime) -> PushedVersion:
    """The incident version a ServiceNow notification describes, for the rules."""
    fields = payload.get("fields")
    count = payload.get("sys_mod_count")
    if isinstance(count, str) and count.isdigit():
        count = int(count)
    if not isinstance(count, int) or isinstance(count, bool) or not isinstance(fields, dict):
        raise _BadBody("an incident notification needs sys_mod_count and fields")
    return PushedVersion(
        sys_id=str(payload["sys_id"])[:32],
        mod_count=count,
        number=str(payload.get("number") or fields.get("number") or ""),
        updated_on=str(payload.get("sys_updated_on") or ""),
        fields={str(name): "" if value is None else str(value) for name, value in fields.items()},
        received_at=now,
    )


def _jira_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_jira_time(value)
    except ValueError:
        return None


def _reply(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps({"status": status, "message": message}) + "\n",
        status=status,
        mimetype="application/json",
        headers=dict(headers or {}),
    )


class PushServer(ServedApp):
    """Serves a :class:`PushReceiver` from a background thread on ``host:port`` (0: any free port)."""

    def __init__(self, receiver: PushReceiver, host: str, port: int) -> None:
        self.receiver = receiver
        super().__init__(receiver, host, port, "push")
