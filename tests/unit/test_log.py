"""Logging is configured once, in text or JSON, and masks secrets wherever they appear."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from connector.core.secrets import Secret
from connector.telemetry.log import configure_logging


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("text", "DEBUG", buffer)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


def test_text_line_with_context(stream: io.StringIO) -> None:
    logging.getLogger("connector.sync.engine").info(
        "mirrored %s", "INC001", extra={"supplier": "acme", "jira_key": "A-1"}
    )
    line = stream.getvalue().strip()
    assert line.endswith("INFO connector.sync.engine: mirrored INC001 [supplier=acme jira_key=A-1]")


def test_secrets_masked_in_message_args_and_traceback(stream: io.StringIO) -> None:
    secret = Secret("tok-987654").reveal()
    log = logging.getLogger("connector.test")
    log.warning("calling with %s", secret)
    try:
        raise RuntimeError(f"server said Authorization: Basic {secret}")
    except RuntimeError:
        log.exception("failed for %s", secret)
    output = stream.getvalue()
    assert "tok-987654" not in output
    assert output.count("***") >= 3
    assert "RuntimeError: server said Authorization: Basic ***" in output


def test_json_lines(stream: io.StringIO) -> None:
    buffer = io.StringIO()
    handler = configure_logging("json", "INFO", buffer)
    logging.getLogger("connector.rules.book").info(
        "proposed %s", "INC002", extra={"incident": "INC002", "rule": "p1"}
    )
    record = json.loads(buffer.getvalue())
    assert record["message"] == "proposed INC002"
    assert (record["level"], record["logger"], record["incident"], record["rule"]) == (
        "INFO",
        "connector.rules.book",
        "INC002",
        "p1",
    )
    assert stream.getvalue() == "", "configuring again replaces the previous handler"
    logging.getLogger().removeHandler(handler)


def test_third_party_records_are_masked_too(stream: io.StringIO) -> None:
    logging.getLogger("urllib3.connectionpool").warning(
        "POST /oauth_token.do body=grant_type=password&password=pw-123"
    )
    assert "pw-123" not in stream.getvalue()


def test_an_authorization_header_in_a_json_body_is_masked_in_both_formats(stream: io.StringIO) -> None:
    body = json.dumps({"headers": {"Authorization": "Basic c3ZjOmh1bnRlcjI=", "Accept": "application/json"}})
    log = logging.getLogger("connector.test")
    log.warning("request was %s", body)
    buffer = io.StringIO()
    handler = configure_logging("json", "INFO", buffer)
    log.warning("request was %s", body)
    logging.getLogger().removeHandler(handler)
    for output in (stream.getvalue(), buffer.getvalue()):
        assert "c3ZjOmh1bnRlcjI=" not in output
        assert "Basic ***" in output
