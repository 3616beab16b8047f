"""The moderation loop end to end, with real XMPP clients (on Prosody and ejabberd), a
real SMTP server and patrons on the widget's WebSocket: referral limits per group, sticky
pickup of a returning patron, and the shared-computer contacts of exempt networks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from component.config import LimitsConfig
from component.directory import Directory, GroupChange, NewExempt, NewGroup
from tests.conftest import Desk
from tests.mail_sink import MailSink
from tests.operator_client import OperatorClient
from tests.patron_client import ProxiedPatron
from tests.test_directory_parity import admin_session

REFERRAL = "ill@library.example"
TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
# An offer time-out that never falls due during a test, and no other timer of the
# service uses: a test that needs it fires it (`fire_now`); the others only need an
# operator to hold the offer while they look.
OFFER_TIMEOUT = 4321.0


async def _patron(desk: Desk, ip: str) -> ProxiedPatron:
    patron = ProxiedPatron(desk.url, "ask", ip)
    desk.patrons.append(patron)
    await patron.connect()
    return patron


async def _set_group(desk: Desk, change: GroupChange) -> None:
    directory = Directory.for_service(desk.service)
    await directory.change_group(await directory.group_named("library"), change)


# --- referral limits ---------------------------------------------------------------------


@pytest.mark.desk_config(
    trusted_proxies=("127.0.0.1",),
    limits=LimitsConfig(mails_per_recipient=2, mails_per_address=10, mail_window=3600.0),
)
async def test_refer_goes_only_to_the_groups_domains_and_is_rate_limited(
    desk: Desk, mail_sink: MailSink
) -> None:
    await _set_group(desk, GroupChange(referral_domains="library.example, example.edu"))
    op = await desk.add_operator(name="Ana")
    patron = await _patron(desk, "203.0.113.40")
    await patron.say("Please send my question to someone")
    guest = (await op.next_message())["from"].bare
    op.send_message(guest, "!accept")
    await op.next_message(guest)

    # Outside the allowed domains (a look-alike suffix included): refused, naming them.
    for outside in ("someone@evil.example", "ill@notlibrary.example"):
        op.send_message(guest, f"!refer {outside}")
        refused = (await op.next_message(guest))["body"]
        assert "library.example, example.edu" in refused and "Referred" not in refused
    # A subdomain of an allowed domain is the institution's.
    op.send_message(guest, "!refer ILL@branch.Library.example")
    assert "Referred to ILL@branch.library.example" in (await op.next_message(guest))["body"]
    (mail,) = await mail_sink.wait_for(1)
    assert mail.rcpt_tos == ["ILL@branch.library.example"]

    # Typed addresses count against the mail limits: the third to one recipient waits.
    op.send_message(guest, "!refer ill@example.edu")
    assert "Referred" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!refer ill@example.edu")
    assert "Referred" in (await op.next_message(guest))["body"]
    op.send_message(guest, "!refer ill@example.edu")
    refused = (await op.next_message(guest))["body"]
    assert "Not referred: Too many emails" in refused
    await mail_sink.wait_for(3)
    assert len(mail_sink.to("ill@example.edu")) == 2


# --- sticky pickup -----------------------------------------------------------------------


async def _offer_of(op: OperatorClient, text: str) -> Any:
    """The offer (or its first part) whose history has `text`."""
    while True:
        msg = await op.next_message(timeout=10)
        if text in msg["body"]:
            return msg


async def _chat_ended_by(desk: Desk, ana: OperatorClient, ip: str, how: list[str]) -> int:
    """A patron at `ip` asks; Ana takes the chat and ends it with the commands `how`.
    Returns the chat's number."""
    patron = await _patron(desk, ip)
    await patron.say(f"rude words from {ip}")
    guest = (await _offer_of(ana, f"rude words from {ip}"))["from"].bare
    ana.send_message(guest, "!accept")
    await ana.next_message(guest)
    for command in how:
        ana.send_message(guest, command)
        if not command.startswith("!c "):  # a canned text is the operator's own line
            await ana.next_message(guest)
    await patron.seen("ended")
    assert patron.chat_id is not None
    return patron.chat_id


def _offered_to(desk: Desk, guest: str) -> set[str]:
    live = desk.service.live_by_guest(guest.split("@", 1)[0])
    assert live is not None
    return set(live.offered_to)


