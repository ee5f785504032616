"""Give a parsed encoded query its meaning on one table: predicates, sort keys, index hints.

Values are compared by column kind: integers as numbers, date-times as UTC instants (plain
literals are UTC, ``javascript:`` macros the session user's time zone), everything else as text
(``=`` exact, ``LIKE``/``STARTSWITH``/``ENDSWITH`` ignoring case). A condition on a field the
table does not have, with an operator we do not implement or with a script we cannot evaluate is
*dropped*, as ServiceNow drops it; :attr:`CompiledQuery.dropped` lists them so the caller can
apply ``glide.invalid_query.returns_no_rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.servicenow.dates import (
    QueryContext,
    evaluate_macro,
    normalise_literal,
    relative_bound,
)
from connector.sandbox.servicenow.query import Condition, EncodedQuery

Record = dict[str, str]
Test = Callable[[Record], bool]


@dataclass(frozen=True)
class FieldAccess:
    """How to read one (possibly dot-walked) field of a record, and what kind of value it holds.

    ``kind`` is one of ``string``, ``integer``, ``datetime``, ``boolean``, ``reference``,
    ``journal``; ``column`` is the plain column name when the path is not dot-walked.
    """

    kind: str
    get: Callable[[Record], str]
    column: str | None = None


Resolver = Callable[[str], FieldAccess | None]
"""Field path -> how to read it on the queried table; ``None`` when the table has no such field."""


@dataclass(frozen=True)
class Predicate:
    """A compiled condition plus what an index can use: the values ``=``/``IN`` accept and range bounds."""

    test: Test
    column: str | None
    text: str
    equals: frozenset[str] | None = None
    lower: str | None = None
    upper: str | None = None


@dataclass(frozen=True)
class SortKey:
    """One ``ORDERBY`` term resolved on the table."""

    path: str
    access: FieldAccess
    descending: bool


@dataclass(frozen=True)
class CompiledQuery:
    """A query ready to run: rows matching any block (all clauses, any predicate of each clause)."""

    blocks: tuple[tuple[tuple[Predicate, ...], ...], ...]
    order: tuple[SortKey, ...]
    dropped: tuple[str, ...] = field(default=())

    def matches(self, record: Record) -> bool:
        """True when ``record`` satisfies the query (an empty query matches everything)."""
        if not self.blocks:
            return True
        for block in self.blocks:
            for clause in block:
                for predicate in clause:
                    if predicate.test(record):
                        break
                else:
                    break
            else:
                return True
        return False


def _integer(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


def _normalise(kind: str, value: str, context: QueryContext) -> str | None:
    """A query operand in stored form; ``None`` when it cannot be understood (condition dropped)."""
    if value.startswith("javascript:"):
        return evaluate_macro(value.removeprefix("javascript:"), context)
    if kind == "integer":
        number = _integer(value)
        return str(number) if number is not None else value
    if kind == "datetime" and value:
        literal = normalise_literal(value)
        return literal if literal is not None else value
    if kind == "boolean":
        return value.lower()
    return value


def sort_value(kind: str, value: str) -> Any:
    """A key ordering stored values the way the database does (empty first, numbers numerically)."""
    if kind == "integer":
        number = _integer(value) if value else None
        return (0, 0, "") if number is None else (1, number, "")
    if kind in ("datetime", "reference"):
        return value
    return value.lower()


def _comparison(operator: str, access: FieldAccess, operand: str) -> Test | None:
    get = access.get
    if access.kind == "integer":
        bound = _integer(operand)
        if bound is None:
            return None

        def number(record: Record) -> int | None:
            return _integer(get(record) or "x")

        tests: dict[str, Test] = {
            "<": lambda r: (n := number(r)) is not None and n < bound,
            "<=": lambda r: (n := number(r)) is not None and n <= bound,
            ">": lambda r: (n := number(r)) is not None and n > bound,
            ">=": lambda r: (n := number(r)) is not None and n >= bound,
        }
        return tests[operator]
    text_tests: dict[str, Test] = {
        "<": lambda r: (v := get(r)) != "" and v < operand,
        "<=": lambda r: (v := get(r)) != "" and v <= operand,
        ">": lambda r: (v := get(r)) != "" and v > operand,
        ">=": lambda r: (v := get(r)) != "" and v >= operand,
    }
    return text_tests[operator]


def _between(access: FieldAccess, low: str, high: str) -> Test:
    get = access.get
    if access.kind == "integer":
        low_number, high_number = _integer(low), _integer(high)
        if low_number is None or high_number is None:
            return lambda _record: False

        def in_range(record: Record) -> bool:
            number = _integer(get(record) or "x")
            return number is not None and low_number <= number <= high_number

        return in_range
    return lambda r: (v := get(r)) != "" and low <= v <= high


def _text_test(operator: str, get: Callable[[Record], str], operand: str) -> Test:
    needle = operand.lower()
    tests: dict[str, Test] = {
        "=": lambda r: get(r) == operand,
        "!=": lambda r: get(r) != operand,
        "LIKE": lambda r: needle in get(r).lower(),
        "NOT LIKE": lambda r: needle not in get(r).lower(),
        "STARTSWITH": lambda r: get(r).lower().startswith(needle),
        "ENDSWITH": lambda r: get(r).lower().endswith(needle),
    }
    return tests[operator]


_EMPTINESS: dict[str, Callable[[str], bool]] = {
    "ISEMPTY": lambda v: v == "",
    "EMPTYSTRING": lambda v: v == "",
    "ISNOTEMPTY": lambda v: v != "",
    "ANYTHING": lambda _v: True,
}


class _Compiler:
    def __init__(self, resolve: Resolver, context: QueryContext) -> None:
        self.resolve = resolve
        self.context = context

    def operand(self, access: FieldAccess, value: str) -> str | None:
        return _normalise(access.kind, value, self.context)

    def condition(self, condition: Condition) -> Predicate | None:
        operator = condition.operator
        access = self.resolve(condition.field) if condition.field else None
        if operator is None or access is None:
            return None
        get, column, text = access.get, access.column, condition.text
        if operator in _EMPTINESS:
            check = _EMPTINESS[operator]
            return Predicate(lambda r: check(get(r)), column, text)
        if operator in ("IN", "NOT IN"):
            members = [self.operand(access, part) for part in condition.value.split(",")]
            if any(member is None for member in members):
                return None
            accepted = frozenset(member for member in members if member is not None)
            if operator == "IN":
                return Predicate(lambda r: get(r) in accepted, column, text, equals=accepted)
            return Predicate(lambda r: get(r) not in accepted, column, text)
        if operator in ("SAMEAS", "NSAMEAS"):
            other = self.resolve(condition.value)
            if other is None:
                return None
            same = operator == "SAMEAS"
            return Predicate(lambda r: (get(r) == other.get(r)) is same, column, text)
        if operator.startswith("RELATIVE") and operator != "RELATIVEEE":
            bound = relative_bound(condition.value, self.context.now)
            symbol = {"GT": ">", "GE": ">=", "LT": "<", "LE": "<="}[operator.removeprefix("RELATIVE")]
            return self.ranged(access, symbol, bound, text)
        if operator in ("BETWEEN", "ON", "NOTON"):
            return self.interval(access, operator, condition.value, text)
        if operator in ("=", "!=", "<", "<=", ">", ">=", "LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH"):
            operand = self.operand(access, condition.value)
            if operand is None:
                return None
            if operator in ("<", "<=", ">", ">="):
                return self.ranged(access, operator, operand, text)
            test = _text_test(operator, get, operand)
            if operator == "=":
                lower = operand if access.kind == "datetime" else None
                return Predicate(test, column, text, equals=frozenset({operand}), lower=lower, upper=lower)
            return Predicate(test, column, text)
        return None

    def ranged(self, access: FieldAccess, operator: str, bound: str | None, text: str) -> Predicate | None:
        if bound is None:
            return None
        test = _comparison(operator, access, bound)
        if test is None:
            return None
        lower = bound if operator in (">", ">=") and access.kind == "datetime" else None
        upper = bound if operator in ("<", "<=") and access.kind == "datetime" else None
        return Predicate(test, access.column, text, lower=lower, upper=upper)

    def interval(self, access: FieldAccess, operator: str, value: str, text: str) -> Predicate | None:
        parts = value.split("@")
        if len(parts) < 2:
            return None
        low = self.operand(access, parts[-2])
        high = self.operand(access, parts[-1])
        if low is None or high is None:
            return None
        inside = _between(access, low, high)
        if operator == "NOTON":
            return Predicate(lambda r: not inside(r), access.column, text)
        dated = access.kind == "datetime"
        return Predicate(
            inside, access.column, text, lower=low if dated else None, upper=high if dated else None
        )


def compile_query(parsed: EncodedQuery, resolve: Resolver, context: QueryContext) -> CompiledQuery:
    """Compile ``parsed`` for the table behind ``resolve``; see the module docstring for dropping."""
    compiler = _Compiler(resolve, context)
    dropped: list[str] = []
    blocks: list[tuple[tuple[Predicate, ...], ...]] = []
    for block in parsed.blocks:
        clauses: list[tuple[Predicate, ...]] = []
        for clause in block:
            predicates: list[Predicate] = []
            for condition in clause:
                predicate = compiler.condition(condition)
                if predicate is None:
                    dropped.append(condition.text)
                else:
                    predicates.append(predicate)
            if predicates:
                clauses.append(tuple(predicates))
        blocks.append(tuple(clauses))
    order: list[SortKey] = []
    for term in parsed.order:
        access = resolve(term.field)
        if access is not None:
            order.append(SortKey(term.field, access, term.descending))
    return CompiledQuery(tuple(blocks), tuple(order), tuple(dropped))


def sort_records(records: Sequence[Record], order: Sequence[SortKey]) -> list[Record]:
    """``records`` in ``order`` (stable, several keys, mixed directions); ties keep their input order."""
    result = list(records)
    for key in reversed(order):
        kind, get = key.access.kind, key.access.get
        result.sort(key=lambda record: sort_value(kind, get(record)), reverse=key.descending)
    return result
