"""Outbound text: what a supplier may see of a text written in ServiceNow. Pure, but for a time budget.

Every piece of user text that leaves for a supplier goes through :func:`scrub`:

1. **clipped first**, to the limit of where it goes plus :data:`MARGIN` characters: the work is
   bounded by that limit, never by the size of what someone pasted into ServiceNow;
2. **sanitised** (:func:`sanitize`): NUL and other control characters, ANSI escape sequences,
   bidirectional overrides and invisible separators are dropped, newlines and tabs kept; so a
   terminal escape or a zero-width space can neither reach a supplier nor split a secret so that a
   pattern misses it;
3. **redacted**: each pattern in order, by the ``regex`` engine, which releases the GIL while it
   matches (the health endpoints keep answering) and gives up after :data:`BUDGET` seconds;
4. **cut** to the limit. When the text was longer than the first cut, the last :data:`MARGIN`
   characters are dropped too: a secret that straddled the first cut was seen only in part (and
   may not have matched), and must not leak in part.

A text that a pattern could not get through within its budget never leaves: it is withheld
(:data:`WITHHELD` goes instead) and the pattern is named in the result, for the operator. The
text is remembered, so the budget is spent on it once, not on every cycle.

The connector's own text (its links, stamp lines, the identifiers ServiceNow generates) is not
user text: callers add it *after* scrubbing, so no pattern can rewrite it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import regex

from connector.config.supplier_file import RedactionPattern

MARGIN = 2_048
"""Characters read past a limit: a secret shorter than this that straddles the cut is found whole."""
BUDGET = 0.5
"""Seconds one pattern may take over one text (at most limit + MARGIN characters; the shipped patterns
take 1-20 ms on 34,000 characters of any shape)."""
WITHHELD = "[withheld by mim-connector: this text could not be checked for confidential data]"
TRUNCATED = " …(truncated)"
_REMEMBERED = 1_024
_overrun: OrderedDict[tuple[tuple[str, ...], str], None] = OrderedDict()
"""Texts (by digest, with the patterns) that overran their budget; the oldest are forgotten first."""
_overrun_lock = threading.Lock()
_SCRUBBED = 256
_scrubbed: OrderedDict[tuple[tuple[tuple[str, str], ...], str, int, bool], str] = OrderedDict()
"""The last texts scrubbed, by patterns, text and limit: an incident's description leaves for each
supplier, on each pass of its sync, and the regex engine's pass over it is the costly part."""
_scrubbed_lock = threading.Lock()

_ANSI = re.compile(
    r"\x1b\[[0-?]{0,32}[ -/]{0,8}[@-~]"  # CSI: colours, cursor moves, erase
    r"|\x1b\][^\x07\x1b]{0,512}(?:\x07|\x1b\\)"  # OSC: window titles, hyperlinks
    r"|\x1b[ -/]{0,4}[0-~]"  # any other escape sequence
)
_CONTROLS = re.compile(
    "["
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0 but tab, newline and carriage return; DEL; C1
    "\u00ad\u061c\u180e\u200b\u200e\u200f\u2060-\u2064\ufeff"  # invisible: soft hyphen, marks, joiners
    "\u202a-\u202e\u2066-\u2069"  # bidirectional embeddings, overrides and isolates
    "\ufff9-\ufffb\ufffe\uffff"  # interlinear annotations, non-characters
    "\ud800-\udfff"  # lone surrogates (not text; JSON encoders choke on them)
    "\U000e0000-\U000e007f"  # tag characters: invisible ASCII
    "]"
)
_LINE_SEPARATORS = re.compile("[\u2028\u2029]")


def sanitize(text: str) -> str:
    r"""``text`` without control characters, escape sequences and invisible format characters.

    Kept: newlines (``\n``, ``\r``), tabs and every visible character; Unicode line and
    paragraph separators become newlines. Linear in the length of ``text``.
    """
    text = _ANSI.sub("", text)
    text = _CONTROLS.sub("", text)
    return _LINE_SEPARATORS.sub("\n", text)


