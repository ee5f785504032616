"""Read a YAML file into plain data while remembering where every value came from.

PyYAML's ``compose`` keeps node marks; we build the data ourselves from the node tree so that each
data path maps to a 1-based line and column. Mapping keys are always their literal text (``on:``
stays ``"on"``, ``6:`` stays ``"6"``). Duplicate keys, which PyYAML would silently merge, are
reported. Anchors, aliases and ``<<`` merge keys work as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from connector.core.problems import Loc, Problem, Severity, display_path, dotted


@dataclass(frozen=True)
class Mark:
    """A 1-based position in a file."""

    line: int
    col: int


@dataclass
class SourceDoc:
    """A parsed YAML file: its data, where each value and key sits, and problems met while reading."""

    path: Path
    data: Any = None
    value_marks: dict[Loc, Mark] = field(default_factory=dict)
    key_marks: dict[Loc, Mark] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def display(self) -> str:
        """The file name as messages show it."""
        return display_path(self.path)

    def mark(self, loc: Loc, *, key: bool = False) -> Mark:
        """Where ``loc`` sits, or its nearest existing ancestor; ``key`` prefers the key over its value."""
        if key and loc in self.key_marks:
            return self.key_marks[loc]
        for end in range(len(loc), -1, -1):
            prefix = loc[:end]
            if prefix in self.value_marks:
                return self.value_marks[prefix]
        return Mark(1, 1)

    def problem(self, loc: Loc, message: str, *, key: bool = False, severity: Severity = "error") -> Problem:
        """A :class:`Problem` at ``loc`` in this file."""
        mark = self.mark(loc, key=key)
        return Problem(self.display, mark.line, mark.col, dotted(loc), message, severity)

    def get(self, loc: Loc, default: Any = None) -> Any:
        """The raw value at ``loc``, or ``default`` when any step is missing."""
        value = self.data
        for part in loc:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return default
        return value


def read_yaml(path: Path) -> SourceDoc:
    """Parse ``path``. Syntax errors and unreadable files become problems, never exceptions."""
    doc = SourceDoc(path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        doc.problems.append(Problem(doc.display, 0, 0, "", "file not found"))
        return doc
    except (OSError, UnicodeDecodeError) as exc:
        doc.problems.append(Problem(doc.display, 0, 0, "", f"cannot read file: {exc}"))
        return doc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        doc.problems.append(_syntax_problem(doc, exc))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(doc.display, 0, 0, "", f"YAML error: {exc}"))
        return doc
    if node is None:
        doc.data = {}
        doc.value_marks[()] = Mark(1, 1)
        return doc
    builder = _Builder(doc, yaml.SafeLoader(""))
    try:
        doc.data = builder.build(node, ())
    except yaml.MarkedYAMLError as exc:
        doc.problems.append(_syntax_problem(doc, exc))
    return doc


def _syntax_problem(doc: SourceDoc, exc: yaml.MarkedYAMLError) -> Problem:
    # Only the problem text and its position: the snippet PyYAML adds could show a secret.
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    message = f"YAML syntax error: {exc.problem or exc.context}"
    if exc.context and exc.problem:
        message += f" ({exc.context})"
    if "<block end>" in message or "indentation" in message:
        message += "; check the indentation"
    return Problem(doc.display, line, col, "", message)


class _Builder:
    """Turns a composed node tree into dicts, lists and scalars, recording marks per data path."""

    MAX_DEPTH = 64

    def __init__(self, doc: SourceDoc, loader: yaml.SafeLoader) -> None:
        self.doc = doc
        self.loader = loader

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.doc.value_marks.setdefault(loc, Mark(node.start_mark.line + 1, node.start_mark.column + 1))
        if len(loc) > self.MAX_DEPTH:
            raise yaml.constructor.ConstructorError(None, None, "nesting too deep", node.start_mark)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*loc, index)) for index, child in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        first_seen: dict[str, Mark] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            mark = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key_node.value in first_seen:
                first = first_seen[key_node.value]
                self.doc.problems.append(
                    Problem(
                        self.doc.display,
                        mark.line,
                        mark.col,
                        dotted((*loc, key_node.value)),
                        f"duplicate key (first defined at line {first.line})",
                    )
                )
            else:
                first_seen[key_node.value] = mark
        self.loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a mapping key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                )
            key = key_node.value
            child = (*loc, key)
            self.doc.key_marks[child] = Mark(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            self.doc.value_marks.pop(child, None)  # a later duplicate or override wins, as in PyYAML
            result[key] = self.build(value_node, child)
        return result
