"""The vocabulary the mirroring decisions share: which texts are ours, and supplier text made inert."""

from __future__ import annotations

import pytest

from connector.core.markers import marker, own_ref, stamp_line
from connector.mirror.view import journal_safe

REF = marker("o", "incident", "entry")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"alice wrote:\nRestart done?\n\n{stamp_line(REF)}", REF),
        (f"alice wrote:\r\nRestart done?\r\n\r\n{stamp_line(REF)}\r\n", REF),
        (f"one line\n{stamp_line(REF)}   \n\n", REF),
        # Jira's "reply with quote": the quote first, the reply below it.
        (f"{{quote}}alice wrote:\nRestart done?\n\n{stamp_line(REF)}{{quote}}\nYes, at 10:02", None),
        # The reply above the quote, the quote closing on the marker's line or on its own.
        (f"Yes, at 10:02\n\n{{quote}}alice wrote:\nRestart done?\n{stamp_line(REF)}{{quote}}", None),
        (f"Yes, at 10:02\n{{quote}}\nalice wrote:\n{stamp_line(REF)}\n{{quote}}", None),
        # An e-mail style quote, and the marker inside a sentence.
        (f"Thanks\n> alice wrote:\n> {stamp_line(REF)}", None),
        (f"see {stamp_line(REF)} above", None),
        ("no marker at all", None),
        ("", None),
    ],
)
def test_a_text_is_ours_only_when_its_own_last_line_is_our_stamp(text: str, expected: str | None) -> None:
    assert own_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[code]<img src=x onerror=alert(1)>[/code]", "(code)<img src=x onerror=alert(1)>(/code)"),
        ("[CODE]<b>x</b>[/Code]", "(CODE)<b>x</b>(/Code)"),
        ("[ code ]<script>[ / code ]", "( code )<script>( / code )"),
        ("a [codex] and [encode] stay", "a [codex] and [encode] stay"),
        ("plain text, [ACME-1] and {code}java{code}", "plain text, [ACME-1] and {code}java{code}"),
        ("[co\x00de]nul\x1b[31mred\x1b[0m \u202egnp.exe", "(code)nulred gnp.exe"),
    ],
)
def test_code_tags_in_supplier_text_are_made_inert_for_the_journal(text: str, expected: str) -> None:
    assert journal_safe(text) == expected
