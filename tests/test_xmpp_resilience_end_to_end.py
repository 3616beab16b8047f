"""The component stream under attack and under abrupt faults, on Prosody and ejabberd.

- A patron's oversized history must never produce a stanza the server refuses (the server
  would close the component stream: every chat of every group stops).
- A line written to the socket is not yet relayed: when the stream is cut abruptly (the
  server is killed, or closes the stream on a bad stanza) whatever the server had not
  processed is resent, with the same stanza id, and nothing is lost.
"""

from __future__ import annotations

from typing import Any

import pytest
from slixmpp.stanza import Iq

from component.config import LimitsConfig
from tests.conftest import Desk, wait_for
from tests.operator_client import OperatorClient
from tests.patron_client import PatronClient

FAST = LimitsConfig(messages_per_second=1000.0, message_burst=1000)


async def _accepted_chat(
    desk: Desk, op: OperatorClient, patron: PatronClient, question: str
) -> str:
    """The patron asks, the operator takes the chat; returns the guest JID."""
    await patron.say(question)
    offer = await op.next_message(timeout=15)
    while "last one available" in offer["body"]:
        # An operator whose connection dropped was told their queue went unstaffed; their
        # server may hand that line over when they are back.
        offer = await op.next_message(timeout=15)
    guest: str = offer["from"].bare
    op.send_message(guest, "Hello, I'm here")
    await patron.next("message", lambda f: f["text"] == "Hello, I'm here", timeout=15)
    assert "You took this chat" in (await op.next_message(guest))["body"]
    # Nothing of this start still in flight: a line unconfirmed at a later cut is resent
    # (same id), which the tests below would count as a line out of place.
    adapter = desk.refdesk.adapter
    await wait_for(lambda: adapter.unconfirmed == 0, what="start confirmed")
    return guest


async def _collect(
    op: OperatorClient, guest: str, wanted: set[str], timeout: float = 30
) -> list[Any]:
    """Messages from `guest` until every body in `wanted` has arrived (duplicates kept)."""
    got: list[Any] = []
    seen: set[str] = set()
    while not wanted <= seen:
        msg = await op.next_message(guest, timeout=timeout)
        got.append(msg)
        seen.add(msg["body"])
    return got


@pytest.mark.desk_config(limits=FAST)
async def test_oversized_history_neither_cuts_the_component_nor_loses_lines(desk: Desk) -> None:
    """30 lines of 4,000 `"` (each escapes to `&quot;`): an offer carrying them all would
    be ~720 KB, over the servers' component stanza limit."""
    adapter = desk.refdesk.adapter
    olga = await desk.add_operator(("other",), name="Olga")
    ana = await desk.add_operator(("ask",), name="Ana")
    ana.set_presence("away")
    await wait_for(lambda: desk.service.queue_info("ask").status.value == "away", what="away")
    assert "last one available" in (await ana.next_message("ask@desk.localhost"))["body"]

    innocent = await desk.patron("other")
    guest_i = await _accepted_chat(desk, olga, innocent, "Innocent question")

    attacker = await desk.patron("ask")
    for i in range(30):
        await attacker.say(f"{i:02d} " + '"' * 3990)
    sessions = adapter.sessions

    ana.set_presence(None)  # Ana is back: the whole history is offered to her
    await innocent.say("Innocent line right behind the offer")
    got = await olga.next_message(guest_i, timeout=20)
    assert got["body"] == "Innocent line right behind the offer"

    # Ana gets the offer, split or cut, and is told so; the first question and the newest
    # line are in it.
    first = await ana.next_message(timeout=20)
    guest_a = first["from"].bare
    assert "New chat" in first["body"]
    bodies = [first["body"]]
    # Up to the part with the newest line (parts break at lines, the newest comes last),
    # not until a quiet moment: a loaded machine can be quiet for a while between parts.
    while "Patron: 29 " not in bodies[-1]:
        bodies.append((await ana.next_message(guest_a, timeout=20))["body"])
    text = "\n".join(bodies)
    assert "Patron: 00 " in text and "Patron: 29 " in text
    assert "not shown" in text or "part" in text
    for body in bodies:
        assert len(body.encode()) * 6 < 512 * 1024
    assert adapter.online.is_set() and adapter.sessions == sessions

    # The chat goes on: Ana takes it and the attacker's next line reaches her once.
    ana.send_message(guest_a, "!accept")
    await ana.next_message(guest_a)
    await attacker.say("and one more")
    assert (await ana.next_message(guest_a, timeout=15))["body"] == "and one more"
    assert adapter.sessions == sessions


