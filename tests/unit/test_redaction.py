"""Outbound scrubbing: the shipped patterns (table-driven), sanitising, clipping first, the time budget."""

from __future__ import annotations

import pytest

from connector.config.supplier_file import RedactionPattern
from connector.mirror.redaction import MARGIN, TRUNCATED, WITHHELD, Scrubber, sanitize, scrub
from tests.factories import mapping

ACME = mapping("acme").outbound.redaction.patterns
GLOBEX = mapping("globex").outbound.redaction.patterns
INITECH = mapping("initech").outbound.redaction.patterns
SYS_ID_URL = "https://sn.example/nav_to.do?uri=incident.do?sys_id=9d385017c611228701d22104cc95c371"

E_MAIL = "[e-mail removed]"
PHONE = "[phone removed]"
CARD = "[card number removed]"
HOST = "[internal host]"

# text -> what ACME sees of it (every shipped pattern at once: e-mail, phone, card number, host).
ACME_CASES: dict[str, tuple[str, str]] = {
    "plain-address": ("mail bob@example.com now", f"mail {E_MAIL} now"),
    "upper-case-address": ("JOHN@EXAMPLE.COM wrote", f"{E_MAIL} wrote"),
    "upper-case-host": ("host DB01.CORP.EXAMPLE.COM is down", f"host {HOST} is down"),
    "mixed-case-subdomain-host": ("see App-7.Eu.Corp.Example.Com.", f"see {HOST}."),
    "url-encoded-at": ("mailto:john%40example.com", f"mailto:{E_MAIL}"),
    "html-entity-at": ("john&#64;example.com", E_MAIL),
    "spelled-at-and-dot": ("john [at] example [dot] com", E_MAIL),
    "html-markup-split": ("john@<b>example</b>.com", E_MAIL),
    "jira-bold-split-domain": ("*john@example*.com", f"*{E_MAIL}"),
    "jira-bold-split-at": ("john*@*example.com", E_MAIL),
    "jira-colour-split": ("{color:red}john{color}@example.com", f"{{color:red}}{E_MAIL}"),
    "long-local-part-whole": ("x" * 90 + "@example.com", E_MAIL),
    "plus-addressing-and-country-domain": ("ann.lee+ops@mail.example.co.uk", E_MAIL),
    "phone-international": ("call +44 20 7946 0958 today", f"call {PHONE} today"),
    "phone-national-with-brackets": ("(020) 7946 0958", f"({PHONE}"),
    "card-dotted": ("card 4111.1111.1111.1111 declined", f"card {CARD} declined"),
    "card-spaced": ("4111 1111 1111 1111", CARD),
    "card-dashed": ("4111-1111-1111-1111", CARD),
    "card-run": ("4111111111111111", CARD),
    "card-amex": ("3782 822463 10005", CARD),
    "sys-id-url-untouched": (SYS_ID_URL, SYS_ID_URL),
    "iso-date-untouched": ("since 2026-11-22 09:30:00 UTC", "since 2026-11-22 09:30:00 UTC"),
    "incident-number-untouched": ("see INC0010001", "see INC0010001"),
    "ip-addresses-untouched": ("192.168.100.200 192.168.100.201", "192.168.100.200 192.168.100.201"),
    "version-untouched": ("version 10.2.33.4", "version 10.2.33.4"),
    "bare-at-untouched": ("user@ and a@b", "user@ and a@b"),
    "stamp-line-untouched": ("[mim-connector ref:o1234567890]", "[mim-connector ref:o1234567890]"),
}


@pytest.mark.parametrize("name", sorted(ACME_CASES))
def test_the_shipped_patterns_catch_what_they_must_and_leave_the_rest(name: str) -> None:
    text, expected = ACME_CASES[name]
    assert scrub(text, ACME, 1000).text == expected


