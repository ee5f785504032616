r"""Checks of a redaction pattern for catastrophic backtracking: its shape, and probes with a budget.

A backtracking engine (``re``, ``regex``) can take exponential time on a text that *almost*
matches a pattern whose parts can match the same characters in many ways, and quadratic time
when a pattern starts with an unbounded repeat that a long run of text matches. The runtime
bounds both (a clipped text, a time budget, the text withheld when it runs out); these checks
tell the admin beforehand, from the pattern alone:

* **nested repeats** (``(a+)+``, ``(\w+\s?)*``): a repeated group holding a repeat, with nothing
  between the repetitions that the inner repeat cannot match: error;
* **overlapping alternatives** (``(\w|\d)+``, ``(.|\s)*``): a repeated alternation whose
  branches can match the same text: error;
* **a leading unbounded repeat** (``[a-z]+@...``): every start position can scan the whole run
  and fail: quadratic, a warning (bound it, ``{1,64}``, or start with a lookbehind).

The analysis is by characters of a sample alphabet (ASCII and a few others), which is enough to
tell these shapes apart. Python's parser folds some alternations into character sets that the
``regex`` engine still backtracks over (``(a|a)+``), and cannot read syntax only ``regex`` has: so
the pattern is also run, by the engine the redaction uses, on short probe texts built from its own
characters (runs that almost match); one it cannot finish within :data:`PROBE_BUDGET` is
exponential (a linear pattern takes microseconds on them), and is reported as such.
"""

from __future__ import annotations

import importlib
import itertools
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import regex

from connector.core.problems import Severity

# The parser of the standard library's engine: private, but the only way to see a pattern's
# structure without writing a parser of our own; the ``regex`` engine shares its syntax.
_sre: Any = importlib.import_module("re._parser")
_MAXREPEAT: int = _sre.MAXREPEAT

NESTED = (
    "a repeated group holds a repeat that can split the same text in many ways: exponential time on "
    "text that almost matches (put a character the inner repeat cannot match between repetitions, "
    "bound it like {1,64}, or make it possessive with ++)"
)
OVERLAPPING = (
    "a repeated alternation has branches that can match the same text: exponential time on text that "
    "almost matches (make the branches exclusive, e.g. \\w instead of (\\w|\\d))"
)
PROBE_BUDGET = 0.5
"""Seconds the engine may take on one probe text (a few dozen characters)."""
_PROBE_RUN = 32
EXPONENTIAL = (
    f"takes more than {PROBE_BUDGET:g} s on a text of {_PROBE_RUN + 1} characters that almost matches: "
    "exponential backtracking (look for a repeated group or alternation whose parts can match the same text)"
)
LEADING = (
    "starts with an unbounded repeat: a long run of text it matches, without the rest of the pattern, "
    "takes quadratic time (bound it like {1,64}, or start with a lookbehind such as (?<![a-z]))"
)

_SAMPLE = (*range(128), 0xA0, 0xE9, 0x3B1, 0x416, 0x660, 0x2028, 0x4E00, 0x1F600)
_LARGE = 16
"""A repeat bound above this counts as large: its nesting multiplies the ways to match."""
_REPEATS = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})
_SINGLE = frozenset({"LITERAL", "NOT_LITERAL", "ANY", "IN"})
_ZERO_WIDTH = frozenset({"AT", "ASSERT", "ASSERT_NOT"})

Node = tuple[Any, Any]
Chars = frozenset[int]


def backtracking_problems(pattern: str) -> list[tuple[Severity, str]]:
    """``(severity, message)`` for each catastrophic shape in ``pattern`` (none when unreadable)."""
    try:
        parsed = _sre.parse(pattern)
    except (re.error, RecursionError, OverflowError):
        parsed = None  # `regex`-only syntax: only the probes look at it
    found: list[tuple[Severity, str]] = []
    nodes: list[Node] = list(parsed) if parsed is not None else []
    fold = parsed is not None and bool(parsed.state.flags & re.IGNORECASE)
    if any(_nested(node, fold) for node in _walk(nodes)):
        found.append(("error", NESTED))
    if any(_overlapping(node, fold) for node in _walk(nodes)):
        found.append(("error", OVERLAPPING))
    if not found and _probes_time_out(pattern, nodes, fold):
        found.append(("error", EXPONENTIAL))
    if _leading_unbounded(nodes):
        found.append(("warning", LEADING))
    return found


