"""Field types shared by the config models, each with the message an admin sees when it is wrong.

Every type validates without echoing secrets and carries a JSON Schema for editors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import regex
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from connector.core.secrets import REF_PATTERN, SecretRef, env_references
from connector.core.templates import placeholders


class ConfigModel(BaseModel):
    """Base of every config model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _base_dir(info: ValidationInfo) -> Path | None:
    context = info.context or {}
    return context.get("base_dir")


# --- durations -----------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"


def parse_duration(value: Any) -> timedelta:
    """``30s``, ``5m``, ``1h30m``, ``2d`` or a number of seconds -> ``timedelta``."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or 2d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if text and _DURATION_PART.sub("", text) == "":
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
            return timedelta(seconds=seconds)
        raise ValueError(f"'{value}' is not a duration (use e.g. 30s, 5m, 1h30m, 2d)")
    raise ValueError("expected a duration such as 30s, 5m, 1h or 2d")


def format_duration(value: timedelta) -> str:
    """The shortest ``1h30m``-style text for ``value``."""
    seconds = value.total_seconds()
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    out = ""
    for unit in ("w", "d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_SECONDS[unit])
        if count:
            out += f"{int(count)}{unit}"
    return out or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 30s, 5m, 1h30m, 2d, or a number of seconds.",
        }
    ),
]


# --- credentials and endpoints ---------------------------------------------------------------------


def _secret_ref(value: Any, info: ValidationInfo) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    if not isinstance(value, str):
        raise ValueError("secrets must be given by reference (${ENV_VAR} or file:PATH), not inline")
    return SecretRef.parse(value.strip(), _base_dir(info))


SecretRefField = Annotated[
    SecretRef,
    BeforeValidator(_secret_ref),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": REF_PATTERN,
            "description": "A credential by reference: ${ENV_VAR} or file:PATH. Never the value itself.",
        }
    ),
]


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    probe = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", "x", value)
    if probe != value and probe.startswith("x"):
        return value  # the whole endpoint comes from the environment
    parts = urlsplit(probe)
    if parts.scheme not in schemes:
        raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname and not parts.path:
        raise ValueError("the URL has no host")
    userinfo = urlsplit(value).netloc.rpartition("@")[0]
    if ":" in userinfo and not env_references(userinfo.partition(":")[2]):
        raise ValueError("the URL carries an inline password; use ${ENV_VAR} for it")
    return value


def _http_url(value: str) -> str:
    _check_url(value, ("http", "https"))
    if urlsplit(value).username:
        raise ValueError("put credentials under auth, not in the URL")
    return value.rstrip("/")


HttpUrl = Annotated[
    str,
    AfterValidator(_http_url),
    WithJsonSchema(
        {"type": "string", "pattern": r"^(https?://|\$\{)", "description": "An http(s) URL, or ${ENV_VAR}."}
    ),
]


def _store_url(value: str) -> str:
    scheme = value.partition("://")[0]
    if scheme not in ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"):
        raise ValueError("must be sqlite:///PATH or postgresql://USER:${PASSWORD_VAR}@HOST/DB")
    if scheme == "sqlite":
        if not value.startswith("sqlite:///"):
            raise ValueError("a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db")
        return value
    return _check_url(value, (scheme,))


StoreUrl = Annotated[
    str,
    AfterValidator(_store_url),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(sqlite:///|postgresql(\+psycopg2?)?://)",
            "description": "sqlite:///PATH (relative to this file) or postgresql://USER:${VAR}@HOST/DB.",
        }
    ),
]


# --- names -----------------------------------------------------------------------------------------

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_FIELD = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")
_JIRA_FIELD = re.compile(r"^([a-z][A-Za-z0-9_]*|customfield_\d+)$")
_PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9_]{1,9}$")


@dataclass(frozen=True)
class Matches:
    """``Annotated`` metadata: the string must match ``pattern``; the error reads ``'value' <message>``."""

    pattern: re.Pattern[str]
    message: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "pattern": self.pattern.pattern}

    def _check(self, value: str) -> str:
        if not self.pattern.match(value):
            raise ValueError(f"'{value}' {self.message}")
        return value


Slug = Annotated[
    str, Matches(_SLUG, "is not a valid name (lower-case letters, digits, '-' and '_'; up to 63)")
]
FieldPath = Annotated[str, Matches(_FIELD, "is not a ServiceNow field name (e.g. priority, cmdb_ci.name)")]
JiraFieldId = Annotated[str, Matches(_JIRA_FIELD, "is not a Jira field id (e.g. duedate, customfield_10050)")]
ProjectKey = Annotated[
    str, Matches(_PROJECT_KEY, "is not a Jira project key (2-10 upper-case letters and digits)")
]


def _template(value: str) -> str:
    placeholders(value)
    return value


Template = Annotated[
    str,
    AfterValidator(_template),
    WithJsonSchema({"type": "string", "description": "Text with {field} placeholders."}),
]


def _regex(value: str) -> str:
    # Compiled by the engine the redaction runs it with (``regex``, a superset of ``re``).
    try:
        regex.compile(value)
    except regex.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex), WithJsonSchema({"type": "string", "format": "regex"})]


def _snow_value(value: Any) -> Any:
    # ServiceNow speaks strings only; YAML's 1, 2.5 and true mean "1", "2.5" and "true" there.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


SnowValue = Annotated[
    str,
    BeforeValidator(_snow_value),
    WithJsonSchema({"type": ["string", "number", "boolean"]}),
]
"""A ServiceNow field value as written in YAML; numbers and booleans become ServiceNow's strings."""