@pytest.mark.parametrize(
    ("patterns", "text", "expected"),
    [
        (GLOBEX, "JANE.ROE%40CORP.EXAMPLE.COM, +49 30 1234 5678", f"{E_MAIL}, {PHONE}"),
        (INITECH, "4111.1111.1111.1111 from <i>ann</i>@example.com", f"{CARD} from <i>{E_MAIL}"),
    ],
    ids=["globex", "initech"],
)
def test_every_shipped_mapping_redacts_addresses(
    patterns: tuple[RedactionPattern, ...], text: str, expected: str
) -> None:
    assert scrub(text, patterns, 1000).text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nul\x00byte", "nulbyte"),
        ("\x1b[31mred\x1b[0m text", "red text"),
        ("title\x1b]0;pwned\x07 set", "title set"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("isolate\u2066d\u2069", "isolated"),
        ("zero\u200bwidth", "zerowidth"),
        ("tags\U000e0041\U000e0042", "tags"),
        ("bell\x07 and c1\x9b", "bell and c1"),
        ("keep\ttabs\nand\r\nnewlines", "keep\ttabs\nand\r\nnewlines"),
        ("line\u2028separator", "line\nseparator"),
        ("accents été, 日本語, emoji 🙂", "accents été, 日本語, emoji 🙂"),
    ],
)
def test_control_and_invisible_characters_are_dropped_newlines_and_tabs_kept(
    text: str, expected: str
) -> None:
    assert sanitize(text) == expected


def test_an_invisible_character_cannot_split_a_secret_past_the_patterns() -> None:
    assert scrub("bob\u200b@exa\x00mple.com", ACME, 1000).text == E_MAIL


def test_a_multi_megabyte_text_is_clipped_before_the_patterns_run() -> None:
    text = "Log follows.\n" + "QUJD" * 1_000_000  # a 4 MB pasted blob, no address in it
    out = scrub(text, ACME, 32_000)
    assert len(out.text) <= 32_000 and out.text.endswith(TRUNCATED) and not out.withheld
    assert out.text.startswith("Log follows.\nQUJD")


def test_a_secret_cut_by_the_first_clip_never_leaks_in_part() -> None:
    limit = 100
    secret = "jane.roe@corp.example.com"
    # Put the address across every position of the first cut (limit + MARGIN characters in).
    for shift in range(len(secret) + 1):
        text = "a " * ((limit + MARGIN - shift) // 2) + " " * ((limit + MARGIN - shift) % 2)
        text += secret + " tail" * 1000
        out = scrub(text, ACME, limit).text
        assert len(out) <= limit
        assert "jane" not in out and "roe@" not in out and "corp" not in out, shift


def test_a_secret_cut_by_the_limit_is_redacted_whole_before_the_cut() -> None:
    text = "x " * 40 + "call +44 20 7946 0958 now"
    out = scrub(text, ACME, 95).text
    assert "7946" not in out and "+44" not in out and len(out) <= 95


CATASTROPHIC = RedactionPattern(name="bad", regex=r"(x+x+)+y", replace="[bad]")


def test_a_pattern_that_runs_out_of_time_withholds_the_text_and_says_which_once() -> None:
    text = "token " + "x" * 4_000
    first = scrub(text, [CATASTROPHIC], 32_000)
    assert (first.text, first.withheld, first.overrun) == (WITHHELD, True, ("bad",))
    again = scrub(text, [CATASTROPHIC], 32_000)
    assert (again.text, again.withheld, again.overrun) == (WITHHELD, True, ()), "remembered: no second wait"
    assert scrub("token xxy", [CATASTROPHIC], 32_000).text == "token [bad]", "other texts still go"


def test_the_scrubber_of_a_plan_reports_each_overrun_for_the_operator() -> None:
    scrubber = Scrubber([CATASTROPHIC])
    assert scrubber.text("x" * 3_000 + "!", 32_000, "description") == WITHHELD
    assert scrubber.text("x" * 3_000 + "!", 32_000, "description") == WITHHELD
    (alert,) = scrubber.alerts
    assert alert.startswith("description withheld: redaction pattern 'bad' did not finish within")
    assert "3,001 characters" in alert


def test_a_text_scrubbed_again_gives_what_its_patterns_and_limit_give_now() -> None:
    """Scrubbed texts are remembered: by the patterns' replacements and the limit as well as the text."""
    text = "Call 555-0100 or mail ops@example.com " * 3
    phone = RedactionPattern(name="phone", regex=r"\d{3}-\d{4}", replace="[phone]")
    masked = RedactionPattern(name="phone", regex=r"\d{3}-\d{4}", replace="[number removed]")
    first = scrub(text, [phone], 1_000).text
    assert first == scrub(text, [phone], 1_000).text and "[phone]" in first
    assert "[number removed]" in scrub(text, [masked], 1_000).text
    assert scrub(text, [phone], 30).text.endswith(TRUNCATED)
    assert "555-0100" in scrub(text, [], 1_000).text
