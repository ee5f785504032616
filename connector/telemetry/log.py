"""Logging, configured once by the CLI: text or JSON lines, secrets masked in both.

Modules log with ``logging.getLogger(__name__)`` and %-style arguments, passing context with
``extra={"incident": ..., "supplier": ..., "jira_key": ...}``. The redaction filter sits on our
handler, so it covers third-party loggers (urllib3, python-jira) too.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from connector.core.secrets import REDACTOR

CONTEXT_FIELDS = ("run_id", "incident", "incident_sys_id", "supplier", "jira_key", "rule", "operation")
_HANDLER_NAME = "mim-connector"


class RedactionFilter(logging.Filter):
    """Renders the message and any traceback now, with secrets masked, before a formatter sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask secrets in the message, traceback and string context fields; never drops a record."""
        record.msg = REDACTOR.redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = REDACTOR.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = REDACTOR.redact(record.stack_info)
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if isinstance(value, str):
                setattr(record, name, REDACTOR.redact(value))
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-22T10:00:00Z INFO connector.sync.engine: message [incident=INC001 supplier=acme]``."""

    def format(self, record: logging.LogRecord) -> str:
        """One line per record (plus traceback lines), context fields appended."""
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        context = " ".join(
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        )
        line = f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"
        if context:
            line += f" [{context}]"
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, context fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialise ``record``; non-JSON context values are rendered with ``str``."""
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            if hasattr(record, name):
                payload[name] = getattr(record, name)
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(
    fmt: str = "text", level: str = "INFO", stream: TextIO | None = None
) -> logging.Handler:
    """Install our one handler on the root logger, replacing a previous one; return it."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(RedactionFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full URLs at DEBUG, requests_oauthlib the token request body (with the password):
    # one level up keeps them out of every log, DEBUG included.
    for chatty in ("urllib3", "requests_oauthlib", "oauthlib"):
        logging.getLogger(chatty).setLevel(max(logging.INFO, root.level))
    return handler


def json_configured() -> bool:
    """Whether :func:`configure_logging` installed JSON lines: then every line on stderr must be JSON."""
    return any(
        handler.get_name() == _HANDLER_NAME and isinstance(handler.formatter, JsonFormatter)
        for handler in logging.getLogger().handlers
    )
