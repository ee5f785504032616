"""Signed deliveries: HMAC-SHA256 of the raw body, as Jira's admin webhooks and our ServiceNow push send it.

Pure; no I/O. A signature header reads ``sha256=<mac>``: lowercase hex for Jira
(``X-Hub-Signature``), base64 for the ServiceNow push (``X-MIM-Signature``, because ServiceNow's
``GlideCertificateEncryption.generateMac`` answers base64). The comparison is constant-time, and it
is made over the bytes as received, before anything parses them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Literal

Encoding = Literal["hex", "base64"]
PREFIX = "sha256="


def sign(secret: str, body: bytes, encoding: Encoding = "hex") -> str:
    """The header value a sender with ``secret`` puts on ``body``: ``sha256=<mac>``."""
    mac = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    text = mac.hex() if encoding == "hex" else base64.b64encode(mac).decode("ascii")
    return PREFIX + text


def check(secret: str, body: bytes, header: str | None, encoding: Encoding = "hex") -> str | None:
    """Why ``header`` does not prove ``body`` came from a holder of ``secret``; ``None`` if it does.

    The reasons are the metric's labels: ``missing`` (no header), ``malformed`` (not
    ``sha256=<mac>`` in the expected encoding), ``mismatch`` (a well-formed MAC of something else).
    """
    if not header:
        return "missing"
    scheme, _, text = header.strip().partition("=")
    if scheme.lower() != PREFIX.rstrip("=") or not text:
        return "malformed"
    try:
        given = bytes.fromhex(text) if encoding == "hex" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return "malformed"
    if len(given) != hashlib.sha256().digest_size:
        return "malformed"
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return None if hmac.compare_digest(given, expected) else "mismatch"
