"""The simulated ServiceNow instance: routing, authentication, rate limits and the control routes.

Serves the Table API (:mod:`.tableapi`) under ``/api/now/table``, ``/api/now/v1/table`` and
``/api/now/v2/table`` and OAuth at ``/oauth_token.do``; every error comes in ServiceNow's
envelope ``{"error": {"message", "detail"}, "status": "failure"}``. Control routes (besides the
shared ones of :class:`~connector.sandbox.core.PlatformApp`): ``GET|POST /_sandbox/settings``
(:class:`.settings.Settings`, partial updates), ``GET|POST|DELETE /_sandbox/ratelimits``,
``GET|POST /_sandbox/push`` (the push update set as a setting, :mod:`.push`) and the push
dispatcher's ``/_sandbox/push/faults`` and ``/_sandbox/push/deliveries``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from werkzeug.wrappers import Request, Response

from connector.sandbox.core import Clock, PlatformApp, json_response, read_json
from connector.sandbox.push import Dispatcher, PushFaults
from connector.sandbox.push import control as push_control
from connector.sandbox.servicenow.auth import Credentials, basic_credentials, bearer_token
from connector.sandbox.servicenow.catalog import Catalog
from connector.sandbox.servicenow.dates import format_utc
from connector.sandbox.servicenow.errors import ServiceNowError, not_authenticated
from connector.sandbox.servicenow.push import RETRY_HEADER, TIMEOUT_MS, IncidentPush
from connector.sandbox.servicenow.ratelimit import RateLimiter
from connector.sandbox.servicenow.rules import Actor
from connector.sandbox.servicenow.seed import seed, user_sys_id, users_of
from connector.sandbox.servicenow.settings import Settings
from connector.sandbox.servicenow.tableapi import Session, TableApi
from connector.sandbox.servicenow.tables import Database
from connector.sandbox.servicenow.writes import Writer
from connector.sandbox.spec import ServiceNowSpec, SnowUser

_TABLE_PATH = re.compile(r"^/api/now/(?:(v1|v2)/)?table/([^/]+)(?:/([^/]+))?/?$")
OAUTH_PATH = "/oauth_token.do"


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


class ServiceNowApp(PlatformApp):
    """A ServiceNow instance as pysnow and plain ``requests`` see it; see the module docstring.

    ``insert`` and ``get_record`` reach the same data in-process (bulk seeding, test assertions).
    """

    name = "servicenow"

    def __init__(self, spec: ServiceNowSpec, clock: Clock | None = None, *, seed: int = 0) -> None:
        super().__init__(clock, seed=seed)
        self.spec = spec
        self.catalog = Catalog(spec.custom_columns)
        self.credentials = Credentials(users_of(spec), spec.oauth_clients)
        self.rate_limits = RateLimiter()
        self._seed = seed
        self.dispatcher = Dispatcher(
            "servicenow",
            retry_header=RETRY_HEADER,
            now=self.clock.now,
            seed=seed,
            defaults=PushFaults(retries=0, timeout_ms=TIMEOUT_MS),
        )
        self.push = IncidentPush(self.dispatcher, self.catalog, seed)
        self.settings = Settings(token_ttl_seconds=spec.token_ttl_seconds)
        self.database = Database(self.catalog, seed)
        self.writer = Writer(self.database, self.settings, self.clock.now, self.push.written)
        self.api = TableApi(self.database, self.writer, self.settings, lambda: self.base_url)
        self.reset_data()

    # --- PlatformApp hooks ------------------------------------------------------------------------

    def reset_data(self) -> None:
        """Back to the seeded state: data, settings, tokens, rate-limit rules, push setting, faults and queue."""
        with self.lock:
            self.push.reset()
            self.dispatcher.reset()
            self.settings = Settings(token_ttl_seconds=self.spec.token_ttl_seconds)
            self.database = Database(self.catalog, self._seed)
            seed(self.database, self.spec, format_utc(self.clock.now()))
            self.writer = Writer(self.database, self.settings, self.clock.now, self.push.written)
            self.api = TableApi(self.database, self.writer, self.settings, lambda: self.base_url)
            self.credentials.forget_tokens()
            self.rate_limits.clear()

    def error(self, status: int, message: str, detail: str | None = None) -> Response:
        """ServiceNow's error envelope."""
        return json_response({"error": {"message": message, "detail": detail}, "status": "failure"}, status)

    def info(self) -> dict[str, Any]:
        """URL, the users who can log in (with their sandbox passwords) and the OAuth clients."""
        users = [
            {"user_name": u.user_name, "password": u.password, "name": u.name, "roles": list(u.roles)}
            for u in self.credentials.users.values()
        ]
        clients = [
            {"client_id": c.client_id, "client_secret": c.client_secret}
            for c in self.credentials.clients.values()
        ]
        return {"name": self.name, "url": self.base_url, "users": users, "oauth_clients": clients}

    def control(self, request: Request, route: str) -> Response | None:
        """``settings``, ``ratelimits``, ``push`` and the push dispatcher's control routes."""
        pushed = push_control(self.dispatcher, request, route)
        if pushed is not None:
            return pushed
        if route == "push":
            if request.method == "POST":
                payload = read_json(request) or {}
                if not isinstance(payload, Mapping):
                    raise TypeError("the push setting is a JSON object")
                with self.lock:
                    self.push.configure(payload)
            return json_response(self.push.setting.as_json())
        if route == "settings":
            if request.method == "POST":
                changes = read_json(request) or {}
                if not isinstance(changes, Mapping):
                    raise TypeError("settings are a JSON object")
                with self.lock:
                    self.settings.update(changes)
            return json_response(self.settings.as_json())
        if route == "ratelimits":
            if request.method == "POST":
                payload = read_json(request)
                self.rate_limits.add(payload if isinstance(payload, list) else [payload])
            elif request.method == "DELETE":
                self.rate_limits.clear()
            status = 201 if request.method == "POST" else 200
            return json_response(
                {"ratelimits": [rule.as_json() for rule in self.rate_limits.rules()]}, status
            )
        return None

    # --- requests ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one platform request (anything outside ``/_sandbox/``)."""
        if request.path == OAUTH_PATH:
            with self.lock:
                return self.credentials.token_endpoint(
                    request, self.clock.now(), self.settings.token_ttl_seconds
                )
        rate_headers: dict[str, str] = {}
        try:
            session = self._authenticate(request)
            self.set_user(request, session.user_name)
            rate_headers = self.rate_limits.check(
                session.user_name, request.method, request.path, self.clock.now()
            )
            response = self._route(request, session)
        except ServiceNowError as exc:
            response = self.error(exc.status, exc.message, exc.detail)
            rate_headers = {**rate_headers, **exc.headers}
        for key, value in rate_headers.items():
            response.headers[key] = value
        return response

    def _session(self, user: SnowUser) -> Session:
        sys_id = user_sys_id(user.user_name)
        record = self.database.table("sys_user").get(sys_id) or {}
        return Session(user.user_name, sys_id, _zone(record.get("time_zone", user.time_zone)))

    def _authenticate(self, request: Request) -> Session:
        header = request.headers.get("Authorization")
        with self.lock:
            token = bearer_token(header)
            if token is not None:
                user = self.credentials.user_of_token(token, self.clock.now())
            else:
                basic = basic_credentials(header)
                user = self.credentials.check_password(*basic) if basic else None
            if user is None:
                raise not_authenticated()
            return self._session(user)

    def _route(self, request: Request, session: Session) -> Response:
        match = _TABLE_PATH.match(request.path)
        if match is None:
            raise ServiceNowError(404, "Requested URI does not represent any resource", None)
        version, table, sys_id = match[1], match[2], match[3]
        method = request.method
        if method == "POST" and request.headers.get("X-HTTP-Method-Override"):
            method = request.headers["X-HTTP-Method-Override"].upper()
        with self.lock:
            self.database.table(table)
            if sys_id is None and method in ("GET", "HEAD"):
                return self.api.list_records(table, request, session, version=version)
            if sys_id is None and method == "POST":
                return self.api.create(table, request, session)
            if sys_id is not None and method in ("GET", "HEAD"):
                return self.api.read(table, sys_id, request, session)
            if sys_id is not None and method in ("PUT", "PATCH"):
                return self.api.update(table, sys_id, request, session)
            if sys_id is not None and method == "DELETE":
                return self.api.delete(table, sys_id)
        raise ServiceNowError(405, "Method not Supported", f"{method} method not supported for API")

    # --- in-process access ------------------------------------------------------------------------

    def insert(self, table: str, fields: Mapping[str, Any], *, user: str) -> dict[str, str]:
        """Insert a record as ``user`` exactly as ``POST /api/now/table/{table}`` would; returns its stored values.

        Raises ``ServiceNowError`` where the API would answer an error (unknown table, data policy).
        """
        with self.lock:
            known = self.credentials.users.get(user)
            sys_id = user_sys_id(user)
            record = self.database.table("sys_user").get(sys_id) or {}
            zone = _zone(record.get("time_zone", known.time_zone if known else ""))
            return dict(self.writer.insert(table, fields, Actor(user, sys_id, zone)))

    def get_record(self, table: str, sys_id: str) -> dict[str, str] | None:
        """The stored values of one record (non-empty columns only), or ``None``."""
        with self.lock:
            record = self.database.table(table).get(sys_id)
            return dict(record) if record is not None else None