async def _lines_survive(desk: Desk, fault: str) -> None:
    """Lines acknowledged to the patron, written to the component socket while the server
    is frozen, then the stream is cut: all arrive, duplicates only with the same id."""
    server = desk.server
    assert server is not None
    adapter = desk.refdesk.adapter
    op = await desk.add_operator(name="Ana")
    if fault == "SIGKILL":
        # ejabberd keeps a new account in memory for a while: a SIGKILL right after the
        # registration could lose it. A graceful restart writes it out.
        sessions = adapter.sessions
        await server.restart()
        await wait_for(lambda: adapter.sessions > sessions, timeout=30, what="component back")
        await op.connect()
        await wait_for(lambda: desk.service.presence_of(op.jid).takes_chats, what="available")
    patron = await desk.patron()
    guest = await _accepted_chat(desk, op, patron, "Before the fault")
    before = [f"before {i}" for i in range(5)]
    for text in before:
        await patron.say(text)
    sessions = adapter.sessions
    in_flight = [f"in flight {i}" for i in range(5)]
    after_down = [f"while down {i}" for i in range(3)] if fault == "SIGKILL" else []

    # The server stops reading: what refdesk writes now sits unprocessed in the socket.
    server.freeze()
    killed = False
    try:
        if fault == "bad stanza":
            # A stanza the server refuses: it closes the component stream there, and what
            # follows it on the socket is never processed.
            adapter.xmpp.send_raw("<message to='x@localhost'><body>\x01</body></message>")
        last_seq = 0
        for text in in_flight:
            last_seq = (await patron.say(text))["seq"]
            assert last_seq > 0
        # Written, not confirmed (the frozen server reads nothing): the last line is among
        # the unconfirmed stanzas, and slixmpp's send queue has gone to the socket.
        # (Queued, if the stream happens to be reconnecting: then it goes out on the new
        # stream, which the frozen server does not read either.)
        delivery = adapter.delivery
        await wait_for(
            lambda: any(
                out.last_seq == last_seq for out in (*delivery.unconfirmed, *delivery.outbox)
            ),
            what="the lines written",
        )
        await adapter.drained()
        if fault == "SIGKILL":
            killed = True
            await server.kill()
            await wait_for(lambda: not adapter.online.is_set(), what="stream lost")
            for text in after_down:
                await patron.say(text)
            await server.start()
            killed = False
        else:
            server.thaw()
    finally:
        # Whatever failed, leave the session's server running for the next tests.
        if killed:
            await server.start()
        elif fault != "SIGKILL":
            server.thaw()
    await wait_for(lambda: adapter.sessions > sessions, timeout=30, what="component back")
    if fault == "SIGKILL":
        # The operator logs in again once the server has taken every resent line (into
        # its offline store: the operator's connection died with the server). Logging in
        # while they are still being resent races the server's own delivery: ejabberd
        # makes the new session available before it hands over the stored lines, so a
        # line routed in between overtakes them. refdesk's part is the order on its
        # stream, which this still checks.
        await wait_for(
            lambda: adapter.online.is_set() and adapter.unconfirmed == 0,
            timeout=30,
            what="the lines resent and confirmed",
        )
        await op.connect()
    await patron.say("after")
    wanted = {*before, *in_flight, *after_down, "after"}
    got = await _collect(op, guest, wanted)
    bodies = [m["body"] for m in got]
    assert wanted <= set(bodies)
    # A line may come twice only if it was in flight, and then with the same stanza id.
    ids: dict[str, set[str]] = {}
    for m in got:
        ids.setdefault(m["body"], set()).add(m["id"])
    assert all(len(v) == 1 for v in ids.values()), ids
    dups = {b for b in bodies if bodies.count(b) > 1}
    assert dups <= set(in_flight) | set(before), dups
    # Order: by first arrival, the patron's lines are in the order they were written.
    order = [*before, *in_flight, *after_down, "after"]
    first_seen = [b for b in dict.fromkeys(bodies) if b in wanted]
    assert first_seen == order


@pytest.mark.desk_config(limits=FAST)
async def test_no_line_lost_when_the_xmpp_server_is_killed(desk: Desk) -> None:
    await _lines_survive(desk, "SIGKILL")


@pytest.mark.desk_config(limits=FAST)
async def test_no_line_lost_when_the_server_closes_the_stream_on_a_bad_stanza(
    desk: Desk,
) -> None:
    await _lines_survive(desk, "bad stanza")


