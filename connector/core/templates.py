"""Text templates that admins write in mappings: ``"[{number}] {short_description}"``.

A placeholder is ``{name}`` or a dotted ``{cmdb_ci.name}``; ``{{`` and ``}}`` are literal braces.
Unlike ``str.format`` there is no attribute access, indexing or conversion: a placeholder is a key
into a flat mapping of strings, so a template can never reach into Python objects. Pure functions.

An **optional segment** ``[[ … ]]`` is left out, brackets and all, when a placeholder inside it has
no value (missing, empty or blank): ``"Incident {number}[[, raised against {cmdb_ci.name}]]."``
renders ``Incident INC1, raised against db01.`` or, without a CI, ``Incident INC1.``. Segments do not
nest; a ``]]`` outside a segment is plain text.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FORMATTER = string.Formatter()
OPEN, CLOSE = "[[", "]]"


def placeholders(template: str) -> list[str]:
    """Return the placeholder names in ``template``, in order (optional segments included).

    Raises:
        ValueError: the template is malformed (unbalanced braces or segments, format specs, bad names).
    """
    names: list[str] = []
    for piece, _optional in _segments(template):
        names += _names(piece)
    return names


def render(template: str, values: Mapping[str, str], *, missing: str = "") -> str:
    """Fill ``template`` from ``values``; placeholders without a value become ``missing``.

    An optional segment whose placeholders do not all have a (non-blank) value is left out.
    """
    out: list[str] = []
    for piece, optional in _segments(template, strict=False):
        if optional and any(not str(values.get(name, "")).strip() for name in _names(piece, strict=False)):
            continue
        for literal, name, _spec, _conversion in _FORMATTER.parse(piece):
            out.append(literal)
            if name is not None:
                out.append(str(values.get(name, missing)))
    return "".join(out)


def _segments(template: str, *, strict: bool = True) -> list[tuple[str, bool]]:
    """``template`` cut into (text, optional) pieces at ``[[`` and ``]]``.

    Raises (with ``strict``):
        ValueError: a segment is not closed, or is opened inside another.
    """
    pieces: list[tuple[str, bool]] = []
    rest = template
    while (start := rest.find(OPEN)) >= 0:
        end = rest.find(CLOSE, start + len(OPEN))
        inner = rest[start + len(OPEN) : end]
        if end < 0 or OPEN in inner:
            if strict:
                raise ValueError(f"malformed template: optional segment {OPEN} … {CLOSE} not closed")
            break
        pieces += [(rest[:start], False), (inner, True)]
        rest = rest[end + len(CLOSE) :]
    pieces.append((rest, False))
    return [(text, optional) for text, optional in pieces if text]


def _names(piece: str, *, strict: bool = True) -> list[str]:
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(piece))
    except ValueError as exc:
        if not strict:
            return names
        raise ValueError(f"malformed template: {exc}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if strict and (conversion or spec):
            raise ValueError(f"placeholder {{{name}}} may not have a conversion or format spec")
        if strict and not _PLACEHOLDER.match(name):
            raise ValueError(f"placeholder {{{name}}} is not a field name")
        names.append(name)
    return names
