"""A JQL lexer and parser for the subset the simulator supports.

Grammar: ``[clause-tree] [ORDER BY field [ASC|DESC], ...]`` where the tree combines clauses with
``AND``/``&&``, ``OR``/``||``, ``NOT``/``!`` and parentheses; a clause is ``field operator operand``
with the operators ``= != < > <= >= ~ !~ IN NOT IN IS IS NOT``; operands are words, quoted strings,
``EMPTY``/``NULL``, ``name()`` functions or parenthesised lists. Fields are names, quoted names,
``cf[NNNNN]`` and ``issue.property[key].path``. Syntax errors raise a 400 whose message follows
Jira's ("Error in the JQL Query: ... (line 1, character N)").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from connector.sandbox.jira.errors import JiraApiError

_OPERATORS = ("!=", "!~", "<=", ">=", "=", "~", "<", ">")
_STOP = set(" \t\r\n()=,!~<>\"'&|")
_KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "EMPTY", "NULL", "ORDER", "BY", "ASC", "DESC"}
_UNSUPPORTED_OPERATORS = {"WAS", "CHANGED"}
_VALID_OPERATORS = (
    "The valid operators are '=', '!=', '<', '>', '<=', '>=', '~', '!~', 'IN', 'NOT IN', 'IS' and 'IS NOT'."
)
_PROPERTY = re.compile(r"^issue\.property\[([^\]]+)\]\.?(.*)$", re.IGNORECASE)


def jql_error(message: str, position: int | None = None) -> JiraApiError:
    """A 400 with Jira's ``Error in the JQL Query:`` prefix and 1-based position."""
    where = f" (line 1, character {position + 1})" if position is not None else ""
    return JiraApiError(400, f"Error in the JQL Query: {message}{where}")


@dataclass(frozen=True)
class Token:
    """A lexical token; ``kind`` is ``word``, ``string``, ``op``, ``(``, ``)``, ``,`` or ``end``."""

    kind: str
    text: str
    position: int

    def keyword(self, *words: str) -> bool:
        """True for an unquoted word that is one of ``words`` (case-insensitive)."""
        return self.kind == "word" and self.text.upper() in words

    def shown(self) -> str:
        """How an error message quotes this token."""
        return "the end of the query" if self.kind == "end" else f"'{self.text}'"


@dataclass(frozen=True)
class FieldRef:
    """A field as written; ``property_key``/``property_path`` for ``issue.property[key].path``."""

    name: str
    position: int
    property_key: str | None = None
    property_path: str = ""


@dataclass(frozen=True)
class Value:
    """An operand item: a literal, ``EMPTY`` (``empty``), or a function call (``function``).

    A function has its name in ``text`` and its arguments in ``args``.
    """

    text: str
    position: int
    quoted: bool = False
    function: bool = False
    empty: bool = False
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clause:
    """``field operator values``; ``is_list`` for a parenthesised list."""

    field: FieldRef
    operator: str
    values: tuple[Value, ...]
    is_list: bool = False


@dataclass(frozen=True)
class Junction:
    """``AND`` or ``OR`` of two or more nodes."""

    kind: Literal["AND", "OR"]
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Negation:
    """``NOT node``."""

    child: Node


Node = Clause | Junction | Negation


@dataclass(frozen=True)
class OrderKey:
    """One ``ORDER BY`` item; ``descending`` is ``None`` when no direction was written."""

    field: FieldRef
    descending: bool | None


@dataclass(frozen=True)
class Query:
    """A parsed query: the clause tree (``None`` when unbounded) and the ordering."""

    where: Node | None
    order_by: tuple[OrderKey, ...]


def tokenize(text: str) -> list[Token]:
    """Split JQL into tokens; raises a 400 for an unterminated quoted string."""
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
        elif char in "(),":
            tokens.append(Token(char, char, position))
            position += 1
        elif char in "\"'":
            end, value = _quoted(text, position)
            tokens.append(Token("string", value, position))
            position = end
        elif text.startswith(("&&", "||"), position):
            tokens.append(Token("word", "AND" if char == "&" else "OR", position))
            position += 2
        elif op := next((op for op in _OPERATORS if text.startswith(op, position)), None):
            tokens.append(Token("op", op, position))
            position += len(op)
        elif char == "!":
            tokens.append(Token("word", "NOT", position))
            position += 1
        else:
            start = position
            depth = 0
            while position < len(text) and (depth or text[position] not in _STOP):
                depth += {"[": 1, "]": -1}.get(text[position], 0)
                position += 1
            if position == start:
                raise jql_error(f"The character '{char}' is a reserved JQL character.", position)
            tokens.append(Token("word", text[start:position], start))
    tokens.append(Token("end", "", len(text)))
    return tokens


