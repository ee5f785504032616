"""The HTTP session of a ServiceNow instance, and OAuth 2 password-grant tokens for it.

:class:`SnowSession` is the one ``requests`` session pysnow sends through (basic auth);
:class:`SnowOAuthSession` adds requests-oauthlib's bearer token, kept fresh by :class:`OAuthTokens`.
Token requests go through the shared transport like every other request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import requests
from oauthlib.oauth2 import OAuth2Error  # type: ignore[import-untyped]
from requests_oauthlib import OAuth2Session  # type: ignore[import-untyped]

from connector.core.errors import AuthError
from connector.core.secrets import REDACTOR, Secret
from connector.http.transport import Transport
from connector.servicenow.pysnow_lib import InvalidUsage

SYSTEM = "servicenow"
JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}


def raise_for_status(response: requests.Response) -> requests.Response:
    """Token-endpoint hook: let the transport see the HTTP status instead of oauthlib's parse error."""
    response.raise_for_status()
    return response


class SnowSession(requests.Session):
    """The one session of an instance: JSON headers, TLS verification and *our* timeout on every request."""

    def __init__(self, timeout: float, verify: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout = timeout
        self.verify = verify
        self.headers.update(JSON_HEADERS)

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        """Send with the configured timeout, whatever the caller passed."""
        # pysnow workaround: SnowRequest hard-codes timeout=60 and OAuthClient.resource() takes none.
        kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


class SnowOAuthSession(SnowSession, OAuth2Session):  # type: ignore[misc]  # requests-oauthlib is untyped
    """:class:`SnowSession` carrying an OAuth 2 bearer token (requests-oauthlib)."""


class OAuthTokens:
    """OAuth 2 password-grant tokens of one session.

    Obtained on first use, refreshed before they run out (by the injected monotonic clock, so a
    wall-clock jump cannot strand us) and, through :meth:`renew`, once after a 401. Token
    requests go through the transport like any other request.
    """

    MARGIN_SECONDS = 60.0

    def __init__(
        self,
        client: Any,
        session: SnowOAuthSession,
        transport: Transport,
        credentials: tuple[str, Secret, str, Secret],
        clock: Callable[[], float],
    ) -> None:
        self._client = client
        self._session = session
        self._transport = transport
        self._user_name, self._password, self._client_id, self._client_secret = credentials
        self._clock = clock
        self._renew_at: float | None = None
        self._lock = threading.RLock()

    def stored(self, token: Mapping[str, Any]) -> None:
        """The ``token_updater``: hand a new token to pysnow's client and plan its renewal."""
        self._client.set_token(dict(token))
        lifetime = float(token.get("expires_in") or 0)
        self._renew_at = self._clock() + lifetime - min(self.MARGIN_SECONDS, lifetime / 10)

    def ensure(self) -> None:
        """Have a token that is not about to expire."""
        with self._lock:
            if self._renew_at is None:
                self._password_grant()
            elif self._clock() >= self._renew_at:
                self.renew()

    def renew(self) -> None:
        """Refresh grant; when the refresh token is refused, a new password grant (AuthError if refused too)."""
        with self._lock:
            if self._renew_at is not None:
                try:
                    self._grant("refresh", self._refresh_grant, renewable=True)
                    return
                except AuthError:
                    pass
            self._password_grant()

    def _refresh_grant(self) -> Any:
        return self._session.refresh_token(
            self._client.token_url, client_id=self._client_id, client_secret=self._client_secret.reveal()
        )

    def _password_grant(self) -> None:
        # pysnow workaround: OAuthClient.generate_token() posts through a throwaway session with no
        # timeout and sends the client credentials as HTTP Basic; the same grant goes through our
        # session, with the client credentials in the form as ServiceNow documents it.
        self._grant(
            "password",
            lambda: self._session.fetch_token(
                self._client.token_url,
                username=self._user_name,
                password=self._password.reveal(),
                include_client_id=True,
                client_secret=self._client_secret.reveal(),
            ),
        )

    def _grant(self, kind: str, fetch: Callable[[], Any], *, renewable: bool = False) -> None:
        what = f"POST oauth_token.do ({kind} grant)"

        def attempt() -> Any:
            try:
                token = fetch()
                self.stored(token)
            except (OAuth2Error, InvalidUsage) as exc:
                reason = getattr(exc, "description", None) or str(exc)
                raise AuthError(REDACTOR.redact(f"{SYSTEM}: {what}: {reason}")) from None
            return token

        # A refused refresh token is followed by a password grant: only that one's refusal
        # counts against the credentials (and starts their back-off).
        self._transport.call(
            attempt,
            method="POST",
            what=what,
            write=False,
            endpoint="POST oauth_token.do",
            login=not renewable,
            renewable=renewable,
        )
