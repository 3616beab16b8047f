"""The staff side, from real XMPP clients on Prosody and ejabberd: the back-channel on
queue JIDs (and `!all` across the group), shift hand-over notes, the guest JID's
directed presence, what `!c` shows the operator, and who is told that a chat was taken."""

from __future__ import annotations

import pytest
from slixmpp import JID

from component.config import LimitsConfig
from component.directory import CannedChange, Directory, Scope
from tests.conftest import Desk, wait_for
from tests.operator_client import OperatorClient

ASK = "ask@desk.localhost"
OTHER = "other@desk.localhost"


async def _offer(op: OperatorClient, question: str) -> str:
    """Wait for the offer of `question`; returns the guest JID."""
    while True:
        offer = await op.next_message()
        if question in offer["body"]:
            return str(offer["from"].bare)


async def test_back_channel_reaches_the_queues_other_operators_online(desk: Desk) -> None:
    ana = await desk.add_operator(("ask",), name="Ana")
    ben = await desk.add_operator(("ask",), name="Ben")
    cat = await desk.add_operator(("other",), name="Cat")
    # A patron in a chat with Ana must never see the staff's lines.
    patron = await desk.patron()
    await patron.say("Where are the study rooms?")
    guest = await _offer(ana, "study rooms")
    ana.send_message(guest, "Let me check.")
    await patron.next("message", lambda f: f["text"] == "Let me check.")
    assert "You took this chat" in (await ana.next_message(guest))["body"]

    ben.set_presence("away")  # away still counts as online for colleagues
    await wait_for(lambda: desk.service.presence_of(ben.bare_jid).value == "away", what="away")
    ana.send_message(ASK, "Can someone cover the desk at 3?")
    line = await ben.next_message(ASK)
    assert line["body"] == "Ana: Can someone cover the desk at 3?"
    ben.send_message(ASK, "I can.")
    reply = await ana.next_message(ASK)
    assert reply["body"] == "Ben: I can."
    # The sender gets no echo, and another queue's operator nothing.
    assert (await ana.expect_next_from(ASK))["body"].startswith("ask:")
    assert (await cat.expect_next_from(OTHER))["body"].startswith("other:")

    # `!all` reaches every queue of the group, from a queue JID the receiver belongs to.
    ana.send_message(ASK, "!all Fire drill at 4.")
    assert (await cat.next_message(OTHER))["body"] == "Ana [all]: Fire drill at 4."
    assert (await ben.next_message(ASK))["body"] == "Ana [all]: Fire drill at 4."
    assert "Write the line" in (await ana.expect_next_from(ASK, "!all"))["body"]

    # Nobody else online: the sender is told.
    await ben.disconnect()
    await wait_for(lambda: not desk.service.presence_of(ben.bare_jid).online, what="Ben gone")
    alone = await ana.expect_next_from(ASK, "Anyone there?")
    assert "Nobody else is online in the ask queue" in alone["body"]

    # Not in the transcript, not in the patron's view.
    live = desk.service.live_by_guest(JID(guest).user)
    assert live is not None
    events = await desk.service.history(live.id, 0)
    staff_words = ("cover the desk", "I can.", "Fire drill", "Anyone there")
    assert not [e for e in events if any(w in e.text for w in staff_words)]
    stored = await desk.refdesk.store.chats.events_after(live.id, 0)
    assert not [e for e in stored if any(w in e.text for w in staff_words)]
    assert not [f for f in patron.frames if any(w in str(f) for w in staff_words)]