@pytest.mark.desk_config(limits=FAST)
async def test_a_stanza_the_server_keeps_refusing_is_dropped_and_the_rest_flows(
    desk: Desk,
) -> None:
    """If, despite every check, refdesk wrote a stanza that makes the server close the
    stream, resending it after every reconnection would cut everyone off for good. It is
    resent alone, found, and dropped; the lines behind it arrive."""
    adapter = desk.refdesk.adapter
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    guest = await _accepted_chat(desk, op, patron, "Before")
    sessions = adapter.sessions
    # A `from` outside the component's domain: the server refuses it with a stream error
    # (Prosody: invalid-from; ejabberd: improper addressing or similar) and closes.
    poison = adapter.xmpp.make_message(
        mto=op.jid, mbody="poison", mfrom="someone@elsewhere.example"
    )
    adapter._send(poison)  # as a bug in refdesk would
    behind = [f"behind {i}" for i in range(3)]
    for text in behind:
        await patron.say(text)
    got = await _collect(op, guest, set(behind))
    assert {m["body"] for m in got} >= set(behind)
    assert "poison" not in [m["body"] for m in got]
    await wait_for(lambda: adapter.online.is_set(), what="online")
    # Cut at most twice more than the first time: once when first sent, once resent alone.
    assert sessions < adapter.sessions <= sessions + 2
    await patron.say("and after")
    # Lines in flight at a cut may come twice (same ids); nothing else comes before it.
    later = await _collect(op, guest, {"and after"})
    assert {m["body"] for m in later} <= {*behind, "and after"}


async def test_a_refused_stanza_behind_others_costs_no_innocent_line(desk: Desk) -> None:
    """The refused stanza is written right behind innocent ones, in one batch, so that
    several are unconfirmed when the server cuts the stream. Which one it refused is then
    unknown: blaming the first in flight would drop an innocent line or cut everyone off
    once more. Each is resent alone instead; only the refused one is dropped."""
    adapter = desk.refdesk.adapter
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    guest = await _accepted_chat(desk, op, patron, "Before")
    sessions = adapter.sessions
    ahead = [f"ahead {i}" for i in range(3)]
    for text in ahead:  # as refdesk writes them: from the guest, within one tick
        adapter.send_chat(guest.split("@")[0], op.jid, text)
    adapter._send(
        adapter.xmpp.make_message(mto=op.jid, mbody="poison", mfrom="someone@elsewhere.example")
    )
    got = await _collect(op, guest, set(ahead))
    assert "poison" not in [m["body"] for m in got]
    await wait_for(lambda: adapter.online.is_set() and adapter.unconfirmed == 0, what="settled")
    assert sessions < adapter.sessions <= sessions + 2
    await patron.say("and after")
    # Lines in flight at a cut may come twice (same ids); nothing else comes before it.
    later = await _collect(op, guest, {"and after"})
    assert {m["body"] for m in later} <= {*ahead, "and after"}


@pytest.mark.desk_config(limits=FAST)
async def test_a_transfer_carries_a_long_history_within_bounds(desk: Desk) -> None:
    adapter = desk.refdesk.adapter
    ana = await desk.add_operator(("ask",), name="Ana")
    olga = await desk.add_operator(("other",), name="Olga")
    attacker = await desk.patron("ask")
    await attacker.say("first question")
    guest = (await ana.next_message(timeout=15))["from"].bare
    ana.send_message(guest, "!accept")
    await ana.next_message(guest)
    for i in range(30):
        await attacker.say(f"{i:02d} " + '"' * 3990)
    got = await _collect(ana, guest, {f"{i:02d} " + '"' * 3990 for i in range(30)})
    assert len(got) >= 30
    sessions = adapter.sessions
    ana.send_message(guest, "!transfer other")
    first = await olga.next_message(guest, timeout=20)
    assert "New chat" in first["body"] and "Long history" in first["body"]
    assert "transfer" in first["body"]
    assert adapter.online.is_set() and adapter.sessions == sessions


@pytest.mark.desk_config(limits=FAST)
async def test_one_confirmation_covers_everything_written_before_it(desk: Desk) -> None:
    """Confirmations are not one ping per line: while one is outstanding, what is written
    waits for the next, which covers it all."""
    server = desk.server
    assert server is not None
    adapter = desk.refdesk.adapter
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    guest = await _accepted_chat(desk, op, patron, "Before")
    await wait_for(lambda: adapter.unconfirmed == 0, what="all confirmed")
    pings = adapter.pings
    lines = [f"burst {i}" for i in range(50)]
    server.freeze()  # the first ping waits, unanswered, while the burst is written
    try:
        for text in lines:
            await patron.say(text)
        # A line is acknowledged once committed; its relay to the stream comes after.
        # Thawing before the whole burst is written would let pings answered meanwhile
        # cover only part of it (seen on a loaded machine), which is not what is tested.
        await wait_for(lambda: adapter.unconfirmed >= len(lines), what="the burst written")
    finally:
        server.thaw()
    await _collect(op, guest, set(lines))
    await wait_for(lambda: adapter.unconfirmed == 0, what="all confirmed")
    assert adapter.pings - pings <= 3


