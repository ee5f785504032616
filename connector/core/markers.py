"""The stamps that mark text we wrote: a short reference per item, on the text's last line. Pure.

Every comment, work note or description the connector writes ends with a :func:`stamp_line`
holding a :func:`marker`, so the text is never mirrored back and a write whose answer was lost can
be found again (:func:`own_ref`). Mirroring, promotion and the outage notes all stamp this way.
"""

from __future__ import annotations

import hashlib
import re

MARKER_TAG = "[mim-connector ref:"
STAMP_PROPERTY = "mim-connector"
"""The Jira issue entity property holding our identity stamp (``{"stamp": …}``) on every issue we create."""


def marker(kind: str, *parts: str) -> str:
    """A short, stable reference for one mirrored item (``o…`` out, ``i…`` in, ``l…`` link note)."""
    return kind + hashlib.sha1("|".join(parts).encode(), usedforsecurity=False).hexdigest()[:10]


def stamp_line(ref: str) -> str:
    """The line that identifies text we wrote, so it is never mirrored back and can be found again."""
    return f"{MARKER_TAG}{ref}]"


_STAMP_LINE = re.compile(re.escape(MARKER_TAG) + r"([A-Za-z0-9_-]+)\]")


def own_ref(text: str) -> str | None:
    """The marker a text ends with (its last non-blank line is a :func:`stamp_line`), else ``None``.

    Every text we write ends with its stamp line, so this finds a write of ours whose answer was
    lost. It does not say who wrote the text: a reply quoting one of ours carries the marker
    elsewhere (inside ``{quote}``, after ``>``), but a pasted copy may end with it too.
    """
    stripped = text.rstrip()
    last = stripped[stripped.rfind("\n") + 1 :].strip()
    found = _STAMP_LINE.fullmatch(last)
    return found.group(1) if found else None