@pytest.mark.desk_config(limits=LimitsConfig(messages_per_second=0.01, message_burst=3))
async def test_back_channel_refuses_floods_and_oversized_lines(desk: Desk) -> None:
    ana = await desk.add_operator(("ask",), name="Ana")
    ben = await desk.add_operator(("ask",), name="Ben")
    max_chars = desk.refdesk.config.chat.max_message_chars
    ana.send_message(ASK, "x" * (max_chars + 1))
    error = await ana.next_error(ASK)
    assert error["error"]["condition"] == "not-acceptable"
    ana.send_message(ASK, " \n\t ")
    assert (await ana.next_error(ASK))["error"]["condition"] == "not-acceptable"
    # Three lines at once pass; the fourth within a hundred seconds does not.
    for n in range(3):
        ana.send_message(ASK, f"line {n}")
    for n in range(3):
        assert (await ben.next_message(ASK))["body"] == f"Ana: line {n}"
    ana.send_message(ASK, "line 3")
    refused = await ana.next_error(ASK)
    assert refused["error"]["condition"] == "resource-constraint"
    assert "not sent" in refused["error"]["text"]
    # Ben got nothing more, and the queue still answers both.
    assert (await ben.expect_next_from(ASK))["body"].startswith("ask:")
    assert (await ana.expect_next_from(ASK))["body"].startswith("ask:")
    # Another operator's lines are not held back by Ana's flood.
    ben.send_message(ASK, "Slow down, Ana.")
    assert (await ana.next_message(ASK))["body"] == "Ben: Slow down, Ana."


async def test_handover_note_goes_to_the_next_operator_online(desk: Desk) -> None:
    ana = await desk.add_operator(("ask",), name="Ana")
    empty = await ana.expect_next_from(ASK, "!handover")
    assert "no hand-over note" in empty["body"]
    kept = await ana.expect_next_from(ASK, "!handover The printer on floor 2 is jammed.")
    assert "Hand-over note kept" in kept["body"]
    shown = await ana.expect_next_from(ASK, "!handover")
    assert "from Ana" in shown["body"] and "not given to anyone yet" in shown["body"]
    assert "The printer on floor 2 is jammed." in shown["body"]
    # The author coming back does not use it up.
    await ana.disconnect()
    await wait_for(lambda: not desk.service.presence_of(ana.bare_jid).online, what="Ana gone")
    await ana.connect()
    await wait_for(lambda: desk.service.presence_of(ana.bare_jid).online, what="Ana back")
    # Leaving, she was the last one available: the server kept that line for her.
    assert "last one available" in (await ana.next_message(ASK))["body"]
    assert "not given to anyone yet" in (await ana.expect_next_from(ASK, "!handover"))["body"]

    ben = await desk.add_operator(("ask",), name="Ben")
    note = await ben.next_message(ASK)
    assert "Hand-over note for Ask us (ask) from Ana" in note["body"]
    assert "The printer on floor 2 is jammed." in note["body"]
    # Given once: Cat, coming online after Ben, does not get it; `!handover` says who did.
    cat = await desk.add_operator(("ask",), name="Cat")
    assert (await cat.expect_next_from(ASK))["body"].startswith("ask:")
    assert "given to Ben" in (await cat.expect_next_from(ASK, "!handover"))["body"]
    # Persisted: it is in the store, and it can be deleted.
    queue = await desk.store_queue("ask")
    stored = await desk.refdesk.store.handover.note(queue.id)
    assert stored is not None and stored.delivered_to == ben.bare_jid
    assert "deleted" in (await cat.expect_next_from(ASK, "!handover clear"))["body"]
    assert "no hand-over note" in (await cat.expect_next_from(ASK, "!handover"))["body"]
    too_long = "!handover " + "y" * (desk.refdesk.config.chat.max_message_chars + 1)
    cat.send_message(ASK, too_long)
    assert (await cat.next_error(ASK))["error"]["condition"] == "not-acceptable"


async def test_guest_presence_follows_the_patron_and_the_chat(desk: Desk) -> None:
    ana = await desk.add_operator(("ask",), name="Ana")
    ben = await desk.add_operator(("ask",), name="Ben")
    patron = await desk.patron()
    await patron.say("Is the library open on Sunday?")
    guest = await _offer(ana, "Sunday")
    await _offer(ben, "Sunday")
    for op in (ana, ben):
        shown = await op.next_presence(guest, ptype="available")
        assert shown["from"].bare == guest
    # Ana takes it by replying: she is told, Ben is told who took it and the guest
    # leaves his view.
    ana.send_message(guest, "Yes, from noon.")
    assert "You took this chat" in (await ana.next_message(guest))["body"]
    # Not said again to the one who took it: her client shows the patron online since
    # the offer (anything sent with the take precedes that line on her stream).
    assert [p["type"] for p in ana.presences if p["from"].bare == guest] == ["available"]
    assert (await ben.next_message(guest))["body"] == "Ana took this chat."
    await ben.next_presence(guest, ptype="unavailable")
    # The patron's connection drops and comes back.
    await patron.drop()
    await ana.next_presence(guest, ptype="unavailable")
    await patron.connect()
    await ana.next_presence(guest, ptype="available")
    # Ana's client reconnects (within the grace period): it is told again.
    await ana.disconnect()
    await wait_for(lambda: not desk.service.presence_of(ana.bare_jid).online, what="Ana gone")
    await ana.connect()
    await ana.next_presence(guest, ptype="available")
    shown_to_ben = [p for p in ben.presences if p["from"].bare == guest]
    assert [p["type"] for p in shown_to_ben] == ["available", "unavailable"]
    # The chat ends: unavailable.
    ana.send_message(guest, "!end")
    assert (await ana.next_message(guest))["body"] == "Chat ended."
    await ana.next_presence(guest, ptype="unavailable")


