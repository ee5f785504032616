"""Atlassian Document Format <-> stored text."""

from __future__ import annotations

import pytest

from connector.sandbox.jira.adf import adf_to_text, is_adf, text_to_adf


@pytest.mark.parametrize("text", ["one line", "first\nsecond", "para one\n\npara two\nwith break", ""])
def test_plain_text_survives_the_round_trip(text: str) -> None:
    document = text_to_adf(text)
    assert is_adf(document)
    assert adf_to_text(document) == text


def test_text_becomes_paragraphs_and_hard_breaks() -> None:
    assert text_to_adf("a\nb\n\nc") == {
        "type": "doc",
        "version": 1,
        "content": [
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "a"},
                    {"type": "hardBreak"},
                    {"type": "text", "text": "b"},
                ],
            },
            {"type": "paragraph", "content": [{"type": "text", "text": "c"}]},
        ],
    }


def test_rich_documents_become_wiki_markup() -> None:
    document = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Impact"}]},
            {
                "type": "paragraph",
                "content": [
                    {"type": "text", "text": "Bold", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": " and "},
                    {
                        "type": "text",
                        "text": "link",
                        "marks": [{"type": "link", "attrs": {"href": "https://x.example"}}],
                    },
                    {"type": "mention", "attrs": {"id": "5b10", "text": "@Jane"}},
                ],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "item"}]}],
                    }
                ],
            },
            {"type": "codeBlock", "content": [{"type": "text", "text": "x = 1"}]},
            {"type": "rule"},
        ],
    }
    assert (
        adf_to_text(document)
        == "h2. Impact\n\n*Bold* and [link|https://x.example]@Jane\n\n* item\n\n{code}\nx = 1\n{code}\n\n----"
    )


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        None,
        {"type": "doc"},
        {"type": "doc", "version": 2, "content": []},
        {"type": "doc", "version": 1, "content": ["x"]},
    ],
)
def test_what_is_not_a_document(value: object) -> None:
    assert not is_adf(value)