@dataclass(frozen=True)
class Scrubbed:
    """A text fit to leave, and what stood in the way."""

    text: str
    withheld: bool = False
    """The redaction did not finish: ``text`` is :data:`WITHHELD`."""
    overrun: tuple[str, ...] = ()
    """Patterns that ran out of their budget just now (not when the text was remembered)."""


def scrub(text: str, patterns: Sequence[RedactionPattern], limit: int) -> Scrubbed:
    """``text`` clipped, sanitised and redacted, at most ``limit`` characters long (see the module)."""
    window = text[: limit + MARGIN]
    cut = len(text) > len(window)
    clean = sanitize(window)
    key = _key(clean, patterns)
    if key in _overrun:
        return Scrubbed(WITHHELD, withheld=True)
    done = (tuple((pattern.regex, pattern.replace) for pattern in patterns), key[1], limit, cut)
    with _scrubbed_lock:
        known = _scrubbed.get(done)
        if known is not None:
            _scrubbed.move_to_end(done)
            return Scrubbed(known)
    redacted, overrun = _redact(clean, patterns)
    if overrun is not None:
        _remember(key)
        return Scrubbed(WITHHELD, withheld=True, overrun=(overrun,))
    result = _cut(redacted, limit, unsafe_tail=MARGIN if cut else 0)
    with _scrubbed_lock:
        _scrubbed[done] = result
        while len(_scrubbed) > _SCRUBBED:
            _scrubbed.popitem(last=False)
    return Scrubbed(result)


class Scrubber:
    """Scrubs the outbound texts of one plan, and keeps what the operator must be told.

    A text used twice (a description in two templates, or in every plan of an incident) costs one
    pass: :func:`scrub` remembers the last texts it scrubbed, and the texts that overran.
    """

    def __init__(self, patterns: Sequence[RedactionPattern]) -> None:
        self.patterns = tuple(patterns)
        self.alerts: list[str] = []

    def text(self, text: str, limit: int, what: str) -> str:
        """``text`` fit to leave (:func:`scrub`); ``what`` names it in an alert (``"description"``)."""
        result = scrub(text, self.patterns, limit)
        for name in result.overrun:
            self.alerts.append(
                f"{what} withheld: redaction pattern '{name}' did not finish within {BUDGET:g} s on "
                f"{min(len(text), limit + MARGIN):,} characters (check the pattern with `mim-connector check`)"
            )
        return result.text


def _key(text: str, patterns: Sequence[RedactionPattern]) -> tuple[tuple[str, ...], str]:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return tuple(pattern.regex for pattern in patterns), digest


def _remember(key: tuple[tuple[str, ...], str]) -> None:
    """A text that overran: its next scrub is withheld at once (a bounded memory, oldest out first)."""
    with _overrun_lock:
        _overrun[key] = None
        while len(_overrun) > _REMEMBERED:
            _overrun.popitem(last=False)


@lru_cache(maxsize=512)
def compiled(pattern: str) -> regex.Pattern[str]:
    """A redaction pattern compiled as the runtime runs it (the ``regex`` engine, ``re``-compatible)."""
    return regex.compile(pattern)


def _redact(text: str, patterns: Sequence[RedactionPattern]) -> tuple[str, str | None]:
    """``text`` with every pattern applied, or the name of the first pattern that ran out of time."""
    for pattern in patterns:
        # The replacement is literal text: escape backslashes so "\1" is not read as a group.
        replacement = pattern.replace.replace("\\", "\\\\")
        try:
            text = compiled(pattern.regex).sub(replacement, text, concurrent=True, timeout=BUDGET)
        except TimeoutError:
            return text, pattern.name
    return text, None


def _cut(text: str, limit: int, *, unsafe_tail: int = 0) -> str:
    """``text`` at most ``limit`` characters, without its last ``unsafe_tail``; saying so when cut."""
    end = min(limit, len(text) - unsafe_tail)
    if end >= len(text):
        return text
    return text[: max(0, end - 20)] + TRUNCATED
