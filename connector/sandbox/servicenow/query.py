"""The encoded query language of ``sysparm_query``, parsed into blocks of clauses of conditions.

Grammar as the platform reads it: ``^`` separates AND-ed terms; a term starting with ``OR`` is
OR-ed with the condition before it (``a^b^ORc`` = a AND (b OR c)); ``^NQ`` starts an independent
query whose rows are added to the result; ``ORDERBY<field>``/``ORDERBYDESC<field>`` may appear
anywhere; ``^EQ`` ends the query; ``^^`` is a literal caret. A condition is
``<field><OPERATOR><value>`` with a lowercase (possibly dot-walked) field name. Pure: nothing
here knows tables; :mod:`.predicates` gives conditions their meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPERATORS = (
    "NOT LIKE",
    "NOT IN",
    "NOTON",
    "NSAMEAS",
    "SAMEAS",
    "STARTSWITH",
    "ENDSWITH",
    "ISNOTEMPTY",
    "ISEMPTY",
    "EMPTYSTRING",
    "ANYTHING",
    "BETWEEN",
    "DATEPART",
    "RELATIVEGT",
    "RELATIVEGE",
    "RELATIVELT",
    "RELATIVELE",
    "RELATIVEEE",
    "MORETHAN",
    "LESSTHAN",
    "VALCHANGES",
    "CHANGESFROM",
    "CHANGESTO",
    "DYNAMIC",
    "LIKE",
    "IN",
    "ON",
    "!=",
    ">=",
    "<=",
    "=",
    ">",
    "<",
)
"""Operators the parser recognises, longest first; :mod:`.predicates` implements a subset."""

_FIELD = re.compile(r"[a-z0-9_.]+")


@dataclass(frozen=True)
class Condition:
    """One condition; ``operator`` is ``None`` when the term could not be parsed."""

    field: str
    operator: str | None
    value: str
    text: str


@dataclass(frozen=True)
class OrderTerm:
    """An ``ORDERBY``/``ORDERBYDESC`` term."""

    field: str
    descending: bool


Clause = tuple[Condition, ...]
"""Conditions OR-ed together."""
Block = tuple[Clause, ...]
"""Clauses AND-ed together."""


@dataclass(frozen=True)
class EncodedQuery:
    """A parsed ``sysparm_query``: rows matching any block, in ``order``."""

    blocks: tuple[Block, ...]
    order: tuple[OrderTerm, ...]


def _split_terms(text: str) -> list[str]:
    """Split on single carets; ``^^`` stands for a literal ``^`` inside a value."""
    placeholder = "\x00"
    return [term.replace(placeholder, "^") for term in text.replace("^^", placeholder).split("^")]


def parse_condition(term: str) -> Condition:
    """Split ``term`` into field, operator and value (operator ``None`` when malformed)."""
    match = _FIELD.match(term)
    if match is None:
        return Condition("", None, "", term)
    field = match.group()
    rest = term[match.end() :]
    for operator in OPERATORS:
        if rest.startswith(operator):
            return Condition(field, operator, rest[len(operator) :], term)
    return Condition(field, None, rest, term)


def parse(text: str) -> EncodedQuery:
    """Parse an encoded query. Never raises: unparseable terms become conditions with no operator.

    An empty query (or one of only ``ORDERBY`` terms) has no blocks and matches every row.
    """
    blocks: list[Block] = []
    clauses: list[list[Condition]] = []
    order: list[OrderTerm] = []
    for term in _split_terms(text):
        if term == "EQ":
            break
        if term.startswith("ORDERBYDESC"):
            order.append(OrderTerm(term.removeprefix("ORDERBYDESC"), descending=True))
            continue
        if term.startswith("ORDERBY"):
            order.append(OrderTerm(term.removeprefix("ORDERBY"), descending=False))
            continue
        if term.startswith("GROUPBY") or not term:
            continue
        if term.startswith("NQ"):
            if clauses:
                blocks.append(tuple(tuple(clause) for clause in clauses))
            clauses = []
            term = term.removeprefix("NQ")
            if not term:
                continue
        if term.startswith("OR") and clauses:
            clauses[-1].append(parse_condition(term.removeprefix("OR")))
        else:
            clauses.append([parse_condition(term.removeprefix("OR"))])
    if clauses:
        blocks.append(tuple(tuple(clause) for clause in clauses))
    return EncodedQuery(tuple(blocks), tuple(order))