@pytest.mark.desk_config(limits=LimitsConfig(messages_per_second=0.01, message_burst=3))
async def test_commands_that_write_or_send_are_limited_per_operator(desk: Desk) -> None:
    """One operator account flooding `!note` (a store write each) or `!handover` (a write,
    and a message to the next operator) is refused past the back-channel's rate, with
    `wait/resource-constraint` and a line saying so; nothing past the limit is written;
    reading commands and other operators are not held back."""
    ana = await desk.add_operator(("ask",), name="Ana")
    ben = await desk.add_operator(("ask",), name="Ben")
    patron = await desk.patron()
    await patron.say("Flood test")
    guest = await _offer(ana, "Flood test")
    await _offer(ben, "Flood test")
    ana.send_message(guest, "!accept")
    assert "You have this chat" in (await ana.next_message(guest))["body"]
    assert (await ben.next_message(guest))["body"] == "Ana took this chat."
    for n in range(3):
        ana.send_message(guest, f"!note note {n}")
        assert "Note added" in (await ana.next_message(guest))["body"]
    ana.send_message(guest, "!note note 3")
    refused = await ana.next_error(guest)
    assert refused["error"]["condition"] == "resource-constraint"
    assert "Too many commands" in refused["error"]["text"]
    ana.send_message(ASK, "!handover The printer is jammed.")
    assert (await ana.next_error(ASK))["error"]["condition"] == "resource-constraint"
    # Nothing past the limit was written.
    live = desk.service.open_chats()[0]
    events = await desk.refdesk.store.chats.events_after(live.id, 0)
    notes = [e.text for e in events if "note " in e.text]
    assert len(notes) == 3 and not [t for t in notes if "note 3" in t], notes
    queue = await desk.store_queue("ask")
    assert await desk.refdesk.store.handover.note(queue.id) is None
    # Reading commands still answer; Ben's commands are his own.
    assert (await ana.expect_next_from(ASK, "!who"))["body"]
    await ben.expect_next_from(ASK, "!handover Ben's note")
    assert await desk.refdesk.store.handover.note(queue.id) is not None


async def test_transferring_an_offered_chat_to_a_queue_takes_the_guest_from_every_view(
    desk: Desk,
) -> None:
    """Ana, offered the chat but not holding it, sends it to another queue: she and Ben
    (offered too) are told the guest is unavailable, as when it is taken or ends, so
    neither client keeps showing the patron online; Cat, in the other queue, gets it."""
    ana = await desk.add_operator(("ask",), name="Ana")
    ben = await desk.add_operator(("ask",), name="Ben")
    cat = await desk.add_operator(("other",), name="Cat")
    patron = await desk.patron()
    await patron.say("Can someone in archives help?")
    guest = await _offer(ana, "archives")
    await _offer(ben, "archives")
    for op in (ana, ben):
        await op.next_presence(guest, ptype="available")
    ana.send_message(guest, "!transfer other")
    assert (await ana.next_message(guest))["body"] == "Transferred to the other queue."
    assert (await ben.next_message(guest))["body"].startswith("Offer withdrawn.")
    await ben.next_presence(guest, ptype="unavailable")
    await ana.next_presence(guest, ptype="unavailable")
    assert guest == await _offer(cat, "archives")
    await cat.next_presence(guest, ptype="available")


