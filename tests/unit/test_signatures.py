"""Signatures of pushed deliveries: HMAC-SHA256 over the raw body, hex (Jira) or base64 (ServiceNow)."""

from __future__ import annotations

import base64

import pytest

from connector.core.signatures import check, sign

# RFC 4231, test case 2.
KEY, DATA = "Jefe", b"what do ya want for nothing?"
MAC = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


def test_signs_as_the_platforms_do() -> None:
    assert sign(KEY, DATA) == f"sha256={MAC}"
    assert sign(KEY, DATA, "base64") == "sha256=" + base64.b64encode(bytes.fromhex(MAC)).decode()


@pytest.mark.parametrize(
    ("header", "encoding", "problem"),
    [
        (f"sha256={MAC}", "hex", None),
        (f"SHA256={MAC.upper()}", "hex", None),
        (None, "hex", "missing"),
        ("", "hex", "missing"),
        (MAC, "hex", "malformed"),
        (f"sha1={MAC}", "hex", "malformed"),
        (f"sha256={MAC[:-2]}", "hex", "malformed"),
        ("sha256=" + "0" * 64, "hex", "mismatch"),
        (f"sha256={MAC}", "base64", "malformed"),
        (sign(KEY, DATA, "base64"), "base64", None),
        (sign(KEY, DATA + b" ", "base64"), "base64", "mismatch"),
    ],
)
def test_tells_why_a_header_does_not_prove_the_body(
    header: str | None, encoding: str, problem: str | None
) -> None:
    assert check(KEY, DATA, header, encoding) == problem  # type: ignore[arg-type]
