"""One authenticated API request as the route handlers see it."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from connector.sandbox.core import json_response
from connector.sandbox.jira.errors import JiraApiError, bad_request
from connector.sandbox.jira.render import View
from connector.sandbox.jira.site import JiraSite
from connector.sandbox.jira.values import WriteContext


@dataclass(frozen=True)
class Call:
    """The request, its site, the user (``None`` only on anonymous endpoints), API version and time."""

    request: Request
    site: JiraSite
    username: str | None
    api_version: str
    now: datetime
    view: View

    @property
    def user(self) -> str:
        """The authenticated username (handlers of authenticated endpoints only)."""
        if self.username is None:
            raise JiraApiError(
                401, "You are not authenticated. Authentication required to perform this operation."
            )
        return self.username

    def writer(self) -> WriteContext:
        """The context issue writes need."""
        return WriteContext(self.site, self.user, self.now, self.api_version)

    def body(self) -> Any:
        """The JSON body (``None`` when empty); malformed JSON or a non-JSON media type is a 4xx."""
        raw = self.request.get_data(cache=True)
        if not raw:
            return None
        if self.request.mimetype != "application/json":
            raise JiraApiError(
                415, f"Unsupported Media Type: '{self.request.mimetype or 'null'}' is not supported."
            )
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(f"Unexpected character in JSON body: {exc}") from None


Handler = Callable[[Call, dict[str, str]], Response]


def ok(payload: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return json_response(payload, status)


def no_content() -> Response:
    """A 204 without body."""
    return Response(status=204)
