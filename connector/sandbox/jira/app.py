"""The Jira simulator: several supplier sites on one server, each under its own context path.

Site ``acme`` answers at ``http://127.0.0.1:PORT/acme/rest/api/2/...``, so python-jira is built
with ``server=".../acme"``. A site's ``deployment`` gives it a personality: ``cloud`` (API v2 and
v3, Basic e-mail + API token, ``search/jql``, 410 on the old search) or ``datacenter``
(``deploymentType: Server``, v2 only, PAT Bearer or Basic username + password, offset ``search``).
Each request: route -> authenticate -> rate limits -> handler, all under the app's lock.

Admin webhooks (``/rest/webhooks/1.0/webhook``, per site) are delivered by one
:class:`~connector.sandbox.push.Dispatcher` for the whole server (:mod:`.webhook_events`); its
faults and log are the control routes ``/_sandbox/push/faults`` and ``/_sandbox/push/deliveries``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, timedelta
from typing import Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wrappers import Request, Response

from connector.sandbox.core import Clock, PlatformApp, json_response, read_json
from connector.sandbox.jira.call import Call
from connector.sandbox.jira.dates import to_millis
from connector.sandbox.jira.errors import JiraApiError
from connector.sandbox.jira.limits import RateRefusal
from connector.sandbox.jira.model import Issue
from connector.sandbox.jira.render import View
from connector.sandbox.jira.routes import ANONYMOUS, CLOUD_ONLY, ISSUE_WRITES, URL_MAP, handler_for
from connector.sandbox.jira.site import JiraSite
from connector.sandbox.jira.webhook_events import RETRY_HEADER
from connector.sandbox.push import Dispatcher
from connector.sandbox.push import control as push_control
from connector.sandbox.spec import JiraSiteSpec

_UNAUTHENTICATED = {
    "cloud": "Client must be authenticated to access this resource.",
    "datacenter": "You are not authenticated. Authentication required to perform this operation.",
}


class JiraApp(PlatformApp):
    """The simulated Jira server. Raises ``ValueError`` for an inconsistent site spec."""

    name = "jira"

    def __init__(self, sites: Sequence[JiraSiteSpec], clock: Clock | None = None, *, seed: int = 0) -> None:
        super().__init__(clock, seed=seed)
        self.dispatcher = Dispatcher("jira", retry_header=RETRY_HEADER, now=self.clock.now, seed=seed)
        """Sends every site's webhook deliveries."""
        self.sites: dict[str, JiraSite] = {}
        for spec in sites:
            name = spec.name
            if not name or name != name.strip("/") or name.startswith("_") or name in self.sites:
                raise ValueError(
                    f"site name {name!r} must be unique, non-empty, without edge '/' or leading '_'"
                )
            self.sites[name] = JiraSite(spec, self.clock.real_now)
            self.sites[name].webhooks.dispatcher = self.dispatcher
        self._by_length = sorted(self.sites, key=len, reverse=True)

    # --- PlatformApp hooks ------------------------------------------------------------------------

    def error(self, status: int, message: str, detail: str | None = None) -> Response:
        """Jira's ``ErrorCollection`` envelope."""
        messages = [message] if detail is None else [f"{message}: {detail}"]
        return json_response({"errorMessages": messages, "errors": {}}, status)

    def reset_data(self) -> None:
        """Empty every site (issues, webhooks), restore its settings, forget queued deliveries and push faults."""
        for site in self.sites.values():
            site.reset()
        self.dispatcher.reset()

    def info(self) -> dict[str, Any]:
        """URLs, users with their simulator credentials, and projects of every site."""
        return {
            **super().info(),
            "sites": {
                name: {
                    "url": self.site_url(name),
                    "deployment": site.spec.deployment,
                    "users": [
                        {
                            "display_name": user.display_name,
                            "email": user.email,
                            "username": user.username,
                            "account_id": user.account_id,
                            "api_token": user.api_token,
                            "pat": user.pat,
                            "password": user.password,
                            "time_zone": user.time_zone,
                        }
                        for user in site.spec.users
                    ],
                    "projects": [
                        {"key": info.key, "name": info.spec.name, "id": info.project_id}
                        for info in site.projects.values()
                    ],
                    "settings": site.settings.as_json(),
                }
                for name, site in self.sites.items()
            },
        }

    def control(self, request: Request, route: str) -> Response | None:
        """``GET|POST /_sandbox/sites/<site>/settings`` (index lag, burst, per-issue limits, page cap) and push."""
        pushed = push_control(self.dispatcher, request, route)
        if pushed is not None:
            return pushed
        if not (route.startswith("sites/") and route.endswith("/settings")):
            return None
        site_name = route.removeprefix("sites/").removesuffix("/settings")
        site = self.sites.get(site_name)
        if site is None:
            return json_response({"error": f"no site {site_name}"}, 404)
        if request.method == "POST":
            payload = read_json(request) or {}
            if not isinstance(payload, dict):
                raise TypeError("settings are a JSON object")
            with self.lock:
                site.settings = site.settings.updated(payload)
                site.limiter.clear()
        return json_response(site.settings.as_json())

    # --- for tests ----------------------------------------------------------------------------------

    def site_url(self, site_name: str) -> str:
        """The base URL python-jira is given for a site."""
        return f"{self.base_url}/{site_name}"

    def peek_issue(self, site_name: str, issue_ref: str) -> Issue | None:
        """A copy of a live issue (by key or id) for read-only assertions in tests."""
        with self.lock:
            issue = self.sites[site_name].issue(issue_ref)
            return issue.snapshot() if issue is not None else None

    # --- requests -----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route a request to its site and endpoint; every refusal uses Jira's envelope."""
        path = request.path
        site_name = next((name for name in self._by_length if path.startswith(f"/{name}/")), None)
        if site_name is None:
            return self.error(404, f"No Jira site serves {path}")
        site = self.sites[site_name]
        try:
            endpoint, args = URL_MAP.bind("sandbox").match(path[len(site_name) + 1 :], method=request.method)
        except MethodNotAllowed as exc:
            response = self.error(405, f"Method {request.method} is not allowed for {request.path}")
            response.headers["Allow"] = ", ".join(exc.valid_methods or [])
            return response
        except NotFound:
            return self.error(404, f"null for uri: {request.url}")
        with self.lock:
            try:
                return self._dispatch(request, site, str(endpoint), dict(args))
            except JiraApiError as exc:
                return self._error_response(exc)

    def _dispatch(self, request: Request, site: JiraSite, endpoint: str, args: dict[str, str]) -> Response:
        version = args.pop("version", "2")
        if (version == "3" or endpoint in CLOUD_ONLY) and not site.is_cloud:
            raise JiraApiError(404, f"null for uri: {request.url}")
        username = self._authenticate(request, site) if endpoint not in ANONYMOUS else None
        if username is not None:
            self.set_user(request, username)
        now = to_millis(self.clock.now())
        zone = site.zones[username] if username else UTC
        api_version = "3" if version == "3" else "2"
        view = View(site, self.site_url(site.name), api_version, zone)
        call = Call(request, site, username, api_version, now, view)
        remaining = self._admit(call, endpoint, args)
        response = handler_for(endpoint, request.method)(call, args)
        if not site.is_cloud and remaining is not None:
            response.headers.extend(_datacenter_headers(site.settings.burst_per_second, remaining, 0))
        return response

    def _authenticate(self, request: Request, site: JiraSite) -> str:
        auth = request.authorization
        user = None
        if auth is not None and auth.type == "basic" and auth.username is not None:
            candidate = site.user_by_login(auth.username)
            secret = (candidate.api_token if site.is_cloud else candidate.password) if candidate else None
            user = candidate if secret and auth.password == secret else None
        elif auth is not None and auth.type == "bearer" and not site.is_cloud:
            user = next((u for u in site.users.values() if u.pat and u.pat == auth.token), None)
        if user is None:
            headers = {"WWW-Authenticate": 'Basic realm="protected-area"'}
            if auth is not None and not site.is_cloud:
                headers["X-Seraph-LoginReason"] = "AUTHENTICATED_FAILED"
            raise JiraApiError(401, _UNAUTHENTICATED[site.spec.deployment], headers=headers)
        return user.username

    def _admit(self, call: Call, endpoint: str, args: dict[str, str]) -> int | None:
        """Apply the burst and per-issue write limits; return the burst tokens left."""
        if call.username is None:
            return None
        site, method = call.site, call.request.method
        real = self.clock.real_now()
        refusal, remaining = site.limiter.burst(endpoint, method, real, site.settings.burst_per_second)
        if refusal is None and endpoint in ISSUE_WRITES and method in ("POST", "PUT", "DELETE"):
            issue = site.issue(args["issue_ref"])
            if issue is not None:
                refusal = site.limiter.issue_write(issue.issue_id, real, site.settings.issue_write_limits)
        if refusal is not None:
            # The windows run on real time; the reset the header shows is on the server's clock.
            refusal = replace(refusal, reset_at=refusal.reset_at + (call.now - real))
            raise JiraApiError(429, "Rate limit exceeded.", headers=_rate_headers(site, refusal))
        return remaining

    def _error_response(self, exc: JiraApiError) -> Response:
        response = json_response({"errorMessages": exc.messages, "errors": exc.errors}, exc.status)
        for key, value in exc.headers.items():
            response.headers[key] = value
        return response


def _rate_headers(site: JiraSite, refusal: RateRefusal) -> dict[str, str]:
    """Cloud: ``Retry-After`` and ``X-RateLimit-*`` with an ISO-8601 minute reset; DC: token-bucket headers."""
    headers = {"RateLimit-Reason": refusal.reason}
    if not site.is_cloud:
        interval = math.ceil(refusal.window_seconds)
        return headers | _datacenter_headers(refusal.limit, 0, refusal.retry_after, interval)
    reset = refusal.reset_at.astimezone(UTC)
    if reset.second or reset.microsecond:
        reset = reset.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return headers | {
        "Retry-After": str(refusal.retry_after),
        "X-RateLimit-Limit": str(refusal.limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": reset.strftime("%Y-%m-%dT%H:%MZ"),
    }


def _datacenter_headers(limit: int, remaining: int, retry_after: int, interval: int = 1) -> dict[str, str]:
    """Data Center's token-bucket headers (python-jira logs them on a 429)."""
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Interval-Seconds": str(interval),
        "X-RateLimit-FillRate": str(limit),
        "retry-after": str(retry_after),
    }
