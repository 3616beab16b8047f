"""Offers carry the chat's history; a long one must still fit the stanza budget
(`component.xmpp_bodies.offer_bodies` is pure: events in, message bodies out)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from component.core.events import ChatOffered
from component.core.models import ChatEvent, EventKind, Sender
from component.core.text import xml_text_bytes
from component.xmpp_bodies import offer_bodies, offer_text

BUDGET = 56 * 1024
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _offer(texts: list[tuple[Sender, str]]) -> ChatOffered:
    history = tuple(
        ChatEvent(
            7, n, EventKind.MESSAGE, sender, "Ana" if sender is Sender.OPERATOR else "", t, NOW
        )
        for n, (sender, t) in enumerate(texts, 1)
    )
    return ChatOffered(7, "guest-x", "ask", "Ask us", ("op@localhost",), history, "")


def test_a_short_history_is_one_body() -> None:
    event = _offer([(Sender.PATRON, "Where are the maps?")])
    assert offer_bodies(event, BUDGET) == [offer_text(event)]


def test_the_quote_attack_is_cut_and_summarised() -> None:
    event = _offer([(Sender.PATRON, f"{i:02d} " + '"' * 3990) for i in range(30)])
    assert xml_text_bytes(offer_text(event)) > 512 * 1024  # what used to be sent
    bodies = offer_bodies(event, BUDGET)
    assert 1 < len(bodies) <= 3
    assert all(xml_text_bytes(b) <= BUDGET for b in bodies)
    text = "\n".join(bodies)
    assert bodies[0].startswith("New chat in Ask us (ask).")
    assert "Long history:" in bodies[0] and "lines not shown" in bodies[0]
    assert "Patron: 00 " in text and "Patron: 29 " in text  # the question and the newest
    assert "earlier lines not shown" in text


def test_a_long_history_that_fits_in_parts_loses_nothing() -> None:
    lines = [(Sender.PATRON, f"line {i} " + "word " * 400) for i in range(40)]
    bodies = offer_bodies(_offer(lines), BUDGET)
    assert len(bodies) > 1
    text = "\n".join(bodies)
    assert all(f"line {i} " in text for i in range(40))
    assert "not shown" not in text and "history in" in bodies[0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([Sender.PATRON, Sender.OPERATOR, Sender.SYSTEM]),
            st.text(alphabet="\"&<>'é😀ab \n", min_size=1, max_size=5000),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(min_value=16 * 1024 - 8 * 1024, max_value=256 * 1024),
)
def test_every_body_fits_whatever_the_history(texts: list[tuple[Sender, str]], budget: int) -> None:
    bodies = offer_bodies(_offer(texts), budget)
    assert 1 <= len(bodies) <= 3
    assert all(xml_text_bytes(b) <= budget for b in bodies)
