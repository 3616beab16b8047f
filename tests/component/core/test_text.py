"""Tests for component.core.text: the rules for typed text before it becomes a stanza."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from component.core.text import (
    TextRejected,
    clean_message,
    clean_title,
    find_xml_illegal,
    strip_xml_illegal,
)

LIMIT = 100

# One representative of every class of character XML 1.0 cannot carry.
C0_ILLEGAL = [chr(c) for c in range(0x20) if c not in (0x09, 0x0A, 0x0D)]
NONCHARACTERS = ["\ufffe", "\uffff"]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
ILLEGAL = C0_ILLEGAL + NONCHARACTERS + SURROGATES

LEGAL_SPECIALS = [
    "\t",
    "\n",
    "\r",
    " ",
    "\ud7ff",
    "\ue000",
    "\ufffd",
    "\U00010000",
    "\U0010ffff",
    "\U0001f600",  # emoji
    "\x7f",  # DEL: discouraged but legal in XML 1.0
    "\x85",  # C1 control NEL: legal in XML 1.0
    "\u2028",
]

# Every code point, including lone surrogates, weighted towards the interesting ones.
any_char = st.one_of(
    st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
    st.sampled_from(ILLEGAL + LEGAL_SPECIALS),
)
any_text = st.text(alphabet=any_char, max_size=60)


def is_xml_char(c: str) -> bool:
    """The XML 1.0 Char production, written independently of the module's regex."""
    cp = ord(c)
    return (
        cp in (0x9, 0xA, 0xD)
        or 0x20 <= cp <= 0xD7FF
        or 0xE000 <= cp <= 0xFFFD
        or 0x10000 <= cp <= 0x10FFFF
    )


def xml_roundtrip(text: str) -> str:
    element = ET.Element("body")
    element.text = text
    document = ET.tostring(element, encoding="unicode")
    parsed = ET.fromstring(document)
    return parsed.text or ""


# clean_message ---------------------------------------------------------------------------


def test_clean_message_returns_plain_text_unchanged() -> None:
    assert clean_message("Where are the maps?", LIMIT) == "Where are the maps?"


def test_clean_message_trims_surrounding_whitespace() -> None:
    assert clean_message("  \t\n hello there \n\t ", LIMIT) == "hello there"


def test_clean_message_keeps_inner_whitespace() -> None:
    assert clean_message("a  b\t\tc\n\nd", LIMIT) == "a  b\t\tc\n\nd"


def test_clean_message_normalises_crlf_and_lone_cr() -> None:
    assert clean_message("one\r\ntwo\rthree\nfour", LIMIT) == "one\ntwo\nthree\nfour"


def test_clean_message_crlf_counts_as_one_character_for_the_limit() -> None:
    text = "a\r\n" * 4 + "a"  # 13 characters raw, 9 after normalisation
    assert clean_message(text, 9) == "a\na\na\na\na"


@pytest.mark.parametrize("text", ["", " ", "\t\n\r\n ", "\r\n", "\u3000\u00a0"])
def test_clean_message_refuses_empty_text(text: str) -> None:
    with pytest.raises(TextRejected) as info:
        clean_message(text, LIMIT)
    assert info.value.code == "empty_message"
    assert info.value.text == str(info.value)


def test_clean_message_accepts_exactly_the_limit() -> None:
    assert clean_message("x" * LIMIT, LIMIT) == "x" * LIMIT


def test_clean_message_refuses_one_over_the_limit() -> None:
    with pytest.raises(TextRejected) as info:
        clean_message("x" * (LIMIT + 1), LIMIT)
    assert info.value.code == "message_too_long"
    assert str(LIMIT) in info.value.text


def test_clean_message_limit_applies_after_trimming() -> None:
    padded = "   " + "x" * LIMIT + "   "
    assert clean_message(padded, LIMIT) == "x" * LIMIT


def test_clean_message_counts_code_points_not_bytes() -> None:
    emoji = "\U0001f600" * LIMIT
    assert clean_message(emoji, LIMIT) == emoji


