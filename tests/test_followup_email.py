"""Offline email fallback, referrals and transcript copies, with a real SMTP server
(aiosmtpd) and, where operators take part, a real XMPP server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from component.runner import Refdesk
from tests.conftest import Desk, wait_for
from tests.mail_sink import MailSink

FOLLOWUP = "followup@library.example"
REFERRAL = "ill@library.example"
PATRON = "pat.ron@example.net"


async def _post(desk: Desk, body: Any, queue: str = "ask", raw: bytes | None = None):  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as s:
        kwargs: dict[str, Any] = (
            {"data": raw, "headers": {"Content-Type": "application/json"}}
            if raw is not None
            else {"json": body}
        )
        async with s.post(f"{desk.url}/api/queues/{queue}/questions", **kwargs) as resp:
            return resp.status, await resp.json()


async def test_offline_question_makes_a_ticket_and_two_emails(
    offline_desk: Desk, mail_sink: MailSink
) -> None:
    desk = offline_desk
    await desk.set_queue("ask", followup_email=FOLLOWUP)
    status, body = await _post(
        desk, {"email": PATRON, "name": "Pat <Ron>", "question": "Do you have <b>1920s</b> maps?"}
    )
    assert status == 201, body
    ticket = body["ticket"]
    mails = await mail_sink.wait_for(2)
    to_staff = mail_sink.to(FOLLOWUP)[0]
    assert to_staff.message["Reply-To"].addresses[0].addr_spec == PATRON
    assert f"#{ticket}" in to_staff.message["Subject"]
    assert "Do you have <b>1920s</b> maps?" in to_staff.text()
    assert "&lt;b&gt;1920s&lt;/b&gt;" in to_staff.html()
    assert "<b>1920s</b>" not in to_staff.html()
    confirmation = mail_sink.to(PATRON)[0]
    assert "Do you have <b>1920s</b> maps?" in confirmation.text()
    assert len(mails) == 2
    assert {m.mail_from for m in mails} == {"desk@library.example"}
    stored = await desk.refdesk.store.tickets.get(ticket)
    assert stored is not None and stored.email == PATRON and stored.kind == "offline"


async def test_smtp_down_then_up_delivers_exactly_once(
    offline_desk: Desk, mail_sink: MailSink
) -> None:
    desk = offline_desk
    await desk.set_queue("ask", followup_email=FOLLOWUP)
    mail_sink.stop()
    status, _ = await _post(desk, {"email": PATRON, "question": "Are you open Sunday?"})
    assert status == 201  # the patron is told the question was received
    store = desk.refdesk.store
    await wait_for_async(lambda: _attempted(store), "a failed first attempt")
    pending = await store.mail.all("pending")
    assert len(pending) == 2 and all(m.last_error for m in pending)

    mail_sink.start()
    # Time passes (the injected clock): the retries are due; the worker sends them.
    desk.clock.set(datetime.now(UTC) + timedelta(hours=2))
    desk.refdesk.outbox.wake()
    await mail_sink.wait_for(2)
    # Another pass finds nothing left to send: exactly once.
    assert await desk.refdesk.outbox.send_due() == 0
    assert len(mail_sink.received) == 2
    assert [m.status for m in await store.mail.all()] == ["sent", "sent"]


async def test_an_email_being_handed_over_at_shutdown_is_not_sent_again(
    offline_desk: Desk, mail_sink: MailSink
) -> None:
    """refdesk stops while the SMTP server has taken an email but not yet answered: the
    outbox lets the hand-over finish and marks it sent, so the next start does not send
    it again (it used to be cancelled mid-send and resent after every restart)."""
    desk = offline_desk
    await desk.set_queue("ask", followup_email=FOLLOWUP)
    mail_sink.reply_delay = 1.0
    status, _ = await _post(desk, {"email": PATRON, "question": "Are you open Sunday?"})
    assert status == 201
    await mail_sink.wait_for(1)  # the first one is taken; its answer is held back
    await desk.refdesk.stop()
    mail_sink.reply_delay = 0.0
    desk.refdesk = Refdesk(desk.refdesk.config, clock=desk.clock)
    await desk.refdesk.start()
    await desk.refdesk.outbox.send_due()
    # The staff copy and the patron's confirmation, each once.
    assert sorted(r for m in mail_sink.received for r in m.rcpt_tos) == sorted([FOLLOWUP, PATRON])
    assert [m.status for m in await desk.refdesk.store.mail.all()] == ["sent", "sent"]


async def _attempted(store) -> bool:  # type: ignore[no-untyped-def]
    return all(m.attempts >= 1 for m in await store.mail.all("pending")) and bool(
        await store.mail.all("pending")
    )


async def wait_for_async(check, what: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": PATRON, "question": ""}, "question"),
        ({"email": PATRON, "question": "   "}, "question"),
        ({"email": PATRON}, "question"),
        ({"email": PATRON, "question": "x" * 4001}, "question"),
        ({"email": PATRON, "question": "bell \u0001"}, "question"),
        ({"email": "", "question": "Hi"}, "email"),
        ({"email": "not-an-address", "question": "Hi"}, "email"),
        ({"email": "a@b.org\r\nBcc: victim@example.org", "question": "Hi"}, "email"),
        ({"email": "a@b.org, c@d.org", "question": "Hi"}, "email"),
        ({"email": "Eve <eve@example.org>", "question": "Hi"}, "email"),
        ({"email": "x" * 250 + "@example.org", "question": "Hi"}, "email"),
        ({"email": ["a@b.org"], "question": "Hi"}, "email"),
        ({"email": PATRON, "question": "Hi", "name": "n" * 101}, "name"),
        ({"email": PATRON, "question": "Hi", "name": "Eve\r\nBcc: victim@example.org"}, "name"),
    ],
)
async def test_bad_form_input_is_refused_and_nothing_is_sent(
    offline_desk: Desk, mail_sink: MailSink, body: dict[str, Any], field: str
) -> None:
    await offline_desk.set_queue("ask", followup_email=FOLLOWUP)
    status, reply = await _post(offline_desk, body)
    assert status == 400, reply
    assert reply["field"] == field and reply["error"]
    assert await offline_desk.refdesk.store.mail.all() == []
    assert await offline_desk.refdesk.store.tickets.all() == []


async def test_form_edge_cases(offline_desk: Desk) -> None:
    desk = offline_desk
    # A queue that takes no email.
    status, reply = await _post(desk, {"email": PATRON, "question": "Hi"})
    assert status == 404 and "email" in reply["error"]
    status, reply = await _post(desk, {"email": PATRON, "question": "Hi"}, queue="nope")
    assert status == 404
    await desk.set_queue("ask", followup_email=FOLLOWUP)
    status, reply = await _post(desk, None, raw=b"{not json")
    assert status == 400 and reply["field"] is None
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{desk.url}/api/queues/ask/questions", data=b"x" * 200_000) as resp:
            assert resp.status == 413
        form = {"email": PATRON, "question": "From a plain HTML form"}
        async with s.post(f"{desk.url}/api/queues/ask/questions", data=form) as resp:
            assert resp.status == 201


async def test_max_wait_offers_email_with_the_chat_attached(
    desk: Desk, mail_sink: MailSink
) -> None:
    await desk.set_queue("ask", followup_email=FOLLOWUP, max_wait=0.5)
    op = await desk.add_operator(name="Ana")
    op.set_presence("away")
    await wait_for(lambda: desk.service.queue_info("ask").status.value == "away", what="away")
    patron = await desk.patron()
    await patron.say("How do I renew a book?")
    offer = await patron.next("offer_email", timeout=10)
    assert "email" in offer["text"]
    status, _body = await _post(
        desk, {"email": PATRON, "question": "How do I renew a book?", "resume": patron.resume}
    )
    assert status == 201
    ended = await patron.next("ended")
    assert "sent by email" in ended["text"]
    await mail_sink.wait_for(2)
    staff = mail_sink.to(FOLLOWUP)[0]
    assert "How do I renew a book?" in staff.text()
    chat = await desk.refdesk.store.chats.by_id(patron.chat_id or 0)
    assert chat is not None and chat.state.value == "followed-up"


async def test_refer_and_transcript_copy(desk: Desk, mail_sink: MailSink) -> None:
    await desk.set_queue("ask", followup_email=FOLLOWUP, referral_email=REFERRAL)
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    await patron.say("I need an interlibrary loan for <Journal of X>")
    offer = await op.next_message()
    guest = offer["from"].bare
    op.send_message(guest, "Let me refer that.")
    await patron.next("message", lambda f: f["from"] == "operator")
    assert "You took this chat" in (await op.next_message(guest))["body"]

    # The patron asks for a copy before the end; a bad address is refused clearly.
    await patron.send({"type": "transcript", "email": "nope"})
    assert (await patron.next("error"))["code"] == "bad_email"
    await patron.send({"type": "transcript", "email": PATRON})
    assert (await patron.next("transcript_ok"))["email"] == PATRON

    op.send_message(guest, "!note wants vol. 3")
    await op.next_message(guest)
    op.send_message(guest, "!refer")
    confirmation = await op.next_message(guest)
    assert f"Referred to {REFERRAL}" in confirmation["body"]
    told = await patron.next("message", lambda f: "referred" in f["text"])
    assert PATRON in told["text"]
    referral = (await mail_sink.wait_for(1))[0]
    assert referral.rcpt_tos == [REFERRAL]
    assert referral.message["Reply-To"].addresses[0].addr_spec == PATRON
    assert "I need an interlibrary loan for <Journal of X>" in referral.text()
    assert "wants vol. 3" in referral.text()  # staff see the notes
    op.send_message(guest, "!refer not-an-address")
    assert "not-an-address" in (await op.next_message(guest))["body"]

    op.send_message(guest, "!end")
    await patron.next("ended")
    await mail_sink.wait_for(2)
    copy = mail_sink.to(PATRON)[0]
    assert "I need an interlibrary loan for <Journal of X>" in copy.text()
    assert "Let me refer that." in copy.text()
    assert "wants vol. 3" not in copy.text()  # the patron never sees staff notes
    assert len(mail_sink.to(PATRON)) == 1


# English wording of the transcript copy that a Spanish copy must not carry.
ENGLISH_BOILERPLATE = (
    "Your chat",
    "Here is a copy",
    "You received this email",
    "times in",
    "You:",
    "(corrected)",
    "joined the chat",
    "ended the chat",
)


async def test_a_spanish_chats_transcript_copy_is_worded_in_spanish(
    desk: Desk, mail_sink: MailSink
) -> None:
    """The widget says its language with the request; the copy's subject, headings, the
    patron's name and the service's own lines come in it, while what the operator and the
    patron wrote stays as written. Any other language value gets the English copy."""
    op = await desk.add_operator(name="Ana")
    patron = await desk.patron()
    await patron.say("¿Tienen mapas antiguos? <b>1920</b>")
    guest = (await op.next_message())["from"].bare
    op.send_message(guest, "Let me check the catalogue.")
    await patron.next("message", lambda f: f["from"] == "operator")
    await op.next_message(guest)  # "You took this chat"
    await patron.send({"type": "transcript", "email": PATRON, "lang": "es-MX"})
    assert (await patron.next("transcript_ok"))["email"] == PATRON
    op.send_message(guest, "!end")
    await patron.next("ended")
    (copy,) = await mail_sink.wait_for(1)
    assert copy.rcpt_tos == [PATRON]
    assert copy.message["Subject"] == "Su chat con Ask us (ask)"
    text, html = copy.text(), copy.html()
    assert "Aquí tiene una copia de su chat con Ask us (ask), como pidió." in text
    assert "Su chat (horas en UTC)" in text
    assert "] Usted: ¿Tienen mapas antiguos? <b>1920</b>" in text
    assert "] Ana: Let me check the catalogue." in text
    assert "Ana terminó el chat." in text
    assert "Recibe este correo porque se pidió una copia" in text
    assert '<html lang="es">' in html and "&lt;b&gt;1920&lt;/b&gt;" in html
    for english in ENGLISH_BOILERPLATE:
        assert english not in text and english not in html, english

    # Hostile or unknown language values: accepted, and the copy is in English.
    other = await desk.patron()
    await other.say("hello from a French page")
    offer = await op.next_message(timeout=10)
    while "hello from a French page" not in offer["body"]:
        offer = await op.next_message(timeout=10)
    guest = offer["from"].bare
    op.send_message(guest, "Hi.")
    await other.next("message", lambda f: f["from"] == "operator")
    for lang in ({"es": 1}, ["es"], "es" * 1000, "fr", None):
        await other.send({"type": "transcript", "email": "other@example.net", "lang": lang})
        assert (await other.next("transcript_ok"))["email"] == "other@example.net"
    # A lone surrogate is refused at the edge, like anywhere else in a frame.
    await other.send({"type": "transcript", "email": "other@example.net", "lang": "\ud800"})
    assert (await other.next("error"))["code"] == "illegal_characters"
    op.send_message(guest, "!end")
    await other.next("ended")
    await mail_sink.wait_for(2)
    (english,) = mail_sink.to("other@example.net")
    assert english.message["Subject"] == "Your chat with Ask us (ask)"
    assert "Here is a copy" in english.text() and "Your chat (times in UTC)" in english.text()
