"""Routing with real operator clients on Prosody and ejabberd: ring-all, round-robin with
offer timeouts, max chats, away operators, rollover, service hours, end of shift, typing,
on-call escalation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.conftest import Desk, wait_for
from tests.mail_sink import MailSink
from tests.operator_client import OperatorClient

QUEUE = "ask@desk.localhost"
# An offer time-out that never falls due during a test, and no other timer of the
# service uses: the test fires it (`fire_now`).
OFFER_TIMEOUT = 4321.0


async def _ask(desk: Desk, text: str, queue: str = "ask"):  # type: ignore[no-untyped-def]
    patron = await desk.patron(queue)
    await patron.say(text)
    return patron


async def _offer_of(op: OperatorClient, text: str, timeout: float = 10):  # type: ignore[no-untyped-def]
    while True:
        msg = await op.next_message(timeout=timeout)
        if text in msg["body"]:
            return msg


async def test_round_robin_offers_one_at_a_time_and_moves_on(desk: Desk) -> None:
    # The offer time-out happens when the test says (`fire_now`): with a real 1 s one, the
    # offer moved on while the test was still checking that nobody else had it, or
    # before Ben had answered, on a loaded machine.
    await desk.set_queue("ask", routing="round-robin", offer_timeout=OFFER_TIMEOUT)
    ops = [await desk.add_operator(name=n) for n in ("Ana", "Ben", "Cy")]
    await _ask(desk, "Q1")
    # Exactly one operator gets it; nobody has had a chat, so the first by JID.
    first = await _offer_of(ops[0], "Q1")
    for other in ops[1:]:
        await other.expect_no_message(None, within=0.3)
    # Nobody answers: at the timeout the offer moves to the next operator.
    assert desk.clock.fire_now(OFFER_TIMEOUT) == 1
    withdrawn = await ops[0].next_message(first["from"].bare, timeout=5)
    assert "withdrawn" in withdrawn["body"].lower()
    second = await _offer_of(ops[1], "Q1", timeout=5)
    assert second["from"].bare == first["from"].bare
    ops[1].send_message(second["from"].bare, "Got it")

    # The next chat goes to whoever has the fewest chats: not Ben (he has one).
    await _ask(desk, "Q2")
    offer = await _offer_of(ops[0], "Q2")
    ops[0].send_message(offer["from"].bare, "Mine")
    # Then Cy, the only one without a chat.
    await _ask(desk, "Q3")
    await _offer_of(ops[2], "Q3")


async def test_ring_all_respects_max_chats_and_presence(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana", max_chats=1)
    ben = await desk.add_operator(name="Ben", max_chats=1)
    ben.set_presence("dnd")
    await wait_for(lambda: not desk.service.presence_of(ben.bare_jid).takes_chats, what="dnd")
    await _ask(desk, "First")
    offer = await _offer_of(ana, "First")
    await ben.expect_next_from(QUEUE)  # dnd: no offers
    ana.send_message(offer["from"].bare, "Hello")
    await wait_for(lambda: desk.service.queue_info("ask").status.value == "busy", what="busy")
    assert "You took this chat" in (await ana.next_message(offer["from"].bare))["body"]
    patron2 = await _ask(desk, "Second")
    status = await patron2.seen("status", lambda f: f["position"] == 1)
    assert status["status"] == "busy"
    await ana.expect_next_from(QUEUE)  # at her limit
    # Ben becomes available: the waiting chat is offered to him.
    ben.set_presence(None)
    await _offer_of(ben, "Second")


async def test_rollover_to_backup_queue(desk: Desk) -> None:
    other = await desk.store_queue("other")
    await desk.set_queue("ask", rollover_after=1.0, backup_queue_id=other.id)
    ana = await desk.add_operator(queues=("ask",), name="Ana")
    ana.set_presence("away")
    zoe = await desk.add_operator(queues=("other",), name="Zoe")
    patron = await _ask(desk, "Is anyone there?")
    offer = await _offer_of(zoe, "Is anyone there?", timeout=10)
    assert "rolled over from ask" in offer["body"]
    moved = await patron.seen("message", lambda f: f["from"] == "system")
    assert "Ask us (other)" in moved["text"]
    zoe.send_message(offer["from"].bare, "Yes, from the other desk")
    await patron.next("message", lambda f: f["from"] == "operator")
    await ana.expect_next_from(QUEUE)  # away: never offered


async def test_service_hours_with_an_injected_clock(desk: Desk) -> None:
    await desk.set_queue("ask", hours="mon-fri 09:00-17:00", timezone="America/Chicago")
    ana = await desk.add_operator(name="Ana")
    # Sunday 10:00 in Chicago: closed whatever Ana's presence.
    desk.clock.set(datetime(2026, 11, 22, 16, 0, tzinfo=UTC))
    await desk.service.tick()
    assert desk.service.queue_info("ask").status.value == "offline"
    patron = await _ask(desk, "Weekend question")
    await ana.expect_next_from(QUEUE)  # closed: not offered
    # Monday 09:30 in Chicago: open; the waiting chat is offered at the next tick.
    desk.clock.set(datetime(2026, 11, 23, 15, 30, tzinfo=UTC))
    await desk.service.tick()
    assert desk.service.queue_info("ask").status.value == "available"
    await _offer_of(ana, "Weekend question")
    await patron.seen("status", lambda f: f["status"] == "available")


@pytest.mark.chat_config(operator_grace=0.5)
async def test_operator_going_offline_mid_chat_hands_the_chat_back(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    patron = await _ask(desk, "Help with citations")
    offer = await _offer_of(ana, "Help with citations")
    await _offer_of(ben, "Help with citations")
    guest = offer["from"].bare
    ana.send_message(guest, "Sure, which style?")
    await patron.next("message", lambda f: f["text"] == "Sure, which style?")
    assert "You took this chat" in (await ana.next_message(guest))["body"]
    await patron.say("APA please")
    assert (await ana.next_message(guest))["body"] == "APA please"

    await ana.disconnect()
    handed = await _offer_of(ben, "APA please", timeout=10)
    assert "handed back" in handed["body"] and "Sure, which style?" in handed["body"]
    told = await patron.next("message", lambda f: "had to leave" in f["text"])
    assert told["from"] == "system"
    ben.send_message(guest, "I'll continue: APA 7th edition?")
    await patron.next("message", lambda f: f["text"] == "I'll continue: APA 7th edition?")
    assert "You took this chat" in (await ben.next_message(guest))["body"]
    await patron.say("Yes")
    assert (await ben.next_message(guest))["body"] == "Yes"
    seqs = [f["seq"] for f in patron.frames if f["type"] in ("message", "ack")]
    assert len(seqs) == len(set(seqs))


async def test_typing_notifications_both_ways(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    patron = await _ask(desk, "Typing test")
    offer = await _offer_of(ana, "Typing test")
    guest = offer["from"].bare
    ana.send_message(guest, "Hi")
    await patron.next("message", lambda f: f["from"] == "operator")

    states: asyncio.Queue[str] = asyncio.Queue()
    ana.xmpp.register_plugin("xep_0085")  # chat states, as Gajim or Conversations have
    ana.xmpp.add_event_handler("chatstate", lambda msg: states.put_nowait(msg["chat_state"]))
    await patron.send({"type": "typing", "state": "composing"})
    assert await asyncio.wait_for(states.get(), 10) == "composing"

    msg = ana.xmpp.make_message(mto=guest, mtype="chat")
    msg["chat_state"] = "composing"
    msg.send()
    frame = await patron.next("typing")
    assert frame["state"] == "composing"


async def test_on_call_operators_are_called_in(desk: Desk, mail_sink: MailSink) -> None:
    await desk.set_queue("ask", escalation="2 in 10m")
    ana = await desk.add_operator(name="Ana")
    ana.set_presence("xa")
    # The last one available who steps away hears that the queue is now unstaffed.
    assert "last one available" in (await ana.next_message("ask@desk.localhost"))["body"]
    oncall = await desk.add_operator(name="Olu")
    oncall.set_presence("xa")
    assert "last one available" in (await oncall.next_message("ask@desk.localhost"))["body"]
    op = await desk.refdesk.store.operators.by_jid(oncall.bare_jid)
    assert op is not None
    await desk.refdesk.store.operators.set_email(op.id, "olu@library.example")
    await desk.set_on_call("ask", oncall.bare_jid)
    await _ask(desk, "one")
    await oncall.expect_no_message(None, within=0.3)
    await _ask(desk, "two")
    call = await oncall.next_message("ask@desk.localhost")
    assert "On call" in call["body"] and "2 waiting" in call["body"]
    await ana.expect_no_message("ask@desk.localhost", within=0.3)
    alert = (await mail_sink.wait_for(1))[0]
    assert alert.rcpt_tos == ["olu@library.example"] and "2 waiting" in alert.text()
