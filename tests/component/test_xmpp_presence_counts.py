"""How many presence stanzas refdesk writes, counted in process (slixmpp's test transport,
as in `test_xmpp_stanzas`): per chat opened, and as operators come and go.

A queue JID's presence goes to the subscribers online whose clients show something else;
a guest JID's presence is not repeated to an operator who already has it. What operators'
clients must show stays right: each online subscriber is told every change of the
queue's state, and an operator coming online is told the state then.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from component.xmpp_presence import NS_DELAY
from tests.component.test_xmpp_stanzas import (
    ANN,
    QUEUE_JID,
    Wire,
    close_wire,
    open_wire,
)
from tests.conftest import COMPONENT_DOMAIN

BEN = "ben@example.org"
CAL = "cal@example.org"


@pytest.fixture
async def wire3(tmp_path: Path) -> AsyncIterator[Wire]:
    """The usual wire with two more subscribed operators of the queue, all offline."""
    w = await open_wire(tmp_path)
    try:
        store, now = w.store, w.clock.now()
        queue = w.service.directory.queue("ask")
        for jid, name in ((BEN, "Ben"), (CAL, "Cal")):
            op = await store.operators.upsert(jid, name, 3, now)
            await store.operators.assign(queue.id, op.id)
            await store.operators.set_subscription(queue.id, op.id, "granted")
        await w.service.reload_directory()
        await w.confirmed()
        yield w
    finally:
        await close_wire(w)


def queue_presences(stanzas: list[ET.Element]) -> list[tuple[str | None, str | None]]:
    """(to, status) of each presence from the queue JID, in order."""
    return [
        (s.get("to"), s.findtext("status"))
        for s in stanzas
        if s.tag == "presence" and s.get("from") == QUEUE_JID and s.get("type") is None
    ]


def guest_presences(stanzas: list[ET.Element]) -> list[tuple[str | None, str | None]]:
    """(to, type) of each presence from a guest JID, in order."""
    return [
        (s.get("to"), s.get("type"))
        for s in stanzas
        if s.tag == "presence" and (s.get("from") or "").startswith("guest-")
    ]


async def online(wire: Wire, jid: str, extra: str = "") -> list[ET.Element]:
    wire.feed(f"<presence from='{jid}/laptop' to='{QUEUE_JID}'>{extra}</presence>")
    return await wire.confirmed()


async def offline(wire: Wire, jid: str) -> list[ET.Element]:
    wire.feed(f"<presence from='{jid}/laptop' to='{QUEUE_JID}' type='unavailable'/>")
    return await wire.confirmed()


async def test_each_operator_coming_online_is_told_the_state_once(wire3: Wire) -> None:
    # Each log-in changes how many operators are available, which patrons see; the
    # queue's presence text is the same for everyone after the first: only the newcomer
    # is told (before: every subscriber, online or not, at every log-in: 9 here).
    sent = [queue_presences(await online(wire3, jid)) for jid in (ANN, BEN, CAL)]
    assert sent == [
        [(ANN, "Ask a librarian: available, 0 waiting")],
        [(BEN, "Ask a librarian: available, 0 waiting")],
        [(CAL, "Ask a librarian: available, 0 waiting")],
    ]


async def test_a_chat_opened_and_taken_tells_only_the_operators_online(wire3: Wire) -> None:
    for jid in (ANN, BEN):
        await online(wire3, jid)
    handle = await wire3.service.open_chat("ask", None)
    wire3.service.patron_connected(handle.chat_id)
    await wire3.service.post_patron_message(handle.chat_id, "m1", "Where are the atlases?")
    offered = await wire3.confirmed()
    guest = f"{handle.guest}@{COMPONENT_DOMAIN}"
    wire3.feed(
        f"<message from='{ANN}/laptop' to='{guest}' type='chat'><body>!accept</body></message>"
    )
    taken = await wire3.confirmed()

    # Cal is offline: their server would drop it, and their client asks when it connects.
    assert queue_presences(offered) == [
        (ANN, "Ask a librarian: available, 1 waiting"),
        (BEN, "Ask a librarian: available, 1 waiting"),
    ]
    assert queue_presences(taken) == [
        (ANN, "Ask a librarian: available, 0 waiting"),
        (BEN, "Ask a librarian: available, 0 waiting"),
    ]
    assert guest_presences(offered) == [(ANN, None), (BEN, None)]
    # Ann has seen the patron online since the offer: only Ben is told the guest left.
    assert guest_presences(taken) == [(BEN, "unavailable")]
    per_chat = len(queue_presences(offered + taken)) + len(guest_presences(offered + taken))
    assert per_chat == 7  # before: 4 + 4 to Cal, and the guest's presence to Ann again: 12


async def test_an_operator_offline_during_a_change_is_told_the_state_on_return(
    wire3: Wire,
) -> None:
    for jid in (ANN, BEN):
        await online(wire3, jid)
    await offline(wire3, BEN)
    handle = await wire3.service.open_chat("ask", None)
    await wire3.service.post_patron_message(handle.chat_id, "m1", "Hello?")
    assert queue_presences(await wire3.confirmed()) == [
        (ANN, "Ask a librarian: available, 1 waiting")
    ]
    # Back (a client whose server does not probe): told the state now.
    assert queue_presences(await online(wire3, BEN)) == [
        (BEN, "Ask a librarian: available, 1 waiting")
    ]


async def test_a_probe_is_always_answered_and_counts_as_told(wire3: Wire) -> None:
    # A client connecting: its server probes the queue JID first, then sends the
    # operator's presence; the probe's answer is all it needs.
    wire3.feed(f"<presence from='{ANN}/phone' to='{QUEUE_JID}' type='probe'/>")
    answer = queue_presences(await wire3.confirmed())
    assert answer == [(f"{ANN}/phone", "Ask a librarian: offline, 0 waiting")]
    # Ann's presence makes the queue available: told, as a change of state.
    assert queue_presences(await online(wire3, ANN)) == [
        (ANN, "Ask a librarian: available, 0 waiting")
    ]
    # A second device: its probe is answered, whatever was sent before.
    wire3.feed(f"<presence from='{ANN}/tablet' to='{QUEUE_JID}' type='probe'/>")
    assert queue_presences(await wire3.confirmed()) == [
        (f"{ANN}/tablet", "Ask a librarian: available, 0 waiting")
    ]
    # Ben connecting while the queue is available: the probe's answer is all he gets.
    wire3.feed(f"<presence from='{BEN}/phone' to='{QUEUE_JID}' type='probe'/>")
    assert len(queue_presences(await wire3.confirmed())) == 1
    assert queue_presences(await online(wire3, BEN)) == []


async def test_a_stamped_answer_to_the_start_up_probe_is_not_someone_coming_online(
    wire3: Wire,
) -> None:
    """After a restart the operators already online answer the session's probes with
    their kept presence, stamped (XEP-0203): a hand-over note is not theirs. One who
    logs in afterwards (no stamp) gets it."""
    stamp = f"<delay xmlns='{NS_DELAY}' from='example.org' stamp='2026-05-04T08:00:00Z'/>"
    await wire3.service.store.handover.set_note(
        wire3.service.directory.queue("ask").id, CAL, "Cal", "Printer 2 jammed.", wire3.clock.now()
    )
    await online(wire3, ANN, stamp)
    await online(wire3, BEN)
    note = await wire3.service.store.handover.note(wire3.service.directory.queue("ask").id)
    assert note is not None and note.delivered_to == BEN
