"""What refdesk leaves in operators' server-side archives (XEP-0313), end to end.

Offers and the notices about them ("… took this chat", "Offer withdrawn") only matter
while they are live: archived, they fill every available operator's archive with about
two messages per chat offered, and a client catching up from the archive after a
reconnection scrolls through stale offers. refdesk marks them with the XEP-0334 hint
both Prosody's and ejabberd's mod_mam honour; the chat's own lines stay archived.

Each test queries the operators' archives with a real MAM query from their own clients,
on Prosody and on ejabberd (the `desk` fixture is parametrized over both).
"""

from __future__ import annotations

import asyncio
import itertools
import xml.etree.ElementTree as ET

from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from tests.conftest import Desk
from tests.operator_client import OperatorClient

NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CLIENT = "jabber:client"
_query_ids = itertools.count(1)


async def archive_everything(op: OperatorClient) -> None:
    """Ask the operator's server to archive every message (XEP-0313 preferences), as a
    client that uses the archive does: ejabberd's default preference archives nothing."""
    iq = op.xmpp.make_iq_set()
    iq.append(ET.Element(f"{{{NS_MAM}}}prefs", {"default": "always"}))
    await iq.send(timeout=10)


async def archived_bodies(op: OperatorClient, with_jid: str) -> list[str]:
    """The bodies of every message in the operator's archive exchanged with `with_jid`,
    oldest first: one MAM query, its results collected until the server's answer."""
    query_id = f"q{next(_query_ids)}"
    found: list[str] = []

    def on_result(msg: object) -> None:
        xml = msg.xml  # type: ignore[attr-defined]
        result = xml.find(f"{{{NS_MAM}}}result")
        if result is None or result.get("queryid") != query_id:
            return
        body = result.find(f"{{{NS_FORWARD}}}forwarded/{{{NS_CLIENT}}}message/{{{NS_CLIENT}}}body")
        if body is not None and body.text:
            found.append(body.text)

    name = f"mam {query_id}"
    op.xmpp.register_handler(
        Callback(name, MatchXPath(f"{{{NS_CLIENT}}}message/{{{NS_MAM}}}result"), on_result)
    )
    try:
        iq = op.xmpp.make_iq_set()
        query = ET.SubElement(iq.xml, f"{{{NS_MAM}}}query", {"queryid": query_id})
        form = ET.SubElement(query, "{jabber:x:data}x", {"type": "submit"})
        for var, value in (("FORM_TYPE", NS_MAM), ("with", with_jid)):
            field = ET.SubElement(form, "{jabber:x:data}field", {"var": var})
            if var == "FORM_TYPE":
                field.set("type", "hidden")
            ET.SubElement(field, "{jabber:x:data}value").text = value
        await iq.send(timeout=10)
        # The results precede the answer on the stream; let their handlers run.
        await asyncio.sleep(0)
    finally:
        op.xmpp.remove_handler(name)
    return found


async def test_offers_and_their_notices_stay_out_of_the_archive(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    for op in (ana, ben):
        await archive_everything(op)
    patron = await desk.patron()

    await patron.say("Where are the atlases?")
    offer = await ana.next_message()
    guest = offer["from"].bare
    assert "New chat" in offer["body"]
    assert "New chat" in (await ben.next_message(guest))["body"]

    ana.send_message(guest, "Second floor, by the windows.")
    assert "Ana took this chat" in (await ben.next_message(guest))["body"]
    assert "You took this chat" in (await ana.next_message(guest))["body"]
    await patron.next("message", lambda f: f["text"] == "Second floor, by the windows.")
    await patron.say("Thanks! And maps?")
    assert (await ana.next_message(guest))["body"] == "Thanks! And maps?"

    # The chat's own lines are archived both ways: the operator may scroll back.
    ana_archive = await archived_bodies(ana, guest)
    assert "Thanks! And maps?" in ana_archive
    assert "Second floor, by the windows." in ana_archive
    # The offer and the notices about who has the chat are not, for either of them.
    assert not [b for b in ana_archive if "New chat" in b or "took this chat" in b]
    assert await archived_bodies(ben, guest) == []


async def test_a_withdrawn_offer_leaves_nothing_in_the_archive(desk: Desk) -> None:
    ana = await desk.add_operator(name="Ana")
    await archive_everything(ana)
    patron = await desk.patron()
    await patron.say("Is anyone there?")
    guest = (await ana.next_message())["from"].bare

    # Away: the offer is withdrawn, with a notice.
    ana.set_presence("away")
    withdrawn = await ana.next_message(guest)
    assert "Offer withdrawn" in withdrawn["body"]

    assert await archived_bodies(ana, guest) == []
