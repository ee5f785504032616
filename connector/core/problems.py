"""A configuration problem, located in its file, and the did-you-mean helper every message uses."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from connector.core.secrets import REDACTOR

Loc = tuple[str | int, ...]
Severity = Literal["error", "warning"]
_PLAIN_KEY = re.compile(r"^[^.\[\]]+$")


@dataclass(frozen=True, order=True)
class Problem:
    """One mistake: ``config/connector.yaml:12:5: servicenow.auth.type: message``."""

    file: str
    line: int
    col: int
    path: str = field(compare=False)
    message: str = field(compare=False)
    severity: Severity = field(default="error", compare=False)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        what = f"{self.path}: {self.message}" if self.path else self.message
        prefix = "warning: " if self.severity == "warning" else ""
        return REDACTOR.redact(f"{where}: {prefix}{what}")


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it, else absolute."""
    absolute = path.resolve()
    try:
        return os.path.relpath(absolute) if absolute.is_relative_to(Path.cwd()) else str(absolute)
    except ValueError:
        return str(absolute)


def dotted(loc: Loc) -> str:
    """Render a data path the way admins read it: ``rules[2].when.all[0].field``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f'["{part}"]'
    return out


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def one_of(word: str, choices: Sequence[str], noun: str = "", *, hints: Sequence[str] | None = None) -> str:
    """The message for a bad enum value, listing the known ones.

    ``'clod' is not one of: cloud, datacenter (did you mean 'cloud'?)`` or, with ``noun``,
    ``'Closd' is not a status of acme (known: Open, Closed) (did you mean 'Closed'?)``.
    """
    listed = ", ".join(choices) if choices else "none declared"
    hint = did_you_mean(word, choices if hints is None else hints)
    if noun:
        return f"'{word}' is not {noun} (known: {listed}){hint}"
    return f"'{word}' is not one of: {listed}{hint}"
