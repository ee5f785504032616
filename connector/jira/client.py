"""python-jira for one supplier site: building the client, and the raw calls it cannot make right.

Nothing outside :mod:`connector.jira` imports python-jira. Every method of :class:`JiraClient`
makes exactly one HTTP request (:func:`connect` makes the ``serverInfo`` one) and returns the
decoded JSON. An HTTP error answer comes out as :class:`~connector.http.transport.HttpFailure` (python-jira's
``JIRAError`` converted, so the shared translation rules apply); connection problems come out as
the ``requests`` exceptions they are. The adapter runs each call inside ``Transport.call``.

python-jira is untyped: its objects stay ``Any`` here, and only JSON (``dict``/``list``) leaves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import requests
from jira import JIRA, JIRAError

from connector.config.connector_file import JiraApiTokenAuth, JiraBasicAuth, JiraSite
from connector.core.errors import InvalidRequest
from connector.core.secrets import Secret, SecretRef, resolve_in
from connector.http.transport import HttpFailure

JsonObject = dict[str, Any]
REST_PATH = "rest/api/2"
WEBHOOKS_PATH = "rest/webhooks/1.0"
"""Admin webhooks (Cloud and Data Center): listed by ``GET rest/webhooks/1.0/webhook``, admins only."""
"""python-jira speaks REST v2 on Cloud too: string bodies, never ADF."""


@dataclass(frozen=True)
class Credentials:
    """How python-jira authenticates: ``basic`` (login, secret) or a bearer ``token`` (Data Center PAT)."""

    basic: tuple[str, Secret] | None = None
    token: Secret | None = None


def credentials_for(site: JiraSite, base_dir: Path | None = None) -> Credentials:
    """Resolve the site's credential references (``file:`` ones relative to ``base_dir`` when unset).

    Raises:
        connector.core.secrets.UnresolvedSecret: a variable is unset or a file unreadable.
    """

    def resolve(ref: SecretRef) -> Secret:
        return resolve_in(ref, base_dir)

    auth = site.auth
    if isinstance(auth, JiraApiTokenAuth):  # Cloud: e-mail + API token over HTTP basic
        return Credentials(basic=(auth.email, resolve(auth.token)))
    if isinstance(auth, JiraBasicAuth):  # Data Center with basic auth still enabled
        return Credentials(basic=(auth.username, resolve(auth.password)))
    return Credentials(token=resolve(auth.token))  # Data Center PAT as a bearer token


def connect(
    url: str,
    credentials: Credentials,
    *,
    timeout: float,
    verify_tls: bool,
    session_hook: Callable[[requests.Session, str], None] | None = None,
) -> JiraClient:
    """Build python-jira for ``url``; this sends ``GET serverInfo`` (anonymous on Jira).

    ``session_hook`` gets python-jira's session and ``url`` once the session exists (to record the
    server's clock, to pool connections).
    """
    options: dict[str, Any] = {
        "server": url,
        "options": {"verify": verify_tls},
        # python-jira's ResilientSession sleeps for real (up to minutes per call) and crashes on an
        # HTTP-date Retry-After; our Transport is the one retry layer.
        "max_retries": 0,
        # Without a timeout a call can hang forever.
        "timeout": timeout,
        # Its search routing and Cloud checks read serverInfo.deploymentType. validate=True would
        # call /rest/auth/1/session, which Jira 11 Data Center rejects: we call myself() instead.
        "get_server_info": True,
        "validate": False,
    }
    if credentials.basic is not None:
        login, secret = credentials.basic
        options["basic_auth"] = (login, secret.reveal())
    elif credentials.token is not None:
        options["token_auth"] = credentials.token.reveal()
    with _http_failures():
        jira = JIRA(**options)
    client = JiraClient(jira)
    if session_hook is not None:
        session_hook(client.session, url)
    return client


class JiraClient:
    """One site's python-jira client and the raw calls made through its authenticated session."""

    def __init__(self, jira: Any) -> None:
        self._jira = jira

    @property
    def session(self) -> requests.Session:
        """python-jira's authenticated session (it offers no public accessor)."""
        session: requests.Session = self._jira._session
        return session

    @property
    def server_url(self) -> str:
        """The site's base URL, without a trailing slash."""
        return str(self._jira.server_url)

    @property
    def deployment_type(self) -> str | None:
        """``serverInfo.deploymentType``: ``Cloud``, ``Server`` or ``DataCenter``."""
        value = self._jira.deploymentType
        return str(value) if value is not None else None

    def close(self) -> None:
        """Close the HTTP session."""
        self._jira.close()

    # --- calls python-jira makes right (one request each) ----------------------------------------

    def myself(self) -> JsonObject:
        """``GET myself``."""
        with _http_failures():
            return _object(self._jira.myself())

    def transitions(self, jira_key: str) -> list[JsonObject]:
        """``GET issue/{key}/transitions``."""
        with _http_failures():
            found = self._jira.transitions(jira_key)
        return [_object(item) for item in found]

    def transition(self, jira_key: str, transition_id: str, fields: Mapping[str, Any]) -> None:
        """``POST issue/{key}/transitions``."""
        if not transition_id.isdigit():
            # python-jira would look a non-numeric transition up by name, with an extra GET.
            raise InvalidRequest(f"transition id {transition_id!r} is not numeric")
        with _http_failures():
            self._jira.transition_issue(jira_key, transition_id, fields=dict(fields))

    def add_comment(self, jira_key: str, body: str) -> JsonObject:
        """``POST issue/{key}/comment`` with a v2 string body; the created comment."""
        with _http_failures():
            return _object(self._jira.add_comment(jira_key, body).raw)

    # --- raw calls through the session --------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any]) -> JsonObject:
        """``GET {server}/rest/api/2/{path}``."""
        return _object(self._send("GET", path, params=dict(params)))

    def issue(self, key_or_id: str, fields: str, properties: str, expand: str | None = None) -> JsonObject:
        """``GET issue/{key}?fields=…&properties=…[&expand=…]`` as raw JSON.

        The request ``JIRA.issue`` sends, without its parse of the whole answer (changelog and
        comments included) into resource objects that nobody here reads.
        """
        params = {"fields": fields, "properties": properties}
        if expand:
            params["expand"] = expand
        return self.get(f"issue/{key_or_id}", params)

    def get_list(self, path: str, params: Mapping[str, Any]) -> list[JsonObject]:
        """``GET {server}/rest/api/2/{path}`` answering a JSON list (``field``, ``status``)."""
        value = self._send("GET", path, params=dict(params))
        if not isinstance(value, list):
            raise ValueError(f"expected a JSON list, got {type(value).__name__}")
        return [_object(item) for item in value]

    def webhooks(self) -> list[JsonObject]:
        """``GET {server}/rest/webhooks/1.0/webhook``: the site's admin webhooks."""
        value = self._send("GET", "webhook", params={}, rest=WEBHOOKS_PATH)
        if not isinstance(value, list):
            raise ValueError(f"expected a JSON list, got {type(value).__name__}")
        return [_object(item) for item in value]

    def post(self, path: str, body: Any) -> JsonObject:
        """``POST {server}/rest/api/2/{path}`` with a JSON body."""
        return _object(self._send("POST", path, body=body))

    def put(self, path: str, body: Any) -> JsonObject:
        """``PUT {server}/rest/api/2/{path}`` with a JSON body."""
        return _object(self._send("PUT", path, body=body))

    def _send(
        self,
        method: Literal["GET", "POST", "PUT"],
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        rest: str = REST_PATH,
    ) -> Any:
        url = f"{self.server_url}/{rest}/{path}"
        data = None if body is None else json.dumps(body)
        # ResilientSession applies the client's timeout itself and raises JIRAError on an error answer.
        with _http_failures():
            response = self.session.request(method, url, params=params, data=data)
        if not response.content:
            return {}
        return response.json()


def _object(value: Any) -> JsonObject:
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


@contextmanager
def _http_failures() -> Iterator[None]:
    """Turn python-jira's ``JIRAError`` into ``HttpFailure``; never let its text out (it holds headers)."""
    try:
        yield
    except JIRAError as exc:
        response = exc.response
        if exc.status_code is None or response is None:
            raise InvalidRequest("python-jira refused the call before an HTTP answer") from None
        raise HttpFailure(int(exc.status_code), response.headers, response.text) from None