@pytest.mark.desk_config(limits=FAST)
async def test_the_server_answers_confirmations_itself(desk: Desk) -> None:
    """A confirmation ping goes to the XMPP server's own domain, and the server answers
    it: two stanzas on the component stream per confirmation. A ping to the component's
    own domain came back in for refdesk to answer, and its answer went out and back in
    again: four stanzas through refdesk per line at a chat's pace, more CPU than the line
    itself."""
    server = desk.server
    assert server is not None
    adapter = desk.refdesk.adapter
    routed_back = 0

    def count_pings(stanza: Any) -> Any:
        nonlocal routed_back
        if isinstance(stanza, Iq) and stanza.xml.find("{urn:xmpp:ping}ping") is not None:
            routed_back += 1
        return stanza

    adapter.xmpp.add_filter("in", count_pings)
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    guest = await _accepted_chat(desk, op, patron, "Before")
    pings = adapter.pings
    for i in range(5):
        await patron.say(f"paced {i}")
        assert (await op.next_message(guest, timeout=15))["body"] == f"paced {i}"
        await wait_for(lambda: adapter.unconfirmed == 0, what="line confirmed")
    # Each line was confirmed on its own (the chat's pace), by the server's answers.
    assert adapter.pings - pings >= 5
    assert routed_back == 0
    assert adapter.delivery.ping_to == server.domain


@pytest.mark.desk_config(limits=FAST, server_domain="elsewhere.invalid")
async def test_a_server_domain_the_server_does_not_serve_falls_back_to_our_own(
    desk: Desk,
) -> None:
    """`[xmpp] server_domain` set to a domain the server does not serve: the server's
    error answer (it would pass the ping to another server) still confirms, and later
    confirmations ping the component's own domain, which the server surely routes."""
    adapter = desk.refdesk.adapter
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    guest = await _accepted_chat(desk, op, patron, "Before")
    assert adapter.delivery.ping_to == "desk.localhost"
    await patron.say("after")
    assert (await op.next_message(guest, timeout=15))["body"] == "after"
    await wait_for(lambda: adapter.unconfirmed == 0, what="line confirmed")


@pytest.mark.chat_config(max_message_chars=100_000, max_frame_bytes=1_000_000)
async def test_a_line_too_long_for_one_stanza_comes_in_parts(desk: Desk) -> None:
    """With a generous `max_message_chars`, one line of 90,000 `"` would be a 540 KB
    stanza: it goes in numbered parts (the last one says it was cut), never in one."""
    adapter = desk.refdesk.adapter
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    guest = await _accepted_chat(desk, op, patron, "Before")
    sessions = adapter.sessions
    ack = await patron.say('"' * 90_000)
    parts = [await op.next_message(guest, timeout=20)]
    while not parts[-1]["body"].startswith("(8/8)"):
        parts.append(await op.next_message(guest, timeout=20))
    assert [p["body"][:6] for p in parts] == [f"({n}/8) " for n in range(1, 9)]
    assert parts[0]["id"].endswith(f"-{ack['seq']}") and parts[0]["id"].startswith("rd-")
    assert parts[1]["id"] == parts[0]["id"] + "-2"
    assert "[Cut: too long for chat" in parts[-1]["body"]
    await patron.say("next line")
    assert (await op.next_message(guest, timeout=15))["body"] == "next line"
    assert adapter.online.is_set() and adapter.sessions == sessions


async def test_an_answer_echoing_a_huge_id_is_not_written(desk: Desk) -> None:
    """Automatic answers echo the asker's id: a stranger's 180 KB id must not make refdesk
    write a stanza over its limit (on a server whose component limit is lower than its
    client limit, that would cut the component off)."""
    assert desk.server is not None
    adapter = desk.refdesk.adapter
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    guest = await _accepted_chat(desk, op, patron, "Before")
    await desk.server.register("mallory", "mallory-pass")
    stranger = OperatorClient(
        f"mallory@{desk.server.domain}", "mallory-pass", desk.server.host, desk.server.c2s_port
    )
    await stranger.connect()
    desk.clients.append(stranger)
    refused, sessions = adapter.refused, adapter.sessions
    ping = stranger.xmpp.make_iq_get(ito="ask@desk.localhost")
    ping.enable("ping")
    ping["id"] = '"' * 30_000
    stranger.xmpp.send(ping)
    await wait_for(lambda: adapter.refused > refused, what="the answer refused")
    await patron.say("still here")
    assert (await op.next_message(guest, timeout=15))["body"] == "still here"
    assert adapter.online.is_set() and adapter.sessions == sessions
