"""Credential references resolve from the environment or files, and resolved values stay masked."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.core.secrets import REDACTOR, Redactor, Secret, SecretRef, UnresolvedSecret, interpolate


def test_parse_env_and_file_references(tmp_path: Path) -> None:
    assert SecretRef.parse("${MY_TOKEN}") == SecretRef("env", "MY_TOKEN")
    ref = SecretRef.parse("file:secrets/token", tmp_path)
    assert ref.path == tmp_path / "secrets" / "token"
    assert str(ref) == "file:secrets/token"


@pytest.mark.parametrize("text", ["hunter2", "$MY_TOKEN", "${lower-case}", "${}", "env:X"])
def test_anything_else_is_an_inline_secret(text: str) -> None:
    with pytest.raises(ValueError, match="not inline") as caught:
        SecretRef.parse(text)
    assert text not in str(caught.value)


def test_env_reference_resolves_and_is_masked_from_then_on() -> None:
    secret = SecretRef("env", "X_TOKEN").resolve({"X_TOKEN": "value-xyz-1"})
    assert secret.reveal() == "value-xyz-1"
    assert str(secret) == "***" and "value-xyz-1" not in repr(secret)
    assert REDACTOR.redact("sent value-xyz-1 twice: value-xyz-1") == "sent *** twice: ***"


def test_unset_or_empty_variable_names_only_the_variable() -> None:
    with pytest.raises(UnresolvedSecret, match=r"^environment variable X_TOKEN is not set$"):
        SecretRef("env", "X_TOKEN").resolve({"X_TOKEN": ""})


def test_file_reference_strips_the_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "pat").write_text("pat-abc-123\n")
    assert SecretRef("file", "pat", tmp_path).resolve().reveal() == "pat-abc-123"
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UnresolvedSecret, match="is empty"):
        SecretRef("file", "empty", tmp_path).resolve()
    with pytest.raises(UnresolvedSecret, match="cannot read secret file"):
        SecretRef("file", "missing", tmp_path).resolve()


def test_interpolate_urls() -> None:
    url = interpolate("postgresql://mim:${PG_PW}@db/mim", {"PG_PW": "pg-pass-42"})
    assert url == "postgresql://mim:pg-pass-42@db/mim"
    assert "pg-pass-42" not in REDACTOR.redact(url)
    with pytest.raises(UnresolvedSecret, match="PG_PW"):
        interpolate("postgresql://mim:${PG_PW}@db/mim", {})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic ***"),
        ("authorization=Bearer abc.def", "authorization=Bearer ***"),
        ('{"access_token": "tok", "scope": "x"}', '{"access_token": "***", "scope": "x"}'),
        ("grant_type=password&password=pw1&username=u", "grant_type=password&password=***&username=u"),
        ("https://user:pw@host/path", "https://user:***@host/path"),
        ("nextPageToken=abc", "nextPageToken=abc"),
        ("{'access_token': 'tok-1', 'scope': 'x'}", "{'access_token': '***', 'scope': 'x'}"),
        ("{'Authorization': 'Bearer tok-2'}", "{'Authorization': 'Bearer ***'}"),
        ("servicenow.auth.token: not set", "servicenow.auth.token: not set"),
    ],
)
def test_credential_shaped_text_is_masked(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', '{"Authorization": "Basic ***"}'),
        ('{"authorization":"Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl"}', '{"authorization":"Bearer ***"}'),
        ('"Authorization" :  "basic   dXNlcjpwYXNz=="', '"Authorization" :  "basic ***"'),
        (
            '{"headers": {"Accept": "application/json", "Authorization": "Bearer pat-123"}, "status": 401}',
            '{"headers": {"Accept": "application/json", "Authorization": "Bearer ***"}, "status": 401}',
        ),
        ('"{\\"Authorization\\": \\"Basic dXNlcjpwYXNz\\"}"', '"{\\"Authorization\\": \\"Basic ***\\"}"'),
        ("{'Authorization': 'Basic dXNlcjpwYXNz'}", "{'Authorization': 'Basic ***'}"),
        ("AUTHORIZATION = 'Bearer tok-3'", "AUTHORIZATION = 'Bearer ***'"),
        (
            '{"Authorization": "Basic dXNl", "next": "Basic info"}',
            '{"Authorization": "Basic ***", "next": "Basic info"}',
        ),
    ],
)
def test_authorization_headers_in_json_and_other_quoting_are_masked(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


def test_short_values_are_not_registered() -> None:
    redactor = Redactor()
    redactor.add("ab")
    assert redactor.redact("abc") == "abc"


def test_secret_registers_with_the_process_redactor() -> None:
    Secret("registered-456")
    assert REDACTOR.redact("x registered-456 y") == "x *** y"