@pytest.mark.parametrize("value", [None, 42, 4.2, b"bytes", ["a"], {"text": "a"}, True])
def test_clean_message_refuses_non_strings(value: object) -> None:
    with pytest.raises(TextRejected) as info:
        clean_message(value, LIMIT)
    assert info.value.code == "bad_text"


def test_text_rejected_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        clean_message(None, LIMIT)


@pytest.mark.parametrize("char", ILLEGAL, ids=[f"U+{ord(c):04X}" for c in ILLEGAL])
def test_clean_message_refuses_every_illegal_class(char: str) -> None:
    with pytest.raises(TextRejected) as info:
        clean_message(f"hello {char} world", LIMIT)
    assert info.value.code == "illegal_characters"
    assert f"U+{ord(char):04X}" in info.value.text


@pytest.mark.parametrize("char", ILLEGAL, ids=[f"U+{ord(c):04X}" for c in ILLEGAL])
def test_clean_message_refuses_illegal_char_even_in_trimmed_edges(char: str) -> None:
    # An illegal character must not slip through by sitting where trimming happens.
    with pytest.raises(TextRejected) as info:
        clean_message(f"{char}hello", LIMIT)
    assert info.value.code == "illegal_characters"


@pytest.mark.parametrize(
    "text",
    [
        "tab\there",
        "emoji \U0001f600\U0001f469\u200d\U0001f4bb",
        "max \U0010ffff",
        "private use \ue000",
        "replacement \ufffd",
        "last bmp before surrogates \ud7ff",
        "first astral \U00010000",
        "del \x7f and nel \x85 inside",
        "ünïcödé 日本語 العربية",
    ],
)
def test_clean_message_accepts_legal_characters(text: str) -> None:
    assert clean_message(text, LIMIT) == text


# find_xml_illegal / strip_xml_illegal ----------------------------------------------------


def test_find_xml_illegal_none_for_clean_text() -> None:
    assert find_xml_illegal("plain\ttext\r\nwith \U0010ffff and \ue000") is None


def test_find_xml_illegal_returns_the_first_offender() -> None:
    assert find_xml_illegal("ok \x01 then \ufffe") == "\x01"
    assert find_xml_illegal("ok \uffff then \x01") == "\uffff"
    assert find_xml_illegal("lone \udfff") == "\udfff"


def test_find_xml_illegal_empty_string() -> None:
    assert find_xml_illegal("") is None


@pytest.mark.parametrize("char", ILLEGAL, ids=[f"U+{ord(c):04X}" for c in ILLEGAL])
def test_find_and_strip_each_illegal_char(char: str) -> None:
    assert find_xml_illegal(char) == char
    assert strip_xml_illegal(f"a{char}b{char}") == "ab"


def test_strip_xml_illegal_keeps_legal_specials() -> None:
    text = "".join(LEGAL_SPECIALS)
    assert strip_xml_illegal(text) == text


def test_strip_xml_illegal_removes_a_mix() -> None:
    assert strip_xml_illegal("\x00he\x08llo\ufffe \ud800wor\uffffld\x1f") == "hello world"


def test_illegal_set_matches_the_xml_char_production_for_every_code_point() -> None:
    every = "".join(chr(c) for c in range(0x110000))
    expected = "".join(c for c in every if is_xml_char(c))
    assert strip_xml_illegal(every) == expected
    assert len(every) - len(expected) == 29 + 2048 + 2  # C0, surrogates, FFFE/FFFF


# Properties ------------------------------------------------------------------------------


@given(any_text)
@example("a\x00b\ufffe\ud800\U0010ffff")
@example("]]> & < > \" '")
def test_strip_output_survives_an_xml_roundtrip(text: str) -> None:
    stripped = strip_xml_illegal(text)
    assert find_xml_illegal(stripped) is None
    # XML parsers normalise line ends (XML 1.0 section 2.11): a raw CR comes back as LF.
    expected = stripped.replace("\r\n", "\n").replace("\r", "\n")
    assert xml_roundtrip(stripped) == expected


