"""Redaction patterns that would backtrack catastrophically are reported by `check`, located."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import load_config
from connector.config.regexcheck import (
    EXPONENTIAL,
    LEADING,
    NESTED,
    OVERLAPPING,
    backtracking_problems,
)
from connector.core.errors import ConfigError
from tests.factories import demo_config

SAFE = [
    r"(\.[a-z]+)+",
    r"(?:\d[ -]?){13,16}",
    r"(?<![a-z])[a-z]+\d",
    r"\+?\d[\d ()-]{7,}\d",
    r"(ab|ac)*",
    r"x(a++)*b$",
    r"[a-z]+",
    r"\p{Lu}{2,}",
]
BAD = {
    r"(a+)+$": [("error", NESTED)],
    r"(\w+\s?)+$": [("error", NESTED)],
    r"^(\d+)*x": [("error", NESTED)],
    r"(?i)(A+)+$": [("error", NESTED)],
    r"(a{1,50}){1,50}$": [("error", NESTED)],
    r"(?:\d+\.?)+$": [("error", NESTED)],
    r"(.|\s)*$": [("error", OVERLAPPING)],
    r"(\d|\w\w)+$": [("error", OVERLAPPING)],
    r"(a|a)+$": [("error", EXPONENTIAL)],
    r"(a|aa)+$": [("error", EXPONENTIAL)],
    r"[a-z]+\d": [("warning", LEADING)],
    r"\b[a-z0-9-]+\.corp\.example\.com\b": [("warning", LEADING)],
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}": [("warning", LEADING)],
}


@pytest.mark.parametrize("pattern", SAFE)
def test_linear_patterns_pass(pattern: str) -> None:
    assert backtracking_problems(pattern) == []


@pytest.mark.parametrize("pattern", sorted(BAD))
def test_catastrophic_shapes_are_named(pattern: str) -> None:
    assert backtracking_problems(pattern) == BAD[pattern]


def test_every_shipped_pattern_is_linear() -> None:
    for name, supplier in demo_config().suppliers.items():
        for pattern in supplier.outbound.redaction.patterns:
            assert backtracking_problems(pattern.regex) == [], f"{name}: {pattern.name}"


PATTERNS = (
    "    allow_fields: [number, short_description, description, priority]\n"
    "    patterns:\n"
    "      - name: words\n"
    "        regex: '(\\w+\\s?)+$'\n"
    "      - name: either\n"
    "        regex: '(a|aa)+$'\n"
    "      - name: email\n"
    "        regex: '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}'\n"
)


def test_check_locates_each_bad_pattern_and_warns_about_a_quadratic_one(config_tree: Path) -> None:
    acme = config_tree / "mappings" / "suppliers" / "acme.yaml"
    old = "    allow_fields: [number, short_description, description, priority]\n"
    acme.write_text(acme.read_text().replace(old, PATTERNS, 1))
    with pytest.raises(ConfigError) as caught:
        load_config(Path("config/connector.yaml"))
    assert [str(problem) for problem in caught.value.problems] == [
        f"mappings/suppliers/acme.yaml:36:16: outbound.redaction.patterns[0].regex: {NESTED}",
        f"mappings/suppliers/acme.yaml:38:16: outbound.redaction.patterns[1].regex: {EXPONENTIAL}",
        f"mappings/suppliers/acme.yaml:40:16: warning: outbound.redaction.patterns[2].regex: {LEADING}",
    ]


def test_a_pattern_the_engine_cannot_compile_is_an_error(config_tree: Path) -> None:
    acme = config_tree / "mappings" / "suppliers" / "acme.yaml"
    old = "    allow_fields: [number, short_description, description, priority]\n"
    acme.write_text(acme.read_text().replace(old, old + "    patterns: [{name: x, regex: 'a(b'}]\n", 1))
    with pytest.raises(ConfigError) as caught:
        load_config(Path("config/connector.yaml"))
    assert [str(problem) for problem in caught.value.problems] == [
        "mappings/suppliers/acme.yaml:34:33: outbound.redaction.patterns[0].regex: "
        "invalid regular expression: missing ) at position 3"
    ]