@TRUSTED
async def test_a_returning_patron_is_offered_first_to_the_operator_who_ended_it(
    desk: Desk,
) -> None:
    # The offer time-out happens when the test says (`fire_now`): a real 1 s one could run
    # out, on a loaded machine, before the test had looked at who holds the first offer.
    await desk.set_queue("ask", offer_timeout=OFFER_TIMEOUT)
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    first = await _chat_ended_by(
        desk, ana, "203.0.113.50", ["!tag incident", "!c goodbye-inappropriate", "!end"]
    )

    back = await _patron(desk, "203.0.113.50")
    await back.say("me again")
    offer = await _offer_of(ana, "me again")
    guest = offer["from"].bare
    assert f"returning patron: your chat #{first}" in offer["body"]
    assert "tags: incident" in offer["body"]
    assert _offered_to(desk, guest) == {ana.bare_jid}  # Ana alone
    # Not taken within the offer timeout: routed as usual (Ben too; Ana keeps hers).
    assert desk.clock.fire_now(OFFER_TIMEOUT) == 1
    late = await _offer_of(ben, "me again")
    assert "not taken in time by the earlier operator" in late["body"]
    assert _offered_to(desk, guest) == {ana.bare_jid, ben.bare_jid}

    # Someone else (another address) is routed as usual at once.
    other = await _patron(desk, "198.51.100.9")
    await other.say("a real question")
    offer = await _offer_of(ben, "a real question")
    assert "returning patron" not in offer["body"]
    assert _offered_to(desk, offer["from"].bare) == {ana.bare_jid, ben.bare_jid}


@TRUSTED
async def test_sticky_pickup_remembers_only_what_the_privacy_mode_keeps(desk: Desk) -> None:
    """'network' remembers the /24 (a neighbour on it goes to the same operator first);
    'none' remembers nothing at all."""
    await desk.set_queue(
        "ask", privacy="network", routing="round-robin", offer_timeout=OFFER_TIMEOUT
    )
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    first = await _chat_ended_by(desk, ana, "203.0.113.60", ["!c goodbye-inappropriate", "!end"])
    marks = await desk.refdesk.store.sticky.current(datetime.now(UTC))
    assert [(m.key, m.chat_id) for m in marks] == [("203.0.113.0/24", first)]

    # Round-robin would pick Ben (Ana has had a chat); the returning network goes to Ana.
    neighbour = await _patron(desk, "203.0.113.61")
    await neighbour.say("from the same network")
    offer = await _offer_of(ana, "from the same network")
    assert f"your chat #{first} ended with goodbye-inappropriate" in offer["body"]
    ana.send_message(offer["from"].bare, "!accept")
    await ana.next_message(offer["from"].bare)

    await desk.set_queue("ask", privacy="none", routing="ring-all")
    await _chat_ended_by(desk, ben, "192.0.2.70", ["!c goodbye-inappropriate", "!end"])
    marks = await desk.refdesk.store.sticky.current(datetime.now(UTC))
    assert all(m.operator_jid != ben.bare_jid for m in marks)
    again = await _patron(desk, "192.0.2.70")
    await again.say("remembered?")
    offer = await _offer_of(ben, "remembered?")
    assert "returning patron" not in offer["body"]


@TRUSTED
async def test_ban_makes_the_operator_sticky_for_the_patrons_network(desk: Desk) -> None:
    """`!ban` remembers the operator too: once the ban is lifted the patron's next chat
    goes to them first."""
    await desk.set_queue("ask", offer_timeout=OFFER_TIMEOUT)
    ana = await desk.add_operator(name="Ana")
    await desk.add_operator(name="Ben")
    first = await _chat_ended_by(desk, ana, "203.0.113.90", ["!ban spam links"])
    assert len(await desk.refdesk.store.bans.all()) == 1
    await desk.service.moderation.lift("203.0.113.90", actor="admin", detail="appeal upheld")
    back = await _patron(desk, "203.0.113.90")
    await back.say("sorry about that")
    offer = await _offer_of(ana, "sorry about that")
    assert f"your chat #{first} ended with !ban" in offer["body"]
    assert _offered_to(desk, offer["from"].bare) == {ana.bare_jid}