async def test_transferring_an_offered_chat_to_a_colleague_withdraws_the_other_offers(
    desk: Desk,
) -> None:
    """Ana, offered the chat with Ben, hands it to Cat by name: it is Cat's offer alone.
    Ana and Ben are told the guest is unavailable (their offers are withdrawn), so a
    reply from Ben no longer takes a chat that was sent to Cat."""
    ana = await desk.add_operator(("ask",), name="Ana")
    ben = await desk.add_operator(("ask",), name="Ben")
    cat = await desk.add_operator(("other",), name="Cat")
    patron = await desk.patron()
    await patron.say("A question for Cat")
    guest = await _offer(ana, "for Cat")
    await _offer(ben, "for Cat")
    for op in (ana, ben):
        await op.next_presence(guest, ptype="available")
    ana.send_message(guest, "!transfer Cat")
    assert guest == await _offer(cat, "for Cat")
    for op in (ana, ben):
        await op.next_presence(guest, ptype="unavailable")
    live = desk.service.open_chats()[0]
    assert live.offered_to == {cat.bare_jid}


async def test_canned_is_answered_with_the_text_sent_and_can_be_seen_first(desk: Desk) -> None:
    ana = await desk.add_operator(("ask",), name="Ana")
    patron = await desk.patron()
    await patron.say("Can you find this article for me?")
    guest = await _offer(ana, "article")
    ana.send_message(guest, "!accept")
    assert "You have this chat" in (await ana.next_message(guest))["body"]

    ana.send_message(guest, "!c? closing-time")
    shown = (await ana.next_message(guest))["body"]
    assert "not sent" in shown and "next business day" in shown
    ana.send_message(guest, "!c member")
    sent = (await ana.next_message(guest))["body"]
    assert sent.startswith("Sent: ") and "member of the community" in sent
    line = await patron.next("message", lambda f: f["from"] == "operator")
    assert line["text"] == sent.removeprefix("Sent: ")
    # `!c?` sent nothing to the patron.
    assert not [f for f in patron.frames if "next business day" in str(f)]
    ana.send_message(guest, "!c? nope")
    assert "No canned message called 'nope'" in (await ana.next_message(guest))["body"]
    ana.send_message(guest, "!c")
    names = (await ana.next_message(guest))["body"]
    assert "closing-time" in names and "member" in names and "!c? <name>" in names

    # The defaults are editable per group: a group's own text wins over the default.
    group = await desk.refdesk.store.groups.by_name("library")
    assert group is not None
    directory = Directory(desk.refdesk.store, desk.clock, "desk.localhost")
    await directory.save_canned(
        Scope(group_id=group.id),
        CannedChange("closing-time", "We close at 8; we will email you tomorrow."),
    )
    ana.send_message(guest, "!c? closing-time")
    assert "We close at 8" in (await ana.next_message(guest))["body"]


async def test_a_patron_flapping_the_connection_does_not_flood_the_operator(desk: Desk) -> None:
    """Every reconnect of the widget used to send the operator an unavailable and an
    available presence at once: a script reconnecting in a loop floods the operator's
    client (and the component's stream) with presence. Changes are now spaced; here the
    spacing is longer than the test, so after the first change nothing more is sent."""
    desk.service.lifecycle.presence_spacing = 3600.0
    ana = await desk.add_operator(("ask",), name="Ana")
    patron = await desk.patron()
    await patron.say("Is the library open on Sunday?")
    guest = await _offer(ana, "Sunday")
    ana.send_message(guest, "Yes, from noon.")
    assert "You took this chat" in (await ana.next_message(guest))["body"]
    await ana.next_presence(guest, ptype="available")
    before = len([p for p in ana.presences if p["from"].bare == guest])
    for _ in range(30):
        await patron.drop()
        await patron.connect()
    # A line sent after the flapping arrives after any presence sent during it.
    await patron.say("Thanks!")
    assert (await ana.next_message(guest))["body"].endswith("Thanks!")
    shown = [p["type"] for p in ana.presences if p["from"].bare == guest][before:]
    assert shown == ["unavailable"], shown
    # The chat goes on, and its end is still shown at once.
    ana.send_message(guest, "!end")
    assert (await ana.next_message(guest))["body"] == "Chat ended."
    await ana.next_presence(guest, ptype="unavailable")
