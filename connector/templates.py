"""Text templates that admins write in mappings: ``"[{number}] {short_description}"``.

A placeholder is ``{name}`` or a dotted ``{cmdb_ci.name}``; ``{{`` and ``}}`` are literal braces.
Unlike ``str.format`` there is no attribute access, indexing or conversion: a placeholder is a key
into a flat mapping of strings, so a template can never reach into Python objects. Pure functions.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

_PLACEHOLDER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_FORMATTER = string.Formatter()


def placeholders(template: str) -> list[str]:
    """Return the placeholder names in ``template``, in order.

    Raises:
        ValueError: the template is malformed (unbalanced braces, format specs, bad names).
    """
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise ValueError(f"malformed template: {exc}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if conversion or spec:
            raise ValueError(f"placeholder {{{name}}} may not have a conversion or format spec")
        if not _PLACEHOLDER.match(name):
            raise ValueError(f"placeholder {{{name}}} is not a field name")
        names.append(name)
    return names


def render(template: str, values: Mapping[str, str], *, missing: str = "") -> str:
    """Fill ``template`` from ``values``; placeholders without a value become ``missing``."""
    out: list[str] = []
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        out.append(literal)
        if name is not None:
            out.append(str(values.get(name, missing)))
    return "".join(out)
