"""The one exception the Jira simulator raises to answer a request with an error.

Handlers raise :class:`JiraApiError`; the app turns it into Jira's ``ErrorCollection`` envelope
``{"errorMessages": [...], "errors": {...}}`` with the status and any extra headers.
"""

from __future__ import annotations

from collections.abc import Mapping

ISSUE_NOT_FOUND = "Issue does not exist or you do not have permission to see it."
NOT_ON_SCREEN = "Field '{field}' cannot be set. It is not on the appropriate screen, or unknown."


class JiraApiError(Exception):
    """An error answer: HTTP ``status``, ``messages`` for ``errorMessages``, ``errors`` by field."""

    def __init__(
        self,
        status: int,
        messages: str | list[str] | None = None,
        errors: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.messages = [messages] if isinstance(messages, str) else list(messages or [])
        self.errors = dict(errors or {})
        self.headers = dict(headers or {})
        super().__init__(f"{status}: {'; '.join(self.messages) or self.errors}")


def bad_request(message: str) -> JiraApiError:
    """A 400 with one message in ``errorMessages``."""
    return JiraApiError(400, message)


def field_errors(errors: Mapping[str, str]) -> JiraApiError:
    """A 400 with messages by field, as Jira answers invalid issue input."""
    return JiraApiError(400, errors=errors)


def issue_not_found() -> JiraApiError:
    """The 404 Jira gives for a missing issue and for one the user may not see."""
    return JiraApiError(404, ISSUE_NOT_FOUND)
