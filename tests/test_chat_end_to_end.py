"""A chat end to end: patron WebSocket ⇄ refdesk ⇄ real XMPP server ⇄ operator clients.

Every test here runs against Prosody and against ejabberd (the `xmpp_server` fixture is
parametrized).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Desk, wait_for


async def _offer(op, patron, question: str):  # type: ignore[no-untyped-def]
    """The patron asks; returns the offer message the operator got (from the guest JID)."""
    ack = await patron.say(question)
    assert ack["seq"] >= 1
    offer = await op.next_message()
    assert offer["from"].bare.startswith("guest-")
    assert question in offer["body"]
    return offer


async def test_full_chat_both_ways(desk: Desk) -> None:
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    assert patron.welcome is not None and patron.welcome["status"] == "available"

    offer = await _offer(op, patron, "Where are the atlases?")
    guest = offer["from"].bare
    assert guest.endswith("@desk.localhost")

    op.send_message(guest, "Second floor, by the windows.")
    joined = await patron.next("message", lambda f: f["from"] == "system")
    assert "Ana" in joined["text"]
    reply = await patron.next("message", lambda f: f["from"] == "operator")
    assert reply["text"] == "Second floor, by the windows."
    assert reply["name"] == "Ana"
    assert reply["seq"] > joined["seq"]
    # The patron never sees the operator's real address.
    assert op.bare_jid not in str(patron.frames)
    assert "You took this chat" in (await op.next_message(guest))["body"]

    await patron.say("Thanks! And maps?")
    follow_up = await op.next_message(guest)
    assert follow_up["body"] == "Thanks! And maps?"

    op.send_message(guest, "!end")
    confirmation = await op.next_message(guest)
    assert confirmation["body"] == "Chat ended."
    ended = await patron.next("ended")
    assert ended["seq"] > reply["seq"]

    # Sequence numbers are dense and in order.
    seqs = [f["seq"] for f in patron.frames if f["type"] in ("message", "ended", "ack")]
    assert sorted(seqs) == list(range(1, len(seqs) + 1))


@pytest.mark.postgresql_store
async def test_full_chat_both_ways_on_postgresql(desk: Desk) -> None:
    """The same chat with the data in PostgreSQL instead of SQLite."""
    await test_full_chat_both_ways(desk)
    chats = await desk.refdesk.store.chats.open_ones()
    assert chats == []
    (chat,) = await desk.refdesk.store.db.all("SELECT id FROM chats")
    texts = [e.text for e in await desk.refdesk.store.chats.events_after(chat[0], 0)]
    assert "Where are the atlases?" in texts and "Thanks! And maps?" in texts


async def test_first_operator_takes_it_and_the_other_is_told(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    patron = await desk.patron()
    offer_a = await _offer(ana, patron, "Do you have The Odyssey?")
    offer_b = await ben.next_message()
    guest = offer_a["from"].bare
    assert offer_b["from"].bare == guest

    ana.send_message(guest, "Yes, two copies.")
    taken = await ben.next_message(guest)
    assert "Ana took this chat" in taken["body"]

    # Ben may not write into Ana's chat: an error, and the patron sees nothing of it.
    ben.send_message(guest, "I can help too")
    error = await ben.next_error(guest)
    assert error["error"]["condition"] == "not-allowed"
    assert "Ana" in error["error"]["text"]
    await patron.next("message", lambda f: f["text"] == "Yes, two copies.")
    # Ben had his error, so the service was done with his line; Ana's next one reaches
    # the patron after anything it might have relayed.
    ana.send_message(guest, "Anything else?")
    await patron.next("message", lambda f: f["text"] == "Anything else?")
    assert all("I can help too" not in f.get("text", "") for f in patron.frames)

    # !accept on a taken chat is refused too.
    ben.send_message(guest, "!accept")
    error = await ben.next_error(guest)
    assert error["error"]["condition"] == "not-allowed"


async def test_stranger_gets_an_error_and_reaches_no_patron(desk: Desk) -> None:
    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "Hello?")
    guest = offer["from"].bare

    stranger = await _stranger(desk)
    stranger.send_message(guest, "I am not a librarian")
    error = await stranger.next_error(guest)
    assert error["error"]["condition"] == "forbidden"
    # Also to a queue JID.
    stranger.send_message("ask@desk.localhost", "!list")
    error = await stranger.next_error("ask@desk.localhost")
    assert error["error"]["condition"] == "forbidden"
    # The stranger's lines were refused (errors back); the operator's next line reaches
    # the patron after anything the service might have relayed of them.
    op.send_message(guest, "The desk here")
    await patron.next("message", lambda f: f["text"] == "The desk here")
    relayed = [f for f in patron.frames if f["type"] == "message" and f["from"] != "patron"]
    assert [f["text"] for f in relayed if f["from"] == "operator"] == ["The desk here"]
    assert all("librarian" not in f["text"] and "!list" not in f["text"] for f in relayed)


async def _stranger(desk: Desk):  # type: ignore[no-untyped-def]
    from tests.operator_client import OperatorClient

    assert desk.server is not None
    await desk.server.register("stranger", "stranger-pass")
    client = OperatorClient(
        f"stranger@{desk.server.domain}", "stranger-pass", desk.server.host, desk.server.c2s_port
    )
    await client.connect()
    desk.clients.append(client)
    return client


async def test_patron_ends_the_chat(desk: Desk) -> None:
    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "Quick question")
    guest = offer["from"].bare
    op.send_message(guest, "Go ahead")
    await patron.next("message", lambda f: f["from"] == "operator")
    assert "You took this chat" in (await op.next_message(guest))["body"]
    await patron.send({"type": "end"})
    ended = await patron.next("ended")
    assert ended["by"] in ("patron", "system", "")
    notice = await op.next_message(guest)
    assert "ended" in notice["body"]
    # Writing into the ended chat is an error for the operator.
    op.send_message(guest, "Are you still there?")
    error = await op.next_error(guest)
    assert error["error"]["condition"] == "item-not-found"


async def test_operator_commands_answer(desk: Desk) -> None:
    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "Hi")
    guest = offer["from"].bare
    op.send_message(guest, "!help")
    assert "!end" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!frobnicate")
    assert "Unknown command !frobnicate" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!accept")
    assert "You have this chat" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!!important")
    literal = await patron.next("message", lambda f: f["from"] == "operator")
    assert literal["text"] == "!important"
    op.send_message("ask@desk.localhost", "!status")
    status = await op.next_message("ask@desk.localhost")
    assert "ask" in status["body"]


async def test_resume_after_a_dropped_connection(desk: Desk) -> None:
    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "First question")
    guest = offer["from"].bare
    op.send_message(guest, "Answer one")
    await patron.next("message", lambda f: f["text"] == "Answer one")
    assert "You took this chat" in (await op.next_message(guest))["body"]
    seen = patron.last_seq

    await patron.drop()
    op.send_message(guest, "Answer two")
    op.send_message(guest, "Answer three")
    await wait_for(
        lambda: (desk.service.last_seq(patron.chat_id) or 0) >= seen + 2,
        what="operator messages stored",
    )
    welcome = await patron.connect(last_seq=seen)
    assert welcome["resumed"] is True
    await patron.next("message", lambda f: f["text"] == "Answer three")
    texts = [f["text"] for f in patron.messages() if f["seq"] > seen]
    assert texts == ["Answer two", "Answer three"]

    # Resending an acknowledged message (same client id) is idempotent.
    first = await patron.say("Once only", client_id="dup-1")
    again = await patron.say("Once only", client_id="dup-1")
    assert first["seq"] == again["seq"]
    assert (await op.next_message(guest))["body"] == "Once only"
    # The next line is the next the operator gets: the resend was not relayed again.
    await patron.say("Only once, really")
    assert (await op.next_message(guest))["body"] == "Only once, really"

    # A bad resume token starts a new chat rather than failing.
    other = await desk.patron()
    welcome = await other.connect(resume="not-a-token", last_seq=5)
    assert welcome["resumed"] is False and welcome["chat"] != patron.chat_id


async def test_xmpp_server_restart_mid_chat(desk: Desk) -> None:
    assert desk.server is not None
    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "Before the restart")
    guest = offer["from"].bare
    op.send_message(guest, "I'm here")
    await patron.next("message", lambda f: f["text"] == "I'm here")
    assert "You took this chat" in (await op.next_message(guest))["body"]
    # Nothing in flight when the server goes: a line unconfirmed at the cut is resent.
    await wait_for(lambda: desk.refdesk.adapter.unconfirmed == 0, what="lines confirmed")

    restart = asyncio.create_task(desk.server.restart())
    await wait_for(lambda: not desk.refdesk.adapter.online.is_set(), what="component offline")
    # The patron keeps writing while the XMPP server is away; each message is acknowledged.
    sent = []
    for i in range(3):
        ack = await patron.say(f"During the outage {i}")
        sent.append(f"During the outage {i}")
        assert ack["seq"] > 0
    await restart
    await asyncio.wait_for(desk.refdesk.adapter.online.wait(), 30)
    await op.connect()
    ack = await patron.say("After the restart")
    sent.append("After the restart")

    got = []
    while len(got) < len(sent):
        got.append((await op.next_message(guest, timeout=20))["body"])
    assert got == sent
    # Nothing is relayed twice: the next line is the next the operator gets.
    await patron.say("Caught up")
    assert (await op.next_message(guest))["body"] == "Caught up"

    # And the chat goes on both ways.
    op.send_message(guest, "Welcome back")
    await patron.next("message", lambda f: f["text"] == "Welcome back", timeout=15)


async def test_illegal_xml_characters_never_reach_the_stream(desk: Desk) -> None:
    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "Normal start")
    guest = offer["from"].bare
    for bad in ("bell \u0001", "noncharacter \ufffe", "surrogate \ud800"):
        await patron.send({"type": "message", "id": f"bad-{ord(bad[-1])}", "text": bad})
        error = await patron.next("error")
        assert error["code"] == "illegal_characters"
    # The component is still connected: the next message gets through.
    await patron.say("Still here")
    assert (await op.next_message(guest))["body"] == "Still here"
    assert desk.refdesk.adapter.online.is_set()


async def test_waiting_chat_is_offered_when_an_operator_comes_online(desk: Desk) -> None:
    op = await desk.add_operator()
    op.set_presence("away")
    await wait_for(lambda: desk.service.queue_info("ask").status.value == "away", what="away")
    assert "last one available" in (await op.next_message("ask@desk.localhost"))["body"]
    patron = await desk.patron()
    assert patron.welcome is not None and patron.welcome["status"] == "away"
    await patron.say("Anyone there?")
    status = await patron.seen("status", lambda f: f["position"] == 1)
    assert status["status"] == "away"
    await op.expect_next_from("ask@desk.localhost")  # away: not offered
    op.set_presence(None)
    offer = await op.next_message()
    assert "Anyone there?" in offer["body"]
    await patron.seen("status", lambda f: f["status"] == "available")


async def test_operator_added_from_the_command_line_while_running(desk: Desk) -> None:
    """The CLI writes through its own connection; the running service notices, asks for
    the subscription, and the queue lands in the operator's roster."""
    from component.store import Store
    from tests.operator_client import OperatorClient

    assert desk.server is not None
    await desk.server.register("late", "late-pass")
    jid = f"late@{desk.server.domain}"
    client = OperatorClient(jid, "late-pass", desk.server.host, desk.server.c2s_port)
    await client.connect()
    desk.clients.append(client)
    cli_store = await Store.open(desk.refdesk.config.storage.target)
    try:
        from datetime import UTC, datetime

        op = await cli_store.operators.upsert(jid, "Late", 2, datetime.now(UTC))
        queue = await cli_store.queues.by_name("ask")
        assert queue is not None
        await cli_store.operators.assign(queue.id, op.id)
    finally:
        await cli_store.close()
    request = await client.next_presence("ask@desk.localhost", ptype="subscribe", timeout=15)
    assert request["to"].bare == jid
    await wait_for(lambda: desk.service.presence_of(jid).takes_chats, what="late available")
    roster = client.xmpp.client_roster
    await wait_for(
        lambda: roster["ask@desk.localhost"]["subscription"] in ("from", "both"),
        what="queue in roster",
    )

    # After logging in again, the server probes the queue and the component answers from
    # its own state: the queue shows as available in the roster.
    await client.disconnect()
    await wait_for(lambda: not desk.service.presence_of(jid).online, what="late offline")
    await client.connect()
    pres = await client.next_presence("ask@desk.localhost", ptype="available", timeout=15)
    assert "ask" in pres["status"] or "Ask" in pres["status"]


