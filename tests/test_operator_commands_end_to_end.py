"""Every operator command from a real XMPP client, with its error paths, and the same
queue actions as XEP-0050 ad-hoc commands."""

from __future__ import annotations

from component.core.changes import GroupUpdate
from tests.conftest import Desk, wait_for
from tests.operator_client import OperatorClient

QUEUE_JID = "ask@desk.localhost"


async def _chat(desk: Desk, op: OperatorClient, question: str = "Question"):  # type: ignore[no-untyped-def]
    patron = await desk.patron()
    await patron.say(question)
    while True:
        offer = await op.next_message()
        if question in offer["body"]:
            break
    guest = offer["from"].bare
    op.send_message(guest, "!accept")
    assert "You have this chat" in (await op.next_message(guest))["body"]
    return patron, guest


async def _reply(op: OperatorClient, to: str, line: str) -> str:
    op.send_message(to, line)
    return str((await op.next_message(to))["body"])


async def test_guest_chat_commands(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    store = desk.refdesk.store
    group = await store.groups.by_name("library")
    assert group is not None
    await store.links.add(group.id, "Food bank", "https://food.example.org/")
    patron, guest = await _chat(desk, ana, "Where can I get food?")

    help_text = await _reply(ana, guest, "!help")
    for name in ("!accept", "!end", "!transfer", "!c ", "!note", "!tag", "!info", "!links"):
        assert name in help_text
    assert "Unknown command !nope" in await _reply(ana, guest, "!nope")
    assert "Unknown command !" in await _reply(ana, guest, "!")

    listing = await _reply(ana, guest, "!c")
    assert "greeting" in listing and "goodbye" in listing and "end-of-shift" in listing
    sent = await _reply(ana, guest, "!c greeting")
    greeting = await patron.next("message", lambda f: f["from"] == "operator")
    assert greeting["text"].startswith("Hello! Thanks for contacting us")
    assert sent == f"Sent: {greeting['text']}"
    assert "No canned message called 'nope'" in await _reply(ana, guest, "!c nope")

    assert "Note added" in await _reply(ana, guest, "!note Patron seems to be a student")
    assert "Write the note" in await _reply(ana, guest, "!note")
    assert "Tagged: food, referral" in await _reply(ana, guest, "!tag food referral")
    assert "already has that tag" in await _reply(ana, guest, "!tag food")
    assert "not one" in await _reply(ana, guest, "!tag <script>")
    assert "Which tag" in await _reply(ana, guest, "!tag")

    info = await _reply(ana, guest, "!info")
    assert "Queue: Ask us (ask)" in info and "Tags: food, referral" in info
    assert "Address: 127.0.0.1" in info
    links = await _reply(ana, guest, "!links")
    assert "Food bank — https://food.example.org/" in links

    # The patron never saw the note, and `!!` sends a literal line.
    ana.send_message(guest, "!!c is not a command here")
    literal = await patron.next("message", lambda f: f["text"].startswith("!c"))
    assert literal["text"] == "!c is not a command here"
    assert all("student" not in f.get("text", "") for f in patron.frames)
    assert await _reply(ana, guest, "!end") == "Chat ended."
    await patron.next("ended")


async def test_commands_in_a_chat_that_is_not_yours(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    _patron, guest = await _chat(desk, ana)
    await ben.next_message(guest)  # the offer
    await ben.next_message(guest)  # "Ana took this chat."
    for line in ("!end", "!note sneaky", "!tag x", "!transfer other", "!accept"):
        ben.send_message(guest, line)
        error = await ben.next_error(guest)
        assert error["error"]["condition"] == "not-allowed", line
        assert "Ana has this chat" in error["error"]["text"]


async def test_transfers(desk: Desk) -> None:
    ana = await desk.add_operator(queues=("ask",), name="Ana")
    zoe = await desk.add_operator(queues=("other",), name="Zoe")
    patron, guest = await _chat(desk, ana, "A question for the other desk")
    ana.send_message(guest, "Let me find the right person.")
    await patron.next("message", lambda f: f["from"] == "operator")

    assert "No queue or operator called 'narnia'" in await _reply(ana, guest, "!transfer narnia")
    assert "Transfer to whom" in await _reply(ana, guest, "!transfer")
    assert "to yourself" in await _reply(ana, guest, "!transfer Ana")

    assert "Transferred to the other queue" in await _reply(ana, guest, "!transfer other")
    told = await patron.next("message", lambda f: "transferred" in f["text"])
    assert told["from"] == "system"
    offer = await zoe.next_message(guest)
    # The receiving side gets the history so far.
    assert "transferred by Ana" in offer["body"]
    assert "Patron: A question for the other desk" in offer["body"]
    assert "Ana: Let me find the right person." in offer["body"]
    zoe.send_message(guest, "Hi, Zoe here")
    await patron.next("message", lambda f: f["text"] == "Hi, Zoe here")
    assert "You took this chat" in (await zoe.next_message(guest))["body"]
    # Ana is out of it now.
    ana.send_message(guest, "still me?")
    assert (await ana.next_error(guest))["error"]["condition"] == "not-allowed"

    # Zoe hands it to a named colleague.
    assert "Offered to Ana" in await _reply(zoe, guest, "!transfer Ana")
    back = await ana.next_message(guest)
    assert "transferred by Zoe" in back["body"]
    ana.send_message(guest, "Back with me")
    await patron.next("message", lambda f: f["text"] == "Back with me")


async def test_transfer_to_an_offline_colleague_is_refused(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    _patron, guest = await _chat(desk, ana)
    await ben.disconnect()
    reply = await _reply(ana, guest, f"!transfer {ben.bare_jid}")
    assert "offline" in reply


async def test_queue_commands(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    ben.set_presence("away")
    assert "Commands:" in await _reply(ana, QUEUE_JID, "!help")
    # A plain line is for the colleagues online (Ben is away, still online).
    ana.send_message(QUEUE_JID, "hello")
    assert (await ben.next_message(QUEUE_JID))["body"] == "Ana: hello"
    assert "Unknown command !bogus" in await _reply(ana, QUEUE_JID, "!bogus")
    assert await _reply(ana, QUEUE_JID, "!next") == "Nobody is waiting."
    assert await _reply(ana, QUEUE_JID, "!list") == "No open chats."

    patron = await desk.patron()
    await patron.say("Waiting for someone")
    offer = await ana.next_message()
    guest = offer["from"].bare
    listing = await _reply(ana, QUEUE_JID, "!list")
    assert guest in listing and "offered" in listing
    status = await _reply(ana, QUEUE_JID, "!status")
    assert "ask: available; 1 waiting" in status
    who = await _reply(ana, QUEUE_JID, "!who")
    assert "Ana" in who and "Ben" in who and "away" in who
    taken = await _reply(ana, QUEUE_JID, "!next")
    assert guest in taken and "Waiting for someone" in taken
    await patron.next("message", lambda f: f["from"] == "system" and "Ana" in f["text"])
    assert "with Ana" in await _reply(ana, QUEUE_JID, "!list")


async def test_canned_texts_and_ban_policy_on_a_queue(desk: Desk) -> None:
    """`!canned` gives the full texts (the browser client puts one in the message box for
    editing) and `!banpolicy` says what `!ban` will do; both as ad-hoc commands too."""
    ana = await desk.add_operator(name="Ana")
    canned = await _reply(ana, QUEUE_JID, "!canned")
    lines = canned.splitlines()
    assert any(line.startswith("greeting: Hello! Thanks for contacting us") for line in lines)
    assert any(line.startswith("goodbye-inappropriate: ") for line in lines)
    policy = await _reply(ana, QUEUE_JID, "!banpolicy")
    assert "operators ban directly" in policy and "30d, 90d, 1y" in policy
    store = desk.refdesk.store
    group = await store.groups.by_name("library")
    assert group is not None
    await store.groups.update(group.id, GroupUpdate(operators_may_ban=False))
    await desk.service.reload_directory()
    assert "reports the patron for an admin's review" in await _reply(ana, QUEUE_JID, "!banpolicy")
    ana.xmpp.register_plugin("xep_0004")
    ana.xmpp.register_plugin("xep_0050")
    result = await ana.xmpp.plugin["xep_0050"].send_command(QUEUE_JID, "canned", timeout=10)
    assert result["command"]["notes"][0][1] == canned


async def test_ad_hoc_commands_listed_and_executed(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    # Ad-hoc commands as a client with a commands menu (Gajim, Psi, Conversations) has them.
    ana.xmpp.register_plugin("xep_0004")
    ana.xmpp.register_plugin("xep_0050")
    adhoc = ana.xmpp.plugin["xep_0050"]
    items = await ana.xmpp.plugin["xep_0030"].get_items(
        jid=QUEUE_JID, node="http://jabber.org/protocol/commands", timeout=10
    )
    nodes = {item[1] for item in items["disco_items"]["items"]}
    assert {"list", "next", "who", "status"} <= nodes
    result = await adhoc.send_command(QUEUE_JID, "status", timeout=10)
    notes = result["command"]["notes"]
    assert notes and "ask: available" in notes[0][1]

    # Still there after the component reconnects (xep_0050 forgets them on bind).
    adapter = desk.refdesk.adapter
    sessions = adapter.sessions
    adapter.xmpp.abort()
    await wait_for(lambda: adapter.sessions > sessions, what="component back")
    items = await ana.xmpp.plugin["xep_0030"].get_items(
        jid=QUEUE_JID, node="http://jabber.org/protocol/commands", timeout=10
    )
    assert {"list", "next", "who", "status"} <= {i[1] for i in items["disco_items"]["items"]}

    # A stranger may not run them.
    from tests.test_chat_end_to_end import _stranger

    stranger = await _stranger(desk)
    stranger.xmpp.register_plugin("xep_0004")
    stranger.xmpp.register_plugin("xep_0050")
    try:
        await stranger.xmpp.plugin["xep_0050"].send_command(QUEUE_JID, "list", timeout=10)
    except Exception as exc:
        assert "forbidden" in str(exc) or "not an operator" in str(exc).lower(), exc
    else:
        raise AssertionError("a stranger ran a queue command")
