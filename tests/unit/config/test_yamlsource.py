"""Reading YAML keeps positions, reports duplicates and syntax errors, and never echoes file content."""

from __future__ import annotations

import textwrap
from pathlib import Path

from connector.config.yamlsource import Mark, read_yaml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "f.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_positions_of_values_and_keys(tmp_path: Path) -> None:
    doc = read_yaml(
        write(
            tmp_path,
            """\
        a:
          b: [1, 2]
          c:
            - {d: x}
        """,
        )
    )
    assert doc.data == {"a": {"b": [1, 2], "c": [{"d": "x"}]}}
    assert doc.mark(("a", "b", 1)) == Mark(2, 10)
    assert doc.mark(("a", "c", 0, "d")) == Mark(4, 11)
    assert doc.mark(("a", "c", 0, "d"), key=True) == Mark(4, 8)
    assert doc.mark(("a", "missing", "deeper")) == doc.mark(("a",))


def test_keys_are_literal_text(tmp_path: Path) -> None:
    doc = read_yaml(write(tmp_path, "on: 1\n6: Resolved\nyes: no\n"))
    assert doc.data == {"on": 1, "6": "Resolved", "yes": False}


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    doc = read_yaml(
        write(
            tmp_path,
            """\
        base: &base {category: todo, terminal: false}
        done:
          <<: *base
          terminal: true
        """,
        )
    )
    assert doc.data["done"] == {"category": "todo", "terminal": True}
    assert doc.problems == []


def test_duplicate_keys_are_reported_with_both_lines(tmp_path: Path) -> None:
    doc = read_yaml(write(tmp_path, "a: 1\nb: 2\na: 3\n"))
    assert [str(p) for p in doc.problems] == [
        f"{doc.display}:3:1: a: duplicate key (first defined at line 1)"
    ]
    assert doc.data == {"a": 3, "b": 2}


def test_syntax_error_gives_position_without_the_line_text(tmp_path: Path) -> None:
    doc = read_yaml(write(tmp_path, "a: 1\nb: [secret-looking-text\n"))
    assert doc.data is None
    (problem,) = doc.problems
    assert (problem.line, problem.col) == (3, 1)
    assert problem.message.startswith("YAML syntax error:")
    assert "secret-looking-text" not in str(problem)


def test_empty_file_is_an_empty_mapping(tmp_path: Path) -> None:
    doc = read_yaml(write(tmp_path, "# only a comment\n"))
    assert doc.data == {}
    assert doc.problems == []


def test_non_scalar_key_is_a_problem(tmp_path: Path) -> None:
    doc = read_yaml(write(tmp_path, "? [a, b]\n: 1\n"))
    assert doc.problems[0].message.startswith("YAML syntax error: a mapping key must be a plain value")