@pytest.mark.chat_config(resume_ttl=1.0)
async def test_patron_who_leaves_ends_the_chat(desk: Desk) -> None:
    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "Brief question")
    guest = offer["from"].bare
    op.send_message(guest, "Hello!")
    await patron.next("message", lambda f: f["from"] == "operator")
    assert "You took this chat" in (await op.next_message(guest))["body"]
    await patron.drop()
    notice = await op.next_message(guest, timeout=10)
    assert "patron left" in notice["body"]


async def test_hostile_and_odd_stanzas(desk: Desk) -> None:
    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "Hello")
    guest = offer["from"].bare
    # To a JID that does not exist on the component.
    op.send_message("nobody@desk.localhost", "hello?")
    assert (await op.next_error("nobody@desk.localhost"))["error"]["condition"] == "item-not-found"
    # To a guest JID that never existed.
    op.send_message("guest-zzzzzzzz@desk.localhost", "hi")
    assert (await op.next_error())["error"]["condition"] == "item-not-found"
    # An oversized operator message is refused, not relayed.
    op.send_message(guest, "x" * 5000)
    error = await op.next_error(guest)
    assert error["error"]["condition"] == "not-acceptable"
    assert "too long" in error["error"]["text"]
    # A bodiless message, a directed presence to a guest and an unknown iq are harmless.
    op.xmpp.send_message(mto=guest, mtype="chat")
    op.xmpp.send_presence(pto=guest)
    iq = op.xmpp.make_iq_get(queryxmlns="urn:example:nothing", ito="ask@desk.localhost")
    try:
        await iq.send(timeout=5)
    except Exception as exc:  # an error reply is what we want; a timeout is not
        assert "timed out" not in str(exc).lower(), exc
    # Disco works on the component.
    info = await op.xmpp.plugin["xep_0030"].get_info(jid="desk.localhost", timeout=5)
    assert info["type"] == "result"
    # A stranger asking for the queue's presence is refused.
    stranger = await _stranger(desk)
    stranger.subscribe("ask@desk.localhost")
    refused = await stranger.next_presence("ask@desk.localhost", ptype="unsubscribed")
    assert refused is not None
    # Through all of it the chat went on.
    op.send_message(guest, "Still working")
    await patron.next("message", lambda f: f["text"] == "Still working")


