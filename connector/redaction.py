"""Outbound text scrubbing: a supplier sees only what its redaction rules let through. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from connector.config.supplier_file import RedactionPattern


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def redact(text: str, patterns: Sequence[RedactionPattern]) -> str:
    """Apply every pattern in order, replacing matches with the pattern's ``replace`` text."""
    for pattern in patterns:
        # The replacement is literal text: escape backslashes so "\1" is not read as a group.
        text = _compiled(pattern.regex).sub(pattern.replace.replace("\\", "\\\\"), text)
    return text
