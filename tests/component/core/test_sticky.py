"""Sticky pickup's pure rules: what a privacy mode lets refdesk remember of a patron's
address, which marks a new patron matches, and what the offer says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from component.core.sticky import StickyMark, claims, matches, offer_note, remembered_key

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _mark(key: str, jid: str, chat: int, age: float, left: float = 3600) -> StickyMark:
    return StickyMark(
        key,
        jid,
        chat,
        "ended with !ban",
        NOW - timedelta(seconds=age),
        NOW + timedelta(seconds=left),
    )


@pytest.mark.parametrize(
    ("address", "privacy", "key"),
    [
        ("203.0.113.7", "full", "203.0.113.7"),
        ("::ffff:203.0.113.7", "full", "203.0.113.7"),
        ("203.0.113.7", "network", "203.0.113.0/24"),
        ("2001:db8:1:2::9", "network", "2001:db8:1::/48"),
        ("203.0.113.0/24", "network", "203.0.113.0/24"),  # a stored origin after a restart
        ("203.0.113.7", "none", None),
        ("2001:db8::1", "none", None),
        (None, "full", None),
        ("not an address", "full", None),
        ("<script>", "network", None),
    ],
)
def test_only_what_the_privacy_mode_keeps_is_remembered(
    address: str | None, privacy: str, key: str | None
) -> None:
    assert remembered_key(address, privacy) == key


def test_matching_by_address_and_network() -> None:
    assert matches("203.0.113.7", "203.0.113.7")
    assert matches("203.0.113.7", "::ffff:203.0.113.7")
    assert not matches("203.0.113.7", "203.0.113.8")
    assert matches("203.0.113.0/24", "203.0.113.200")
    assert not matches("203.0.113.0/24", "203.0.114.1")
    assert not matches("203.0.113.0/24", "2001:db8::1")
    assert not matches("203.0.113.7", None)
    assert not matches("203.0.113.7", "junk")


def test_claims_newest_first_one_per_operator_unexpired_only() -> None:
    marks = [
        _mark("203.0.113.0/24", "ana@x", 1, age=300),
        _mark("203.0.113.7", "ana@x", 2, age=100),
        _mark("203.0.113.7", "ben@x", 3, age=200),
        _mark("203.0.113.7", "cy@x", 4, age=50, left=-1),  # expired
        _mark("198.51.100.1", "dee@x", 5, age=10),  # someone else
    ]
    found = claims(marks, "203.0.113.7", NOW)
    assert [(m.operator_jid, m.chat_id) for m in found] == [("ana@x", 2), ("ben@x", 3)]
    assert claims(marks, None, NOW) == []


def test_the_offer_says_why() -> None:
    mark = _mark("203.0.113.7", "ana@x", 12, age=1)
    assert offer_note(mark) == "returning patron: your chat #12 ended with !ban"
    note = offer_note(mark, ["threat", "incident"])
    assert note == "returning patron: your chat #12 ended with !ban (tags: incident, threat)"