# --- shared-computer contacts ------------------------------------------------------------

CONTACT = "librarian@school.example"
SCHOOL = "203.0.113.0/28"


async def _school_exempt(desk: Desk) -> None:
    directory = Directory.for_service(desk.service)
    group = await directory.group_named("library")
    await directory.add_exempt(group, NewExempt(SCHOOL, "Northside School PCs", CONTACT))


async def _incidents_from_school(desk: Desk, ana: OperatorClient) -> str:
    """Two chats from the school's computers end in incidents; returns the operator's
    answer to the second."""
    patron = await _patron(desk, "203.0.113.5")
    await patron.say("first rude line <b>")
    guest = (await _offer_of(ana, "first rude line"))["from"].bare
    ana.send_message(guest, "!accept")
    await ana.next_message(guest)
    ana.send_message(guest, "!ban spam")
    first = (await ana.next_message(guest))["body"]
    assert "exempt network" in first and "drafted" not in first
    other = await _patron(desk, "203.0.113.6")
    await other.say("second rude line")
    guest = (await _offer_of(ana, "second rude line"))["from"].bare
    ana.send_message(guest, "!accept")
    await ana.next_message(guest)
    ana.send_message(guest, "!tag incident")
    return str((await ana.next_message(guest))["body"])


async def _group_page(session: aiohttp.ClientSession, desk: Desk) -> str:
    async with session.get(f"{desk.url}/admin/groups/library") as resp:
        assert resp.status == 200
        return await resp.text()


@TRUSTED
async def test_repeated_incidents_from_a_school_draft_a_message_an_admin_sends(
    desk: Desk, mail_sink: MailSink
) -> None:
    await _school_exempt(desk)
    ana = await desk.add_operator(name="Ana")
    answer = await _incidents_from_school(desk, ana)
    assert "message to its contact is drafted for an admin (draft #1)" in answer
    assert await desk.refdesk.store.bans.all() == []  # a school is not banned

    session, token = await admin_session(desk)
    async with session:
        page = await _group_page(session, desk)
        assert f"To {CONTACT} about <code>{SCHOOL}</code>" in page
        assert "2 incidents" in page and "Northside School PCs" in page
        assert "rude line" not in page  # described, never quoted
        url = f"{desk.url}/admin/groups/library/contact-drafts/1/send"
        edited = "Hello,\n\nTwo incidents from your PCs this week. <Please> remind users."
        # Without the CSRF token: refused, nothing sent.
        async with session.post(url, data={"body": edited}) as resp:
            assert resp.status == 403
        # Hostile text is refused with a clear error next to the field.
        async with session.post(url, data={"body": "x\x00y", "csrf": token}) as resp:
            assert resp.status == 400
            assert "printable characters" in await resp.text()
        async with session.post(url, data={"body": edited, "csrf": token}) as resp:
            assert resp.status == 200 and resp.url.path == "/admin/groups/library"
            assert f"The message to {CONTACT} is on its way." in await resp.text()
        (mail,) = await mail_sink.wait_for(1)
        assert mail.rcpt_tos == [CONTACT]
        assert "<Please> remind users." in mail.text()
        assert "incidents from your network" in mail.message["Subject"]
        page = await _group_page(session, desk)
        assert "&lt;Please&gt; remind users." in page and "sent" in page
        # Sent once only.
        async with session.post(url, data={"body": edited, "csrf": token}) as resp:
            assert resp.status == 400
            assert "sent already" in await resp.text()
    assert len(mail_sink.to(CONTACT)) == 1


@pytest.mark.desk_config(trusted_proxies=("127.0.0.1",), bans={"repeated_incidents": 3})
async def test_the_repeated_incidents_setting_decides_when_a_draft_is_made(
    desk: Desk,
) -> None:
    """With `[bans] repeated_incidents = 3`, two incidents from the school draft nothing;
    the third does, and the group page states the configured number."""
    await _school_exempt(desk)
    ana = await desk.add_operator(name="Ana")
    answer = await _incidents_from_school(desk, ana)
    assert "drafted" not in answer
    assert await desk.refdesk.store.exempt_contacts.drafts(1) == []
    third = await _patron(desk, "203.0.113.7")
    await third.say("third rude line")
    guest = (await _offer_of(ana, "third rude line"))["from"].bare
    ana.send_message(guest, "!accept")
    await ana.next_message(guest)
    ana.send_message(guest, "!tag incident")
    answer = str((await ana.next_message(guest))["body"])
    assert "message to its contact is drafted for an admin (draft #1)" in answer
    session, _token = await admin_session(desk)
    async with session:
        assert "(3 or more within 30 days)" in await _group_page(session, desk)


