"""Who is calling: HTTP Basic on every request, or a Bearer token from ``POST /oauth_token.do``.

The token endpoint takes a form-encoded body (``grant_type=password|refresh_token``) and the
client's credentials either in the body or in an HTTP Basic header (client_secret_basic, which
is how pysnow's requests-oauthlib sends them); unknown form fields are ignored (pysnow leaks
``params=…`` into refreshes). Access tokens expire by the server clock.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from werkzeug.wrappers import Request, Response

from connector.sandbox.core import json_response
from connector.sandbox.spec import OAuthClient, SnowUser

SCOPE = "useraccount"
REFRESH_TTL = timedelta(days=100)


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(name, secret)`` from an ``Authorization: Basic …`` header, or ``None``."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, separator, secret = decoded.partition(":")
    return (name, secret) if separator else None


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, or ``None``."""
    if not header or not header.lower().startswith("bearer "):
        return None
    return header[7:].strip() or None


@dataclass
class _Grant:
    user_name: str
    client_id: str
    expires: datetime


class Credentials:
    """Users and OAuth clients of the instance, and the tokens issued to them."""

    def __init__(self, users: Sequence[SnowUser], clients: Sequence[OAuthClient]) -> None:
        self.users = {user.user_name: user for user in users}
        self.clients = {client.client_id: client for client in clients}
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}

    def check_password(self, user_name: str, password: str) -> SnowUser | None:
        """The user when the password is right."""
        user = self.users.get(user_name)
        if user is None or not secrets.compare_digest(user.password.encode(), password.encode()):
            return None
        return user

    def check_client(self, client_id: str, client_secret: str) -> bool:
        """True for a registered OAuth client with this secret."""
        client = self.clients.get(client_id)
        return client is not None and secrets.compare_digest(
            client.client_secret.encode(), client_secret.encode()
        )

    def user_of_token(self, token: str, now: datetime) -> SnowUser | None:
        """The user an unexpired access token was issued to."""
        grant = self._access.get(token)
        if grant is None or grant.expires <= now:
            return None
        return self.users.get(grant.user_name)

    def forget_tokens(self) -> None:
        """Invalidate every token (on reset)."""
        self._access.clear()
        self._refresh.clear()

    def _issue(
        self, user_name: str, client_id: str, now: datetime, ttl: int, refresh: str | None
    ) -> Response:
        access = secrets.token_urlsafe(48)
        self._access[access] = _Grant(user_name, client_id, now + timedelta(seconds=ttl))
        if refresh is None:
            refresh = secrets.token_urlsafe(48)
            self._refresh[refresh] = _Grant(user_name, client_id, now + REFRESH_TTL)
        body = {
            "access_token": access,
            "refresh_token": refresh,
            "scope": SCOPE,
            "token_type": "Bearer",
            "expires_in": ttl,
        }
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def token_endpoint(self, request: Request, now: datetime, ttl: int) -> Response:
        """Answer ``POST /oauth_token.do`` (password and refresh_token grants)."""
        if request.method != "POST":
            return _oauth_error(405, "invalid_request", "method not allowed")
        if request.mimetype != "application/x-www-form-urlencoded":
            return _oauth_error(
                400, "invalid_request", "request body must be application/x-www-form-urlencoded"
            )
        # Cache the raw body before parsing the form, or the shared request journal records no body.
        request.get_data(cache=True)
        form = request.form
        basic = basic_credentials(request.headers.get("Authorization"))
        client_id, client_secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        if not self.check_client(client_id, client_secret):
            return _oauth_error(401, "server_error", "access_denied")
        grant_type = form.get("grant_type", "")
        if grant_type == "password":
            user = self.check_password(form.get("username", ""), form.get("password", ""))
            if user is None:
                return _oauth_error(401, "server_error", "access_denied")
            return self._issue(user.user_name, client_id, now, ttl, None)
        if grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            grant = self._refresh.get(token)
            if grant is None or grant.expires <= now or grant.client_id != client_id:
                return _oauth_error(401, "server_error", "access_denied")
            return self._issue(grant.user_name, client_id, now, ttl, token)
        return _oauth_error(
            400, "unsupported_grant_type", f"grant_type {grant_type or '(none)'} is not supported"
        )


def _oauth_error(status: int, error: str, description: str) -> Response:
    """An RFC 6749 error body, which oauthlib turns into an ``OAuth2Error``."""
    return json_response({"error_description": description, "error": error}, status)