def _probes_time_out(pattern: str, nodes: list[Node], fold: bool) -> bool:
    """Whether the engine fails to finish some probe text within the budget, twice in a row."""
    compiled = regex.compile(pattern)
    picks = sorted(
        {min(chars) for chars in _char_sets(nodes, fold) if chars} | {ord("a"), ord("1"), ord(" ")}
    )
    letters = [chr(c) for c in picks[:16]]
    ends = [*letters, "!", "\n", "\x00", ""]
    runs = [one * _PROBE_RUN for one in letters]
    runs += [(one + two) * (_PROBE_RUN // 2) for one, two in itertools.permutations(letters[:8], 2)]
    for run, end in itertools.product(runs, ends):
        if _slow(compiled, run + end) and _slow(compiled, run + end):
            return True
    return False


def _slow(compiled: regex.Pattern[str], text: str) -> bool:
    try:
        compiled.search(text, timeout=PROBE_BUDGET)
    except TimeoutError:
        return True
    return False


def _char_sets(nodes: list[Node], fold: bool) -> Iterator[Chars]:
    for node in _walk(nodes):
        single = _single(node, fold)
        if single is not None:
            yield single


# --- the three shapes ---------------------------------------------------------------------------------


def _nested(node: Node, fold: bool) -> bool:
    op, av = node
    if _name(op) not in _REPEATS or _name(op) == "POSSESSIVE_REPEAT" or av[1] <= 1:
        return False
    outer_large = _large(av[1])
    for path in _repeat_paths(list(av[2])):
        inner = path[-1][0][path[-1][1]]
        inner_op, (_min, inner_max, inner_body) = inner
        if _name(inner_op) == "POSSESSIVE_REPEAT":
            continue  # gives nothing back: the repetitions cannot trade characters
        if not _large(inner_max) or not (outer_large or inner_max == _MAXREPEAT):
            continue
        chars = _all_chars(list(inner_body), fold)
        separated = any(
            not _nullable([sibling]) and not (_all_chars([sibling], fold) & chars)
            for sequence, index in path
            for position, sibling in enumerate(sequence)
            if position != index
        )
        if not separated:
            return True
    return False


def _overlapping(node: Node, fold: bool) -> bool:
    op, av = node
    if _name(op) not in _REPEATS or _name(op) == "POSSESSIVE_REPEAT" or not _large(av[1]):
        return False
    branches = _branches(list(av[2]))
    for i, left in enumerate(branches):
        for right in branches[i + 1 :]:
            if _same_text(left, right, fold) or _same_text(right, left, fold):
                return True
    return False


def _leading_unbounded(nodes: list[Node]) -> bool:
    """The first character-consuming part is an unbounded repeat, and more must follow it."""
    for index, (op, av) in enumerate(nodes):
        name = _name(op)
        if name == "AT" and _name(av) in ("AT_BOUNDARY", "AT_NON_BOUNDARY"):
            continue  # \b still lets a match start inside a run of, say, a-b-c-d
        if name in _ZERO_WIDTH:
            return False  # anchored, or behind a lookaround the admin chose
        if name == "SUBPATTERN":
            return _leading_unbounded([*av[3], *nodes[index + 1 :]])
        if name in _REPEATS:
            return av[1] == _MAXREPEAT and not _nullable(nodes[index + 1 :])
        return False
    return False


# --- structure ----------------------------------------------------------------------------------------


def _name(op: Any) -> str:
    return str(op)


def _large(bound: int) -> bool:
    return bound == _MAXREPEAT or bound > _LARGE


def _children(node: Node) -> list[list[Node]]:
    """The sequences directly inside ``node`` (lookarounds excluded: they consume nothing)."""
    op, av = node
    name = _name(op)
    if name in _REPEATS:
        return [list(av[2])]
    if name == "SUBPATTERN":
        return [list(av[3])]
    if name == "ATOMIC_GROUP":
        return [list(av)]
    if name == "BRANCH":
        return [list(branch) for branch in av[1]]
    if name == "GROUPREF_EXISTS":
        return [list(part) for part in av[1:] if part is not None]
    return []


def _walk(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        for child in _children(node):
            yield from _walk(child)


def _repeat_paths(sequence: list[Node]) -> Iterator[list[tuple[list[Node], int]]]:
    """Each repeat inside ``sequence``, as the chain of (sequence, index) leading to it."""
    for index, node in enumerate(sequence):
        if _name(node[0]) in _REPEATS:
            yield [(sequence, index)]
        for child in _children(node):
            for path in _repeat_paths(child):
                yield [(sequence, index), *path]


def _branches(sequence: list[Node]) -> list[list[Node]]:
    """The alternatives of a sequence that is (a group around) one alternation, else none."""
    while len(sequence) == 1 and _name(sequence[0][0]) in ("SUBPATTERN", "ATOMIC_GROUP"):
        sequence = _children(sequence[0])[0]
    if len(sequence) == 1 and _name(sequence[0][0]) == "BRANCH":
        return _children(sequence[0])
    return []


def _nullable(sequence: list[Node]) -> bool:
    """Whether ``sequence`` can match the empty text."""
    for op, av in sequence:
        name = _name(op)
        if name in _SINGLE:
            return False
        if name in _REPEATS:
            if av[0] > 0 and not _nullable(list(av[2])):
                return False
        elif name == "BRANCH":
            if not any(_nullable(list(branch)) for branch in av[1]):
                return False
        elif name in ("SUBPATTERN", "ATOMIC_GROUP") and not _nullable(_children((op, av))[0]):
            return False
    return True


# --- characters ---------------------------------------------------------------------------------------


def _all_chars(sequence: list[Node], fold: bool) -> Chars:
    """Every sample character ``sequence`` can consume somewhere."""
    chars: set[int] = set()
    for node in sequence:
        single = _single(node, fold)
        if single is not None:
            chars |= single
        for child in _children(node):
            chars |= _all_chars(child, fold)
    return frozenset(chars)


def _single(node: Node, fold: bool) -> Chars | None:
    """The sample characters a one-character node matches, or ``None`` for other nodes."""
    op, av = node
    name = _name(op)
    if name == "LITERAL":
        return _fold({av}, fold)
    if name == "NOT_LITERAL":
        return frozenset(_SAMPLE) - _fold({av}, fold)
    if name == "ANY":
        return frozenset(c for c in _SAMPLE if c != 0x0A)
    if name == "IN":
        return _in(tuple(av), fold)
    return None


def _fold(chars: set[int], fold: bool) -> Chars:
    if not fold:
        return frozenset(chars)
    out = set(chars)
    for c in chars:
        if 0 <= c < 0x110000:
            out |= {ord(x) for x in (chr(c).lower(), chr(c).upper()) if len(x) == 1}
    return frozenset(out)


def _in(items: tuple[Any, ...], fold: bool) -> Chars:
    chars: set[int] = set()
    negate = False
    for op, av in items:
        name = _name(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars |= _fold({av}, fold)
        elif name == "RANGE":
            chars |= _fold({c for c in _SAMPLE if av[0] <= c <= av[1]}, fold)
        elif name == "CATEGORY":
            chars |= _category(_name(av))
    chars &= set(_SAMPLE)
    return frozenset(_SAMPLE) - chars if negate else frozenset(chars)


@cache
def _category(name: str) -> Chars:
    spelled = {
        "CATEGORY_DIGIT": r"\d",
        "CATEGORY_NOT_DIGIT": r"\D",
        "CATEGORY_SPACE": r"\s",
        "CATEGORY_NOT_SPACE": r"\S",
        "CATEGORY_WORD": r"\w",
        "CATEGORY_NOT_WORD": r"\W",
    }.get(name, r"[\s\S]")
    probe = re.compile(spelled)
    return frozenset(c for c in _SAMPLE if probe.fullmatch(chr(c)))


def _positions(sequence: list[Node], fold: bool) -> list[tuple[Chars, bool]] | None:
    """``sequence`` as character sets, each with whether it may repeat; ``None`` unless that simple."""
    out: list[tuple[Chars, bool]] = []
    for node in sequence:
        op, av = node
        single = _single(node, fold)
        if single is not None:
            out.append((single, False))
            continue
        if _name(op) in _REPEATS and len(av[2]) == 1 and (inner := _single(av[2][0], fold)) is not None:
            if av[0] > 0:
                out.append((inner, av[1] > 1))
            continue
        return None
    return out


def _same_text(left: list[Node], right: list[Node], fold: bool) -> bool:
    r"""Whether two branches of a repeated alternation can match the same text (conservatively).

    Caught: both match one same character (``\w|\d``); one is a single character that, repeated,
    spells a text of the other (``a|aa``, ``\d|\w\w``); equally long runs that agree position by
    position (``ab|a.``).
    """
    one, other = _positions(left, fold), _positions(right, fold)
    if one is None or other is None or not one or not other:
        return False
    if len(one) == 1 and not one[0][1]:
        return all(chars & one[0][0] for chars, _repeats in other)
    if len(one) == len(other):
        return all(a & b for (a, _), (b, _) in zip(one, other, strict=True))
    return False