@TRUSTED
async def test_a_contact_draft_is_sent_once_from_its_own_group_only(
    desk: Desk, mail_sink: MailSink
) -> None:
    """Another group's address for the draft's id finds nothing, and two sends of the same
    draft at once (a double click, a replayed request) send one message."""
    await _school_exempt(desk)
    directory = Directory.for_service(desk.service)
    await directory.add_group(NewGroup("other", "Other Library"))
    ana = await desk.add_operator(name="Ana")
    await _incidents_from_school(desk, ana)
    session, token = await admin_session(desk)
    async with session:
        elsewhere = f"{desk.url}/admin/groups/other/contact-drafts/1/send"
        async with session.post(elsewhere, data={"body": "Hello", "csrf": token}) as resp:
            assert resp.status == 404
        for bad_id in (
            "0",
            "-1",
            "99999999999999999999999",
            "10000000000000000000",
            "1e3",
            "1_0",
            "%2e%2e",
        ):
            url = f"{desk.url}/admin/groups/library/contact-drafts/{bad_id}/send"
            async with session.post(url, data={"body": "Hello", "csrf": token}) as resp:
                assert resp.status == 404, bad_id
        url = f"{desk.url}/admin/groups/library/contact-drafts/1/send"

        async def send() -> int:
            async with session.post(url, data={"body": "Hello", "csrf": token}) as resp:
                return resp.status

        statuses = sorted(await asyncio.gather(send(), send(), send()))
        assert statuses == [200, 400, 400]
        await mail_sink.wait_for(1)
        # The page still answers everyone after the refused attempts.
        assert "sent" in await _group_page(session, desk)
    assert len(mail_sink.to(CONTACT)) == 1


@pytest.mark.desk_config(trusted_proxies=("127.0.0.1",), limits=LimitsConfig(mails_per_recipient=1))
async def test_a_contact_message_waits_within_the_mail_limits(
    desk: Desk, mail_sink: MailSink
) -> None:
    await _school_exempt(desk)
    ana = await desk.add_operator(name="Ana")
    await _incidents_from_school(desk, ana)
    # The contact has had its mail for now (as if another message just went).
    await desk.service.moderation.admit_mail(None, CONTACT, None)
    session, token = await admin_session(desk)
    async with session:
        url = f"{desk.url}/admin/groups/library/contact-drafts/1/send"
        async with session.post(url, data={"body": "Hello", "csrf": token}) as resp:
            assert resp.status == 429
            assert "Too many emails" in await resp.text()
    draft = await desk.refdesk.store.exempt_contacts.draft(1, 1)
    assert draft is not None and draft.status == "draft"
    # An admin's message raises no rate-limit incident (only the patrons' two remain).
    kinds = sorted(i.kind for i in await desk.refdesk.store.incidents.all())
    assert kinds == ["exempt-network", "tagged"]
    assert await desk.refdesk.store.mail.all() == []


@TRUSTED
async def test_a_returning_patron_is_routed_as_usual_when_their_operator_is_full(
    desk: Desk,
) -> None:
    """The earlier operator gets the first offer only while they have room."""
    ana = await desk.add_operator(name="Ana", max_chats=1)
    ben = await desk.add_operator(name="Ben")
    await _chat_ended_by(desk, ana, "203.0.113.95", ["!c goodbye-inappropriate", "!end"])
    busy = await _patron(desk, "198.51.100.95")
    await busy.say("a long question")
    guest = (await _offer_of(ana, "a long question"))["from"].bare
    ana.send_message(guest, "!accept")
    await ana.next_message(guest)  # Ana is at her limit now
    back = await _patron(desk, "203.0.113.95")
    await back.say("back again")
    offer = await _offer_of(ben, "back again")
    assert "returning patron" not in offer["body"]
    assert _offered_to(desk, offer["from"].bare) == {ben.bare_jid}
