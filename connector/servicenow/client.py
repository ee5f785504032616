"""HTTP to one ServiceNow instance through pysnow: the session, the client, one request at a time.

Every request runs inside :meth:`connector.http.transport.Transport.call` (pacing, the one retry layer,
error translation, the server clock) and is read completely there, because pysnow raises lazily:
an HTTP error surfaces only when the body is read. Nothing outside this package imports pysnow,
requests-oauthlib or requests for ServiceNow.

pysnow 0.7.17 traps worked around here and in :mod:`.session`, each named where it is applied:

* a fixed 60 s timeout per request, and ``OAuthClient.resource()`` takes none;
* one ``ParamsBuilder`` shared by the Resources of a client, so parameters leak between calls;
* ``update()`` is a GET then a PUT;
* 4xx/5xx arrive as ``requests.HTTPError`` with ServiceNow's envelope unparsed;
* ``OAuthClient`` builds a new, untimed ``OAuth2Session`` on every ``resource()`` call and its
  ``generate_token()`` posts through a throwaway session without a timeout;
* oauthlib refuses plain http unless ``OAUTHLIB_INSECURE_TRANSPORT=1``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from oauthlib.oauth2 import LegacyApplicationClient, OAuth2Error  # type: ignore[import-untyped]

from connector.config.connector_file import ServiceNowOAuth2Auth, ServiceNowSite
from connector.core.errors import AuthError, CredentialsRefused, InvalidRequest, Unavailable, UncertainOutcome
from connector.core.secrets import REDACTOR, Secret, interpolate, resolve_in
from connector.core.urls import is_loopback
from connector.http.transport import Transport
from connector.servicenow.pysnow_lib import InvalidUsage, MissingResult, ResponseError, pysnow
from connector.servicenow.session import (
    SYSTEM,
    OAuthTokens,
    SnowOAuthSession,
    SnowSession,
    raise_for_status,
)

T = TypeVar("T")
HIBERNATING = "Instance Hibernating page"
_SAFE_SYS_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")


def message_of(_status: int, body: str) -> str:
    """The readable part of a ServiceNow error answer, for the transport's messages.

    Table API: ``{"error": {"message", "detail"}, "status": "failure"}``; OAuth endpoint:
    ``{"error", "error_description"}`` (RFC 6749); an HTML page (a hibernating instance, a proxy)
    is named, not quoted. One line: error messages are one line (a proxy's text page is not).
    """
    return " ".join(_message_of(body).split())


def _message_of(body: str) -> str:
    try:
        payload = json.loads(body)
    except ValueError:
        return "an HTML page, not JSON" if body.lstrip().startswith("<") else body[:300]
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict):
        message, detail = str(error.get("message") or ""), str(error.get("detail") or "")
        return f"{message}: {detail}" if message and detail else message or detail
    if isinstance(error, str):
        description = payload.get("error_description")
        return f"{error}: {description}" if description else error
    return body[:300]


def _envelope(response: requests.Response | None) -> tuple[str, str]:
    """``(message, detail)`` of a Table API error answer; empty strings when it has none."""
    try:
        error = response.json().get("error") if response is not None else None
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("message") or ""), str(error.get("detail") or "")


def _is_no_record(exc: requests.HTTPError) -> bool:
    """True for ServiceNow's 404 for a sys_id that does not exist or is not readable."""
    response = exc.response
    return (
        response is not None and response.status_code == 404 and _envelope(response)[0] == "No Record found"
    )


def _policy_refusal(exc: requests.HTTPError, what: str) -> InvalidRequest | None:
    """A 403 from a data policy or a business rule ("Operation Failed") is our request's fault, not a right missing.

    An ``Operation Failed`` whose detail names an ACL stays a permission problem.
    """
    response = exc.response
    if response is None or response.status_code != 403:
        return None
    message, detail = _envelope(response)
    if "Data Policy" in f"{message} {detail}" or (message == "Operation Failed" and "ACL" not in detail):
        text = message_of(403, response.text)
        return InvalidRequest(REDACTOR.redact(f"{SYSTEM}: {what} -> 403 {text}"))
    return None


def record_path(sys_id: str) -> str:
    """``sys_id`` checked for use in a URL path or an encoded query (no separators, no carets)."""
    if not _SAFE_SYS_ID.match(sys_id):
        raise InvalidRequest(f"{SYSTEM}: {sys_id!r} is not a sys_id")
    return quote(sys_id, safe="")


class ServiceNowClient:
    """pysnow's client for one instance, with the verbs the adapter needs; raises only :mod:`connector.core.errors`.

    Secrets are resolved here, at construction (which registers them with the redactor); no
    request is sent before the first call.
    """

    def __init__(
        self,
        site: ServiceNowSite,
        transport: Transport,
        *,
        base_dir: Path | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.transport = transport
        url = urlsplit(interpolate(site.instance_url))
        self._host, self._use_ssl = url.netloc + url.path.rstrip("/"), url.scheme == "https"
        self._tokens: OAuthTokens | None = None
        timeout, verify = site.timeout.total_seconds(), site.verify_tls
        auth = site.auth
        password = resolve_in(auth.password, base_dir)
        if isinstance(auth, ServiceNowOAuth2Auth):
            client_secret = resolve_in(auth.client_secret, base_dir)
            if not self._use_ssl and is_loopback(url.hostname):
                # oauthlib refuses OAuth 2 over plain http; only the local sandbox speaks http, on loopback.
                os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
            session: SnowSession = self._oauth_session(
                timeout, verify, auth, (password, client_secret), clock
            )
        else:
            session = SnowSession(timeout, verify)
            session.auth = requests.auth.HTTPBasicAuth(auth.username, password.reveal())
            self.client = pysnow.Client(host=self._host, use_ssl=self._use_ssl, session=session)
        self.session = session
        transport.watch(session, f"{url.scheme}://{self._host}")

    def _oauth_session(
        self,
        timeout: float,
        verify: bool,
        auth: ServiceNowOAuth2Auth,
        secrets: tuple[Secret, Secret],
        clock: Callable[[], float],
    ) -> SnowOAuthSession:
        """The one OAuth session of pysnow's OAuthClient; ``secrets`` are (password, client_secret).

        Builds ``self.client``; tokens are requested on first use, not here.
        """
        password, client_secret = secrets
        # requests-oauthlib logs request bodies and tokens at DEBUG, in a form the redactor cannot spot.
        oauth_log = logging.getLogger("requests_oauthlib")
        oauth_log.setLevel(max(oauth_log.level, logging.INFO))
        self.client = pysnow.OAuthClient(
            client_id=auth.client_id,
            client_secret=client_secret.reveal(),
            host=self._host,
            use_ssl=self._use_ssl,
        )
        # pysnow workaround: OAuthClient.resource() would build a fresh, untimed OAuth2Session per
        # call (losing the Date hook); we never call it and keep this one session for the client.
        # No auto_refresh_url: requests-oauthlib's own refresh would post the request's params and
        # body into the token form (the pysnow refresh leak). OAuthTokens renews instead; a token oauthlib
        # finds expired raises TokenExpiredError, which takes the once-on-401 path.
        session = SnowOAuthSession(timeout, verify, client=LegacyApplicationClient(client_id=auth.client_id))
        for hook in ("access_token_response", "refresh_token_response"):
            session.register_compliance_hook(hook, raise_for_status)
        self.client.session = session
        credentials = (auth.username, password, auth.client_id, client_secret)
        self._tokens = OAuthTokens(self.client, session, self.transport, credentials, clock)
        self.client.token_updater = self._tokens.stored
        return session

    # --- the verbs --------------------------------------------------------------------------------

    def get_records(self, table: str, query: str, fields: Sequence[str], limit: int) -> list[dict[str, Any]]:
        """One page of ``table`` for an encoded ``query`` (stored values, references as sys_ids)."""

        def fetch() -> list[dict[str, Any]]:
            response = self._resource(table).get(query=query, limit=limit, offset=0, fields=list(fields))
            return list(response.all())

        return self.call(fetch, method="GET", what=f"GET {table}", write=False)

    def get_record(self, table: str, sys_id: str, fields: Sequence[str]) -> dict[str, Any] | None:
        """One record by sys_id, or ``None`` when ServiceNow answers 404 No Record found."""
        path = record_path(sys_id)

        def fetch() -> dict[str, Any] | None:
            resource = self._resource(table, fields)
            try:
                record: dict[str, Any] = resource.request("GET", path_append=f"/{path}").one()
            except requests.HTTPError as exc:
                if _is_no_record(exc):
                    return None
                raise
            return record

        return self.call(fetch, method="GET", what=f"GET {table}", write=False)

    def create_record(self, table: str, payload: Mapping[str, str], fields: Sequence[str]) -> dict[str, Any]:
        """One ``POST`` creating a record; never repeated once it may have been sent."""

        def send() -> dict[str, Any]:
            # pysnow workaround: a fresh Resource (and ParamsBuilder) so no GET parameter leaks into the POST.
            created: dict[str, Any] = self._resource(table, fields).create(dict(payload)).one()
            return created

        return self.call(send, method="POST", what=f"POST {table}", write=True)

    def patch_record(self, table: str, sys_id: str, payload: Mapping[str, str]) -> int | None:
        """One ``PATCH`` of a record; never repeated once it may have been sent. Returns its new ``sys_mod_count``."""
        url = f"{self.client.base_url}/api/now/table/{table}/{record_path(sys_id)}"
        what = f"PATCH {table}"

        def send() -> int | None:
            # pysnow workaround: Resource.update() is a GET then a PUT; one PATCH through its session
            # instead, asking for nothing but the sys_id and modification count back.
            response = self.session.patch(
                url, params={"sysparm_fields": "sys_id,sys_mod_count"}, json=dict(payload)
            )
            response.raise_for_status()
            try:
                result = response.json().get("result")
            except (ValueError, AttributeError):
                if HIBERNATING in response.text:
                    raise Unavailable(f"{SYSTEM}: {what}: the instance is hibernating") from None
                raise UncertainOutcome(
                    f"{SYSTEM}: {what}: unreadable answer; it may have been applied"
                ) from None
            if not isinstance(result, dict):
                raise UncertainOutcome(f"{SYSTEM}: {what}: answer without a result; it may have been applied")
            count = str(result.get("sys_mod_count", ""))
            return int(count) if count.isdigit() else None

        return self.call(send, method="PATCH", what=what, write=True)

    def close(self) -> None:
        """Release the session's connections."""
        self.session.close()

    # --- plumbing ---------------------------------------------------------------------------------

    def _resource(self, table: str, fields: Sequence[str] = ()) -> Any:
        # pysnow workaround: Resources of one client share its ParamsBuilder, so parameters leak from
        # call to call; a fresh Resource on a fresh ParamsBuilder for every request.
        parameters = pysnow.ParamsBuilder()
        parameters.fields = list(fields)
        # pysnow sends booleans as "True"/"False"; these go as ServiceNow documents them.
        parameters.add_custom(
            {
                "sysparm_display_value": "false",
                "sysparm_exclude_reference_link": "true",
                "sysparm_no_count": "true",
            }
        )
        return pysnow.Resource(
            base_url=self.client.base_url,
            base_path="/api/now",
            api_path=f"/table/{table}",
            parameters=parameters,
            session=self.session,
            chunk_size=8192,
        )

    def call(self, fn: Callable[[], T], *, method: str, what: str, write: bool) -> T:
        """Run one request through the transport (after getting an OAuth token; once more after a 401 with OAuth)."""
        guarded = self._guarded(fn, what)
        if self._tokens is None:
            return self.transport.call(guarded, method=method, what=what, write=write)
        self._tokens.ensure()
        try:
            return self.transport.call(guarded, method=method, what=what, write=write, renewable=True)
        except CredentialsRefused:
            raise
        except AuthError:
            # A token can die before its time (revoked, instance restarted): renew once, then give up.
            self._tokens.renew()
            return self.transport.call(guarded, method=method, what=what, write=write)

    @staticmethod
    def _guarded(fn: Callable[[], T], what: str) -> Callable[[], T]:
        """``fn`` with what pysnow and oauthlib raise turned into :mod:`connector.core.errors` where the transport cannot."""

        def guarded() -> T:
            try:
                return fn()
            except requests.HTTPError as exc:
                # pysnow workaround: it raises HTTPError with the envelope unparsed (message_of reads it).
                refusal = _policy_refusal(exc, what)
                if refusal is not None:
                    raise refusal from None
                raise
            except requests.JSONDecodeError as exc:
                page = "an HTML page" if exc.doc.lstrip().startswith("<") else "not JSON"
                raise Unavailable(
                    f"{SYSTEM}: {what}: answered 200 with {page} (a hibernating instance?)"
                ) from None
            except (MissingResult, ResponseError) as exc:
                raise Unavailable(f"{SYSTEM}: {what}: unexpected answer ({type(exc).__name__})") from None
            except InvalidUsage as exc:
                raise InvalidRequest(REDACTOR.redact(f"{SYSTEM}: {what}: {exc}")) from None
            except OAuth2Error as exc:
                raise AuthError(
                    REDACTOR.redact(f"{SYSTEM}: {what}: {exc.description or exc.error}")
                ) from None

        return guarded
