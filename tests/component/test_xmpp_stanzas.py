"""The XMPP adapter in process: stanzas in, the exact stanzas out, no server.

The adapter's slixmpp component is handed slixmpp's own test transport (it collects what
is written; what the test feeds it is parsed as if the server had sent it), the stream is
opened with the XEP-0114 handshake, and the adapter runs on a real service over a real
SQLite store with a manual clock. The end-to-end tests on Prosody and ejabberd stay the
proof that real servers agree; these pin down each stanza.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from slixmpp.test import mocksocket

from component.chats import ChatHandle
from component.clock import ManualClock
from component.core.models import ChatState, Presence
from component.service import DeskService
from component.store import Store
from component.xmpp import XmppAdapter
from component.xmpp_delivery import DOMAIN_TRIAL_TIMEOUT, ping_target
from tests.conftest import COMPONENT_DOMAIN, make_config

NS = "jabber:component:accept"
ANN = "ann@example.org"
STRANGER = "mallory@example.org"
QUEUE_JID = f"ask@{COMPONENT_DOMAIN}"


STANZA_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"
PING = "{urn:xmpp:ping}ping"


def is_ping(stanza: ET.Element) -> bool:
    return stanza.tag == "iq" and stanza.find(PING) is not None


class Transport(mocksocket.TestTransport):  # type: ignore[misc]
    """slixmpp's test transport, which also reports an abort to the stream as a real one
    does (the connection is lost on the next turn of the loop)."""

    def abort(self) -> None:
        asyncio.get_running_loop().call_soon(self.xmpp.connection_lost, None)


@dataclass
class Wire:
    """One adapter on a test transport, and the service behind it."""

    adapter: XmppAdapter
    service: DeskService
    store: Store
    clock: ManualClock
    transport: Transport

    def feed(self, xml: str) -> None:
        """A stanza from the server, in the component namespace of the stream."""
        self.adapter.xmpp.data_received(xml)

    async def settle(self) -> None:
        # Handling a stanza may write others and start work that writes more: repeat
        # until one round has nothing left to do.
        for _ in range(5):
            await asyncio.sleep(0)
            await self.adapter.drained()

    def written(self) -> list[ET.Element]:
        """Every stanza written since the last call, parsed, in order."""
        out: list[ET.Element] = []
        while True:
            try:
                data = self.transport.socket.send_queue.get_nowait()
            except queue.Empty:
                return out
            text = data.decode("utf-8") if isinstance(data, bytes) else data
            if text.startswith(("<?xml", "<stream", "<handshake")):
                continue
            # One write may carry several stanzas (a line and its confirmation ping).
            out.extend(ET.fromstring(f"<written>{text}</written>"))

    def answer(self, ping: ET.Element) -> None:
        """The server's answer to a confirmation ping, in stream order, from the domain
        pinged (the server's own)."""
        self.feed(
            f"<iq type='result' id='{ping.get('id')}' from='{ping.get('to')}' "
            f"to='{COMPONENT_DOMAIN}'/>"
        )

    async def confirmed(self) -> list[ET.Element]:
        """Answer every confirmation ping, including those the answers lead to, and return
        the other stanzas written, in order."""
        others: list[ET.Element] = []
        while True:
            await self.settle()
            pings: list[ET.Element] = []
            for stanza in self.written():
                (pings if is_ping(stanza) else others).append(stanza)
            if not pings:
                return others
            for ping in pings:
                self.answer(ping)


async def open_wire(tmp_path: Path, *, max_stanza_bytes: int | None = None) -> Wire:
    config = make_config(tmp_path)
    xmpp_config = config.xmpp
    if max_stanza_bytes is not None:
        xmpp_config = replace(xmpp_config, max_stanza_bytes=max_stanza_bytes)
    clock = ManualClock(datetime(2026, 5, 4, 9, 30, tzinfo=UTC))
    store = await Store.open(tmp_path / "refdesk.sqlite3")
    now = clock.now()
    group = await store.groups.add("library", "Library", now)
    ask = await store.queues.add("ask", group.id, "Ask a librarian", None, now)
    ann = await store.operators.upsert(ANN, "Ann", 3, now)
    await store.operators.assign(ask.id, ann.id)
    await store.operators.set_subscription(ask.id, ann.id, "granted")
    service = DeskService(store, domain=COMPONENT_DOMAIN, clock=clock)
    await service.start()
    adapter = XmppAdapter(service, xmpp_config)
    adapter.attach()
    xmpp = adapter.xmpp
    transport = Transport(xmpp)
    # What `connect` would start: the task that writes queued stanzas to the transport.
    xmpp._run_out_filters = asyncio.ensure_future(xmpp.run_filters())
    xmpp.connection_made(transport)  # type: ignore[arg-type]
    # The server's stream header, then its answer to the component's handshake.
    xmpp.data_received(
        f"<stream:stream xmlns='{NS}' xmlns:stream='http://etherx.jabber.org/streams' "
        f"id='s1' from='{COMPONENT_DOMAIN}'>"
    )
    xmpp.data_received("<handshake/>")
    wire = Wire(adapter, service, store, clock, transport)
    await wire.settle()
    assert adapter.online.is_set()
    return wire


@pytest.fixture
async def wire(tmp_path: Path) -> AsyncIterator[Wire]:
    w = await open_wire(tmp_path)
    try:
        yield w
    finally:
        await close_wire(w)


async def close_wire(w: Wire) -> None:
    w.adapter._stopping = True
    await w.adapter._inbound.close()
    w.adapter.xmpp.abort()
    writer = w.adapter.xmpp._run_out_filters
    if writer is not None:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer
    await w.service.close()
    await w.store.close()


def bodies(stanzas: list[ET.Element], *, to: str) -> list[tuple[str | None, str | None]]:
    """(from, body) of each chat message to the bare JID `to`, in order."""
    return [
        (m.get("from"), m.findtext("body"))
        for m in stanzas
        if m.tag == "message" and (m.get("to") or "").split("/")[0] == to
    ]


async def operator_online(wire: Wire, show: str | None = None) -> None:
    inner = f"<show>{show}</show>" if show else ""
    wire.feed(f"<presence from='{ANN}/laptop' to='{QUEUE_JID}'>{inner}</presence>")
    await wire.confirmed()


async def chat_offered(wire: Wire, first_line: str, client_id: str = "m1") -> ChatHandle:
    """The usual start: the session's first stanzas confirmed, the operator online, a
    chat opened with `first_line` (sent as `client_id`) and its offer confirmed. Also
    used by `bench.phases`."""
    await wire.confirmed()
    await operator_online(wire)
    handle = await wire.service.open_chat("ask", None)
    await wire.service.post_patron_message(handle.chat_id, client_id, first_line)
    await wire.confirmed()
    return handle


async def test_session_start_announces_the_queue_and_probes_subscribers(wire: Wire) -> None:
    # Written at session start, before anything else: from the database's subscriptions.
    sent = await wire.confirmed()
    assert [(s.tag, s.get("from"), s.get("to"), s.get("type")) for s in sent] == [
        ("presence", QUEUE_JID, ANN, None),
        ("presence", QUEUE_JID, ANN, "probe"),
    ]
    assert sent[0].findtext("show") == "xa"


async def test_patron_line_comes_from_the_guest_jid_with_a_stable_id(wire: Wire) -> None:
    await wire.confirmed()
    await operator_online(wire)
    handle = await wire.service.open_chat("ask", None)
    first = await wire.service.post_patron_message(handle.chat_id, "m1", "Where are the maps?")
    offer = await wire.confirmed()
    guest_jid = f"{handle.guest}@{COMPONENT_DOMAIN}"
    # The first line travels in the offer; the next ones as themselves.
    assert [m.get("from") for m in offer if m.tag == "message"] == [guest_jid]
    assert "Where are the maps?" in (offer[0].findtext("body") or "")
    second = await wire.service.post_patron_message(handle.chat_id, "m2", "Old ones, please")
    sent = await wire.confirmed()
    assert [(m.tag, m.get("id"), m.get("from"), m.get("to"), m.get("type")) for m in sent] == [
        ("message", f"rd-{handle.chat_id}-{second.seq}", guest_jid, ANN, "chat")
    ]
    assert sent[0].findtext("body") == "Old ones, please"
    assert second.seq == first.seq + 1


async def test_hostile_patron_text_is_written_as_text(wire: Wire) -> None:
    """Patron lines are serialised from a template (the hot path): XML metacharacters,
    quotes, markup that tries to close the body and add elements, and white space all
    arrive as the same text in one message with one body."""
    handle = await chat_offered(wire, "Hello?")
    hostile = (
        "</body><body>x</body></message><iq type='set' id='evil'/>"
        " a & b &amp; <![CDATA[c]]> \"q\" 'q' ]]> \t tab \r\n line"
    )
    posted = await wire.service.post_patron_message(handle.chat_id, "m2", hostile)
    sent = await wire.confirmed()
    assert [(m.tag, m.get("id"), m.get("type")) for m in sent] == [
        ("message", f"rd-{handle.chat_id}-{posted.seq}", "chat")
    ]
    assert [child.tag for child in sent[0]] == ["body"]
    # An XML parser reads a line break as \n, whichever way it was written.
    assert sent[0].findtext("body") == hostile.replace("\r\n", "\n")


async def test_operator_reply_reaches_the_chat(wire: Wire) -> None:
    handle = await chat_offered(wire, "Hello?")
    guest_jid = f"{handle.guest}@{COMPONENT_DOMAIN}"
    wire.feed(
        f"<message type='chat' id='a1' from='{ANN}/laptop' to='{guest_jid}'>"
        "<body>Hi, I can help.</body></message>"
    )
    sent = await wire.confirmed()
    assert wire.service.chat_state(handle.chat_id) is ChatState.ACTIVE
    texts = [e.text for e in await wire.service.history(handle.chat_id, 0)]
    assert texts[-1] == "Hi, I can help."
    # Nothing bounces back to the operator as an error.
    assert [s for s in sent if s.get("type") == "error"] == []


async def test_queue_command_is_answered_from_the_queue_jid(wire: Wire) -> None:
    await wire.confirmed()
    await operator_online(wire)
    wire.feed(
        f"<message type='chat' id='c1' from='{ANN}/laptop' to='{QUEUE_JID}'>"
        "<body>!status</body></message>"
    )
    sent = await wire.confirmed()
    replies = bodies(sent, to=ANN)
    assert len(replies) == 1
    sender, body = replies[0]
    assert sender == QUEUE_JID
    assert body is not None and body.startswith("ask: available; 0 waiting")
    assert sent[0].get("to") == f"{ANN}/laptop"


async def test_chat_command_is_answered_in_the_chat(wire: Wire) -> None:
    handle = await chat_offered(wire, "Hello?")
    guest_jid = f"{handle.guest}@{COMPONENT_DOMAIN}"
    wire.feed(
        f"<message type='chat' id='c2' from='{ANN}/laptop' to='{guest_jid}'>"
        "<body>!nosuchcommand</body></message>"
    )
    sent = await wire.confirmed()
    replies = bodies(sent, to=ANN)
    assert [sender for sender, _ in replies] == [guest_jid]
    assert "nosuchcommand" in (replies[0][1] or "")
    assert sent[0].get("type") == "chat"


async def test_stranger_is_refused_with_forbidden(wire: Wire) -> None:
    handle = await chat_offered(wire, "Hello?")
    guest_jid = f"{handle.guest}@{COMPONENT_DOMAIN}"
    wire.feed(
        f"<message type='chat' id='x1' from='{STRANGER}/pc' to='{guest_jid}'>"
        "<body>let me in</body></message>"
    )
    sent = await wire.confirmed()
    assert [(s.tag, s.get("type"), s.get("to"), s.get("from")) for s in sent] == [
        ("message", "error", f"{STRANGER}/pc", guest_jid)
    ]
    # slixmpp writes the error element with its client namespace; servers accept it.
    error = sent[0].find("{*}error")
    assert error is not None and error.get("type") == "auth"
    assert error.find(f"{{{STANZA_NS}}}forbidden") is not None
    texts = [e.text for e in await wire.service.history(handle.chat_id, 0)]
    assert "let me in" not in texts


async def test_operator_presence_sets_availability(wire: Wire) -> None:
    await wire.confirmed()
    assert wire.service.presence_of(ANN) is Presence.OFFLINE
    await operator_online(wire, "dnd")
    assert wire.service.presence_of(ANN) is Presence.DND
    await operator_online(wire)
    assert wire.service.presence_of(ANN) is Presence.AVAILABLE
    wire.feed(f"<presence type='unavailable' from='{ANN}/laptop' to='{QUEUE_JID}'/>")
    await wire.confirmed()
    assert wire.service.presence_of(ANN) is Presence.OFFLINE
    # A stranger's presence changes nothing.
    wire.feed(f"<presence from='{STRANGER}/pc' to='{QUEUE_JID}'/>")
    await wire.confirmed()
    assert wire.service.presence_of(STRANGER) is Presence.OFFLINE


async def test_probes_are_answered_from_the_database(wire: Wire) -> None:
    await wire.confirmed()
    wire.feed(f"<presence type='probe' from='{ANN}/laptop' to='{QUEUE_JID}'/>")
    sent = await wire.confirmed()
    assert [(s.tag, s.get("from"), s.get("to"), s.get("type")) for s in sent] == [
        ("presence", QUEUE_JID, f"{ANN}/laptop", None)
    ]
    assert sent[0].findtext("status") == "Ask a librarian: offline, 0 waiting"
    # Nobody subscribed: told so, and nothing about the queue.
    wire.feed(f"<presence type='probe' from='{STRANGER}/pc' to='{QUEUE_JID}'/>")
    sent = await wire.confirmed()
    assert [(s.tag, s.get("from"), s.get("to"), s.get("type")) for s in sent] == [
        ("presence", QUEUE_JID, STRANGER, "unsubscribed")
    ]


async def test_no_stanza_over_the_size_limit_is_written(tmp_path: Path) -> None:
    limit = 12 * 1024
    wire = await open_wire(tmp_path, max_stanza_bytes=limit)
    try:
        handle = await chat_offered(wire, "Hello?")
        # A long line goes out in parts, each within the limit...
        long_line = "é" * 100 + "<&>" * 1300
        await wire.service.post_patron_message(handle.chat_id, "m2", long_line)
        parts = await wire.confirmed()
        assert len(parts) > 1
        assert all(len(ET.tostring(p, encoding="utf-8")) <= limit for p in parts)
        # ...and an IQ whose answer would echo a huge id is never answered at all.
        refused = wire.adapter.refused
        wire.feed(
            f"<iq type='get' id='{'i' * limit}' from='{ANN}/laptop' to='{COMPONENT_DOMAIN}'>"
            "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>"
        )
        sent = await wire.confirmed()
        assert sent == []
        assert wire.adapter.refused == refused + 1
        # The stream is still up and serving.
        await wire.service.post_patron_message(handle.chat_id, "m3", "Still there?")
        assert bodies(await wire.confirmed(), to=ANN)[-1][1] == "Still there?"
    finally:
        await close_wire(wire)


async def test_relay_cursor_moves_only_when_a_ping_is_answered(wire: Wire) -> None:
    handle = await chat_offered(wire, "one")
    live = wire.service.live_by_guest(handle.guest)
    assert live is not None
    start = live.relayed_seq
    seqs = []
    for n in range(4):
        event = await wire.service.post_patron_message(handle.chat_id, f"l{n}", f"line {n}")
        seqs.append(event.seq)
    await wire.settle()
    stream = wire.written()
    pings = [s for s in stream if is_ping(s)]
    # One ping outstanding at a time, however many lines were written.
    assert len(pings) == 1
    assert live.relayed_seq == start
    written_seqs = [int((s.get("id") or "").split("-")[2]) for s in stream if s.tag == "message"]
    assert written_seqs == seqs
    before_ping = stream[: stream.index(pings[0])]
    covered = max(
        (int((s.get("id") or "").split("-")[2]) for s in before_ping if s.tag == "message"),
        default=start,
    )
    while live.relayed_seq < seqs[-1]:
        # Answering the outstanding ping confirms exactly what was written before it;
        # the lines written after it wait for the next ping.
        wire.answer(pings[0])
        await wire.settle()
        assert live.relayed_seq == covered
        stream = stream[stream.index(pings[0]) + 1 :] + wire.written()
        pings = [s for s in stream if is_ping(s)]
        if live.relayed_seq < seqs[-1]:
            assert len(pings) == 1
            covered = max(
                int((s.get("id") or "").split("-")[2])
                for s in stream[: stream.index(pings[0])]
                if s.tag == "message"
            )
    assert wire.adapter.unconfirmed == 0


async def test_only_the_servers_answer_confirms_however_its_sender_is_written(
    wire: Wire,
) -> None:
    """A plain result is taken as parsed XML before slixmpp builds a stanza; what that
    fast path does not recognise goes the stanza way, where JIDs are compared normalised:
    an answer with the right id from someone else confirms nothing, one from the server
    written in capitals (with a resource) does."""
    handle = await chat_offered(wire, "one")
    live = wire.service.live_by_guest(handle.guest)
    assert live is not None
    event = await wire.service.post_patron_message(handle.chat_id, "m2", "two")
    await wire.settle()
    [ping] = [s for s in wire.written() if is_ping(s)]
    ping_id, server = ping.get("id"), ping.get("to") or ""
    for sender in (f"{ANN}/laptop", f"evil.{server}", ""):
        attr = f" from='{sender}'" if sender else ""
        wire.feed(f"<iq type='result' id='{ping_id}'{attr} to='{COMPONENT_DOMAIN}'/>")
        await wire.settle()
        if sender:
            assert live.relayed_seq < event.seq, sender
    # (An answer with no sender is the server's own, like slixmpp's IQ matching has it.)
    assert live.relayed_seq == event.seq
    assert wire.adapter.unconfirmed == 0
    event = await wire.service.post_patron_message(handle.chat_id, "m3", "three")
    await wire.settle()
    [ping] = [s for s in wire.written() if is_ping(s)]
    wire.feed(
        f"<iq type='result' id='{ping.get('id')}' from='{server.upper()}/x' "
        f"to='{COMPONENT_DOMAIN}'/>"
    )
    await wire.settle()
    assert live.relayed_seq == event.seq


async def test_unanswered_ping_drops_the_stream_on_the_clock(wire: Wire) -> None:
    # The confirmation time-out runs on the injected clock: no answer for a minute means
    # a half-open connection, which is dropped so that it reconnects and resends.
    handle = await chat_offered(wire, "one")
    live = wire.service.live_by_guest(handle.guest)
    assert live is not None
    relayed = live.relayed_seq
    await wire.service.post_patron_message(handle.chat_id, "m2", "two")
    await wire.settle()
    assert [s.tag for s in wire.written()] == ["message", "iq"]
    await wire.clock.advance(59)
    await wire.settle()
    assert wire.adapter.online.is_set()
    await wire.clock.advance(1)
    await wire.settle()
    assert not wire.adapter.online.is_set()
    assert live.relayed_seq == relayed
    # Kept to be written again, with the same id, when the stream is back.
    assert wire.adapter.unconfirmed == 0
    assert [o.stanza["id"] for o in wire.adapter.delivery.outbox] == [f"rd-{handle.chat_id}-2"]


def test_confirmations_ping_the_servers_domain() -> None:
    """The server answers a ping to its own domain itself: two stanzas per confirmation
    instead of four (a ping to our own domain is routed back for us to answer)."""
    config = make_config(Path("."))
    assert ping_target(config.xmpp) == "localhost"  # desk.localhost
    assert ping_target(replace(config.xmpp, domain="desk.lib.example.org")) == ("lib.example.org")
    assert ping_target(replace(config.xmpp, server_domain="chat.example.org")) == (
        "chat.example.org"
    )
    # A one-label domain has no parent: ping ourselves.
    assert ping_target(replace(config.xmpp, domain="desk")) == "desk"


async def test_a_server_not_serving_the_pinged_domain_turns_pings_to_our_own(
    wire: Wire,
) -> None:
    """A misconfigured (or wrongly derived) server domain is answered with an error that
    says the server would pass it on to another server: the answer still confirms what
    came before it (it is in stream order), and later pings go to our own domain."""
    await wire.confirmed()
    await operator_online(wire)
    handle = await wire.service.open_chat("ask", None)
    await wire.confirmed()  # the offer, so that the line below is alone in flight
    await wire.service.post_patron_message(handle.chat_id, "m1", "one")
    await wire.settle()
    stream = wire.written()
    pings = [s for s in stream if is_ping(s)]
    assert [p.get("to") for p in pings] == ["localhost"]
    live = wire.service.live_by_guest(handle.guest)
    assert live is not None
    wire.feed(
        f"<iq type='error' id='{pings[0].get('id')}' from='localhost' to='{COMPONENT_DOMAIN}'>"
        "<error type='cancel'><remote-server-not-found "
        f"xmlns='{STANZA_NS}'/></error></iq>"
    )
    await wire.settle()
    assert live.relayed_seq == 1
    # What was written after that ping (the queue's new status) waits for the next one.
    pings = [s for s in wire.written() if is_ping(s)]
    assert [p.get("to") for p in pings] == [COMPONENT_DOMAIN]
    wire.answer(pings[0])
    await wire.confirmed()
    assert wire.adapter.unconfirmed == 0
    await wire.service.post_patron_message(handle.chat_id, "m2", "two")
    await wire.settle()
    pings = [s for s in wire.written() if is_ping(s)]
    assert [p.get("to") for p in pings] == [COMPONENT_DOMAIN]


async def test_a_server_domain_that_never_answers_turns_pings_to_our_own_in_time(
    wire: Wire,
) -> None:
    """A wrong server domain that the server passes on to a remote server may be answered
    only after minutes (or never): after DOMAIN_TRIAL_TIMEOUT on the clock, what was
    written is confirmed through our own domain instead, and the stream is kept, not cut
    every CONFIRM_TIMEOUT with everything resent."""
    await wire.settle()
    # The session start's presences, followed by a ping to the server's domain, which
    # does not answer.
    first = [s for s in wire.written() if is_ping(s)]
    assert [p.get("to") for p in first] == ["localhost"]
    await wire.clock.advance(DOMAIN_TRIAL_TIMEOUT - 1)
    await wire.settle()
    assert not [s for s in wire.written() if is_ping(s)]
    assert wire.adapter.unconfirmed > 0
    await wire.clock.advance(1)
    await wire.settle()
    retry = [s for s in wire.written() if is_ping(s)]
    assert [p.get("to") for p in retry] == [COMPONENT_DOMAIN]
    assert wire.adapter.online.is_set()
    wire.answer(retry[0])
    await wire.confirmed()
    assert wire.adapter.unconfirmed == 0
    # The late answer to the first ping changes nothing.
    wire.answer(first[0])
    await wire.settle()
    assert wire.adapter.online.is_set() and wire.adapter.unconfirmed == 0
    # From now on, confirmations go to our own domain, and lines are relayed.
    await operator_online(wire)
    handle = await wire.service.open_chat("ask", None)
    await wire.confirmed()
    await wire.service.post_patron_message(handle.chat_id, "m1", "one")
    await wire.settle()
    pings = [s for s in wire.written() if is_ping(s)]
    assert [p.get("to") for p in pings] == [COMPONENT_DOMAIN]
    wire.answer(pings[0])
    await wire.confirmed()
    live = wire.service.live_by_guest(handle.guest)
    assert live is not None and live.relayed_seq == 1


async def test_an_error_answer_from_the_server_itself_keeps_its_domain(wire: Wire) -> None:
    """A server without a ping module answers service-unavailable from its own domain:
    that is an answer in stream order all the same, and its domain stays the target."""
    await wire.confirmed()
    await operator_online(wire)
    handle = await wire.service.open_chat("ask", None)
    await wire.confirmed()  # the offer, so that each line below is alone in flight
    for n in range(2):
        await wire.service.post_patron_message(handle.chat_id, f"m{n}", f"line {n}")
        await wire.settle()
        while wire.adapter.unconfirmed:
            pings = [s for s in wire.written() if is_ping(s)]
            assert [p.get("to") for p in pings] == ["localhost"]
            wire.feed(
                f"<iq type='error' id='{pings[0].get('id')}' from='localhost' "
                f"to='{COMPONENT_DOMAIN}'><error type='cancel'><service-unavailable "
                f"xmlns='{STANZA_NS}'/></error></iq>"
            )
            await wire.settle()


async def test_a_stream_lost_with_stanzas_queued_leaves_the_send_queue_joinable(
    wire: Wire,
) -> None:
    # slixmpp empties its send queue when the connection is lost without marking the
    # discarded stanzas done: `drained` (which joins that queue) then waited for the next
    # stream loss, a minute of a frozen server's confirmation deadline.
    await wire.confirmed()
    xmpp = wire.adapter.xmpp
    for n in range(3):
        xmpp.send_message(mto=ANN, mbody=f"queued {n}", mtype="chat")
    assert xmpp.waiting_queue.qsize() == 3
    xmpp.connection_lost(None)  # the server is gone before the writer took any of them
    assert xmpp.waiting_queue.empty()
    joined = asyncio.ensure_future(xmpp.waiting_queue.join())
    for _ in range(5):
        await asyncio.sleep(0)
    assert joined.done()