@given(st.text(alphabet=any_char.filter(lambda c: c != "\r"), max_size=60))
def test_strip_output_without_cr_roundtrips_exactly(text: str) -> None:
    stripped = strip_xml_illegal(text)
    assert xml_roundtrip(stripped) == stripped


@given(any_text)
def test_strip_only_removes_characters(text: str) -> None:
    stripped = strip_xml_illegal(text)
    assert stripped == "".join(c for c in text if is_xml_char(c))
    assert strip_xml_illegal(stripped) == stripped


@given(any_text)
@example("\x0b")
@example("  \U0010ffff  ")
def test_clean_message_rejects_or_returns_legal_text(text: str) -> None:
    try:
        cleaned = clean_message(text, 40)
    except TextRejected as exc:
        assert exc.code in {"illegal_characters", "empty_message", "message_too_long"}
        if exc.code == "illegal_characters":
            assert find_xml_illegal(text) is not None
        return
    assert find_xml_illegal(cleaned) is None
    assert "\r" not in cleaned
    assert cleaned == cleaned.strip()
    assert 0 < len(cleaned) <= 40
    assert find_xml_illegal(text) is None


# xml_text_bytes / clip_to_bytes / split_to_bytes ----------------------------------------
# The sizes are checked against what slixmpp really writes for a message body.


def _wire_bytes(text: str) -> int:
    """Bytes of `text` as the body of a slixmpp message, less the empty message's."""
    from slixmpp import Message

    def size(body: str) -> int:
        msg = Message()
        msg["body"] = body
        return len(str(msg).encode("utf-8"))

    return size("x" + text) - size("x")


XML_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
    max_size=300,
).map(strip_xml_illegal)


@given(XML_TEXT)
@example("\"&<>'")
@example("é€😀")
def test_xml_text_bytes_is_the_size_on_the_wire(text: str) -> None:
    from component.core.text import xml_text_bytes

    assert xml_text_bytes(text) == _wire_bytes(text)


def test_one_quote_weighs_six_bytes() -> None:
    from component.core.text import xml_text_bytes

    assert xml_text_bytes('"' * 4000) == 24000


@given(XML_TEXT, st.integers(min_value=0, max_value=400))
def test_clip_fits_and_keeps_a_prefix(text: str, limit: int) -> None:
    from component.core.text import clip_to_bytes, xml_text_bytes

    clipped = clip_to_bytes(text, limit)
    assert xml_text_bytes(clipped) <= limit
    if xml_text_bytes(text) <= limit:
        assert clipped == text
    elif clipped:
        assert clipped.endswith(" […]")
        assert text.startswith(clipped.removesuffix(" […]"))


@given(XML_TEXT, st.integers(min_value=8, max_value=200))
def test_split_parts_fit_and_give_back_the_text(text: str, limit: int) -> None:
    from component.core.text import split_to_bytes, xml_text_bytes

    parts = split_to_bytes(text, limit)
    assert all(xml_text_bytes(p) <= limit for p in parts)
    # Joined back, with or without the line breaks it was cut at, nothing is lost.
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    if xml_text_bytes(text) <= limit:
        assert parts == [text]


def test_split_refuses_a_budget_too_small_for_a_character() -> None:
    from component.core.text import split_to_bytes

    with pytest.raises(ValueError):
        split_to_bytes("abc", 3)


def test_clean_title() -> None:
    assert clean_title("  Ask a Librarian ") == "Ask a Librarian"
    assert clean_title("Zoë's Q&A (24/7)") == "Zoë's Q&A (24/7)"
    cases = [
        ("", "empty_title"),
        ("x" * 201, "title_too_long"),
        ("Ask\r\nX-Injected: yes", "illegal_characters"),
        ("Ask\u2028us", "illegal_characters"),
        ("Ask\x85us", "illegal_characters"),
        ("Ask\ufffe", "illegal_characters"),
        ("=?utf-8?q?Ask=0D=0AX-Injected:_yes?=", "encoded_word"),
    ]
    for bad, code in cases:
        with pytest.raises(TextRejected) as caught:
            clean_title(bad)
        assert caught.value.code == code