async def test_messages_acknowledged_while_xmpp_is_down_survive_a_refdesk_restart(
    desk: Desk,
) -> None:
    """The patron's messages are committed before they are acknowledged; if refdesk stops
    before it could relay them, the next refdesk relays them, once each."""
    from component.runner import Refdesk

    op = await desk.add_operator()
    patron = await desk.patron()
    offer = await _offer(op, patron, "Before the outage")
    guest = offer["from"].bare
    op.send_message(guest, "Hello")
    await patron.next("message", lambda f: f["text"] == "Hello")
    assert "You took this chat" in (await op.next_message(guest))["body"]

    # The component's link goes down; the web side keeps taking the patron's messages.
    await desk.refdesk.adapter.stop()
    sent = [f"while down {i}" for i in range(3)]
    for text in sent:
        assert (await patron.say(text))["seq"] > 0
    await patron.drop()
    await desk.refdesk.stop()  # whatever it held in memory is gone with it

    desk.refdesk = Refdesk(desk.refdesk.config, clock=desk.clock)
    await desk.refdesk.start()
    await asyncio.wait_for(desk.refdesk.adapter.online.wait(), 30)
    got = [(await op.next_message(guest, timeout=20))["body"] for _ in sent]
    assert got == sent
    desk.url = f"http://127.0.0.1:{desk.refdesk.port}"
    patron.base_url = desk.url
    welcome = await patron.connect()
    assert welcome["resumed"] is True
    # Nothing was relayed twice: the patron's next line is the next the operator gets.
    await patron.say("Back again")
    assert (await op.next_message(guest))["body"] == "Back again"
