"""Reading query parameters the way Jira does: case-insensitive booleans, repeated or comma lists."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from connector.sandbox.jira.errors import bad_request


def list_param(args: MultiDict[str, str], name: str) -> list[str]:
    """All values of a parameter given repeated (``a=1&a=2``) or comma-separated (``a=1,2``)."""
    return [part.strip() for value in args.getlist(name) for part in value.split(",") if part.strip()]


def bool_param(args: MultiDict[str, str], name: str, default: bool) -> bool:
    """A boolean parameter; python-jira sends ``True``/``False`` capitalised."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise bad_request(f"The value '{raw}' is not a valid boolean for the parameter '{name}'.")


def int_param(args: MultiDict[str, str], name: str, default: int) -> int:
    """An integer parameter, or a 400 naming it."""
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"The value '{raw}' is not a valid number for the parameter '{name}'.") from None