def _quoted(text: str, start: int) -> tuple[int, str]:
    quote = text[start]
    out: list[str] = []
    position = start + 1
    while position < len(text):
        char = text[position]
        if char == "\\" and position + 1 < len(text):
            out.append(text[position + 1])
            position += 2
            continue
        if char == quote:
            return position + 1, "".join(out)
        out.append(char)
        position += 1
    raise jql_error(f"The quoted string '{''.join(out)}' has not been completed.", start)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def query(self) -> Query:
        where = None if self.token.keyword("ORDER") or self.token.kind == "end" else self.or_expr()
        order_by: tuple[OrderKey, ...] = ()
        if self.token.keyword("ORDER"):
            self.advance()
            if not self.token.keyword("BY"):
                raise jql_error(f"Expecting 'BY' but got {self.token.shown()}.", self.token.position)
            self.advance()
            order_by = self.order_list()
        if self.token.kind != "end":
            raise jql_error(
                f"Expecting either 'OR' or 'AND' but got {self.token.shown()}.", self.token.position
            )
        return Query(where, order_by)

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.token.keyword("OR"):
            self.advance()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Junction("OR", tuple(children))

    def and_expr(self) -> Node:
        children = [self.not_expr()]
        while self.token.keyword("AND"):
            self.advance()
            children.append(self.not_expr())
        return children[0] if len(children) == 1 else Junction("AND", tuple(children))

    def not_expr(self) -> Node:
        if self.token.keyword("NOT"):
            self.advance()
            return Negation(self.not_expr())
        if self.token.kind == "(":
            self.advance()
            inner = self.or_expr()
            if self.token.kind != ")":
                raise jql_error(f"Expecting ')' but got {self.token.shown()}.", self.token.position)
            self.advance()
            return inner
        return self.clause()

    def field(self) -> FieldRef:
        token = self.token
        if token.kind not in ("word", "string") or (token.kind == "word" and token.text.upper() in _KEYWORDS):
            raise jql_error(f"Expecting a field name but got {token.shown()}.", token.position)
        self.advance()
        match = _PROPERTY.match(token.text) if token.kind == "word" else None
        if match:
            return FieldRef(token.text, token.position, match.group(1).strip("\"'"), match.group(2))
        return FieldRef(token.text, token.position)

    def operator(self) -> str:
        token = self.advance()
        if token.kind == "op":
            return token.text
        if token.keyword("IN"):
            return "IN"
        if token.keyword("IS"):
            if self.token.keyword("NOT"):
                self.advance()
                return "IS NOT"
            return "IS"
        if token.keyword("NOT") and self.token.keyword("IN"):
            self.advance()
            return "NOT IN"
        if token.kind == "word" and token.text.upper() in _UNSUPPORTED_OPERATORS:
            raise jql_error(
                f"The operator '{token.text.upper()}' is not supported by the Jira sandbox.", token.position
            )
        raise jql_error(f"Expecting operator but got {token.shown()}. {_VALID_OPERATORS}", token.position)

    def clause(self) -> Clause:
        field = self.field()
        operator = self.operator()
        if self.token.kind == "(":
            self.advance()
            values = [self.value()]
            while self.token.kind == ",":
                self.advance()
                values.append(self.value())
            if self.token.kind != ")":
                raise jql_error(f"Expecting ')' but got {self.token.shown()}.", self.token.position)
            self.advance()
            return Clause(field, operator, tuple(values), is_list=True)
        return Clause(field, operator, (self.value(),))

    def value(self) -> Value:
        token = self.token
        if token.kind == "string":
            self.advance()
            return Value(token.text, token.position, quoted=True)
        if token.kind != "word" or token.keyword("AND", "OR", "NOT", "ORDER", "IN", "IS"):
            raise jql_error(
                f"Expecting either a value, list or function but got {token.shown()}.", token.position
            )
        self.advance()
        if token.keyword("EMPTY", "NULL"):
            return Value(token.text, token.position, empty=True)
        if self.token.kind == "(":
            return Value(token.text, token.position, function=True, args=self.arguments())
        return Value(token.text, token.position)

    def arguments(self) -> tuple[str, ...]:
        """A function's comma-separated arguments; the words of an unquoted argument are joined."""
        self.advance()
        args: list[str] = []
        current: list[str] = []
        while self.token.kind not in (")", "end"):
            token = self.advance()
            if token.kind == ",":
                args.append(" ".join(current))
                current = []
            else:
                current.append(token.text)
        if self.token.kind != ")":
            raise jql_error(f"Expecting ')' but got {self.token.shown()}.", self.token.position)
        self.advance()
        return (*args, " ".join(current)) if args or current else ()

    def order_list(self) -> tuple[OrderKey, ...]:
        keys = [self.order_key()]
        while self.token.kind == ",":
            self.advance()
            keys.append(self.order_key())
        return tuple(keys)

    def order_key(self) -> OrderKey:
        field = self.field()
        descending: bool | None = None
        if self.token.keyword("ASC", "DESC"):
            descending = self.advance().text.upper() == "DESC"
        return OrderKey(field, descending)


def parse(text: str) -> Query:
    """Parse a JQL string; raises a 400 ``JiraApiError`` on a syntax error."""
    return _Parser(text).query()
