"""Mail that patrons can cause, attacked through the real entry points: floods of
transcript requests and questions to many addresses, banned patrons asking for mail,
and header injection through names and titles. Everything goes through the WebSocket,
long-poll or form endpoint to a real SMTP server (aiosmtpd); headers are read from the
raw bytes it received.

Patrons' addresses are set with X-Forwarded-For from loopback, a trusted proxy here."""

from __future__ import annotations

from email.header import decode_header, make_header
from typing import Any

import aiohttp
import pytest

from component.config import LimitsConfig
from tests.conftest import Desk, wait_for
from tests.mail_sink import Delivered, MailSink
from tests.patron_client import PatronClient, ProxiedPatron

FOLLOWUP = "followup@library.example"
REFERRAL = "ill@library.example"
TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
# Python 3.11's email package decodes this into CR LF inside the header value and writes
# it out raw: the attack that put an extra header and a new body into staff email.
INJECTION = "=?utf-8?q?Pat=0D=0AX-Injected:_yes=0D=0A=0D=0Aevil_body?="
HOSTILE_TITLES = (
    INJECTION,
    "=?utf-8?b?QXNrDQpYLUluamVjdGVkOiB5ZXMNCg0KZXZpbCBib2R5?=",
    "Ask\r\nX-Injected: yes\r\n\r\nevil body",
    "Ask\u2028X-Injected: yes",
    "Ask =?utf-8?q?=0AX-Injected:_yes?= us",
)


async def _patron(desk: Desk, ip: str) -> ProxiedPatron:
    patron = ProxiedPatron(desk.url, "ask", ip)
    desk.patrons.append(patron)
    await patron.connect()
    return patron


async def _answers(patron: PatronClient, count: int) -> list[dict[str, Any]]:
    """The first `count` answers to transcript requests, in order."""

    def answers() -> list[dict[str, Any]]:
        return [f for f in patron.frames if f["type"] in ("transcript_ok", "error")]

    await wait_for(lambda: len(answers()) >= count, what=f"{count} answers")
    return answers()[:count]


async def _post_question(desk: Desk, ip: str, body: dict[str, Any]) -> tuple[int, Any]:
    url = f"{desk.url}/api/queues/ask/questions"
    async with (
        aiohttp.ClientSession(headers={"X-Forwarded-For": ip}) as s,
        s.post(url, json=body) as resp,
    ):
        return resp.status, await resp.json()


def raw_headers(raw: bytes) -> list[tuple[str, str]]:
    """The top-level headers of a message exactly as they came over SMTP: (name, value)
    with folded lines joined. Fails on anything but CRLF line ends or a non-ASCII byte."""
    head, sep, _body = raw.partition(b"\r\n\r\n")
    assert sep, "no blank line between headers and body"
    headers: list[tuple[str, str]] = []
    for line in head.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line, line
        text = line.decode("ascii")
        if text[:1] in (" ", "\t"):
            name, value = headers[-1]
            headers[-1] = (name, value + text)
            continue
        name, colon, value = text.partition(":")
        assert colon and name and name == name.strip(), text
        headers.append((name, value))
    # Unfolding removes only the CRLF; the space after the colon is not part of the value.
    return [(name, value.strip()) for name, value in headers]


def check_mail(mail: Delivered, names: list[str], subject: str | None = None) -> dict[str, str]:
    """Assert that the raw message has exactly the headers `names` (in order), that no
    header value decodes to a line break, and that the body is one plain and one HTML
    part and nothing else. Returns the decoded header values by name."""
    headers = raw_headers(mail.raw)
    assert [name for name, _ in headers] == names, headers
    decoded = {name: str(make_header(decode_header(value))) for name, value in headers}
    for name, value in decoded.items():
        assert "\r" not in value and "\n" not in value, (name, value)
        assert "X-Injected" not in value or name in ("Subject", "From", "Reply-To"), name
    if subject is not None:
        assert decoded["Subject"] == subject
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    assert all("x-injected" not in (k.lower() for k in part) for part in message.walk())
    assert not mail.text().startswith("evil")
    return decoded


TICKET_HEADERS = [
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
]
COPY_HEADERS = [
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
]
AUTOMATIC_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
]


# --- one transcript address per chat, none for the banned ------------------------------


@TRUSTED
async def test_transcript_requests_after_the_end_mail_once(
    offline_desk: Desk, mail_sink: MailSink
) -> None:
    desk = offline_desk
    patron = await _patron(desk, "203.0.113.20")
    await patron.say("hello?")
    await patron.send({"type": "end"})
    await patron.next("ended")
    # The attack as reported: 100 frames, 100 addresses, after one ended chat.
    for i in range(100):
        await patron.send({"type": "transcript", "email": f"victim{i}@example.net"})
    answers = await _answers(patron, 100)
    assert answers[0] == {"type": "transcript_ok", "email": "victim0@example.net"}
    refused = answers[1:]
    assert all(f["type"] == "error" and f["code"] == "transcript_sent" for f in refused)
    assert "already" in refused[0]["text"]
    await mail_sink.wait_for(1)
    mails = await desk.refdesk.store.mail.all()
    assert [m.recipients for m in mails] == [("victim0@example.net",)]


@TRUSTED
async def test_a_new_transcript_address_replaces_the_old_one(
    offline_desk: Desk, mail_sink: MailSink
) -> None:
    desk = offline_desk
    patron = await _patron(desk, "203.0.113.21")
    await patron.say("hello?")
    await patron.send({"type": "transcript", "email": "first@example.net"})
    await patron.send({"type": "transcript", "email": "second@example.net"})
    # The same address again is not a new request.
    await patron.send({"type": "transcript", "email": "second@example.net"})
    answers = await _answers(patron, 3)
    assert [f.get("email") for f in answers] == [
        "first@example.net",
        "second@example.net",
        "second@example.net",
    ]
    await patron.send({"type": "end"})
    await patron.next("ended")
    (copy,) = await mail_sink.wait_for(1)
    assert copy.rcpt_tos == ["second@example.net"]
    await patron.send({"type": "transcript", "email": "third@example.net"})
    assert (await _answers(patron, 4))[3]["code"] == "transcript_sent"
    assert len(await desk.refdesk.store.mail.all()) == 1


@TRUSTED
async def test_a_banned_patron_gets_no_transcript(desk: Desk, mail_sink: MailSink) -> None:
    op = await desk.add_operator(name="Ana")
    ip = "203.0.113.22"
    headers = {"X-Forwarded-For": ip}
    async with aiohttp.ClientSession(headers=headers) as s:
        # Long-poll: each frame POSTed is answered once the server has handled it.
        async with s.post(f"{desk.url}/lp/ask", data=b'{"type": "hello"}') as resp:
            assert resp.status == 200
            opened = await resp.json()
            sid = opened["session"]
            chat_id = next(f["chat"] for f in opened["frames"] if f["type"] == "welcome")

        async def send(frame: str, status: int = 200) -> None:
            async with s.post(f"{desk.url}/lp/ask/{sid}", data=frame.encode()) as resp:
                assert resp.status == status

        await send('{"type": "message", "id": "m1", "text": "rude"}')
        await send('{"type": "transcript", "email": "before@example.net"}')
        offer = await op.next_message()
        guest = offer["from"].bare
        op.send_message(guest, "!accept")
        await op.next_message(guest)
        op.send_message(guest, "!ban 30d abuse")
        assert "Banned" in (await op.next_message(guest))["body"]
        await wait_for(lambda: desk.service.moderation.banned(ip) is not None, what="the ban")
        await wait_for(lambda: not desk.service.chat_state(chat_id).open, what="the end")
        # The ban closed the session: what it still sends is refused.
        for i in range(15):
            await send(f'{{"type": "transcript", "email": "after{i}@example.net"}}', 403)
        async with s.get(f"{desk.url}/lp/ask/{sid}") as resp:
            frames = (await resp.json())["frames"]
    assert any(f["type"] == "banned" for f in frames)
    # No transcript copy and nothing to the addresses typed after the ban: the one email
    # is the ban notice (how to appeal) to the address given in the banned chat.
    await desk.service.idle()
    mails = await desk.refdesk.store.mail.all()
    assert [(m.purpose, m.recipients) for m in mails] == [("ban-notice", ("before@example.net",))]


# --- rate limits on every path that mails an address a patron typed ---------------------


@pytest.mark.desk_config(
    trusted_proxies=("127.0.0.1",),
    limits=LimitsConfig(
        chats_per_address=100,
        chats_per_network=100,
        mails_per_recipient=2,
        mails_per_address=3,
        mails_per_network=5,
        mail_window=3600.0,
    ),
)
async def test_mail_rate_limits_per_recipient_address_and_network(
    offline_desk: Desk, mail_sink: MailSink
) -> None:
    desk = offline_desk
    store = desk.refdesk.store
    await desk.set_queue("ask", followup_email=FOLLOWUP)
    question = {"email": "target@example.net", "question": "Hello?"}
    # One recipient, from networks far apart: the recipient's own limit.
    for ip in ("198.51.100.1", "192.0.2.1"):
        assert (await _post_question(desk, ip, question))[0] == 201
    status, body = await _post_question(desk, "203.0.113.1", question)
    assert status == 429 and "this email address" in body["error"]

    # One address, many recipients: the address's limit.
    for i in range(3):
        q = {"email": f"r{i}@example.net", "question": "Hello?"}
        assert (await _post_question(desk, "198.51.100.50", q))[0] == 201
    status, body = await _post_question(
        desk, "198.51.100.50", {"email": "r9@example.net", "question": "Hello?"}
    )
    assert status == 429

    # Transcripts from the same /24 (other addresses in it): the network's limit, with
    # one more allowed there (5 per network; 1 + 3 used above).
    patrons = [await _patron(desk, f"198.51.100.{60 + i}") for i in range(2)]
    for i, patron in enumerate(patrons):
        await patron.send({"type": "transcript", "email": f"copy{i}@example.net"})
    first, second = [(await _answers(p, 1))[0] for p in patrons]
    assert first["type"] == "transcript_ok"
    assert second["type"] == "error" and second["code"] == "rate_limited"
    assert "email" in second["text"]

    incidents = await store.incidents.all()
    assert {i.kind for i in incidents} == {"rate-limit"}
    assert all("excessive-email-requests" in i.tags for i in incidents)
    assert len(incidents) == 3
    # Every refusal left nothing behind: 2 + 3 questions, two mails each.
    assert len(await store.tickets.all()) == 5
    await mail_sink.wait_for(10)


# --- header injection --------------------------------------------------------------------


@TRUSTED
@pytest.mark.parametrize(
    "name",
    [INJECTION, "=?utf-8?b?UGF0DQpYLUluamVjdGVkOiB5ZXM=?=", "Pat =?iso-8859-1?q?x?= Ron"],
)
async def test_an_encoded_word_name_is_refused(
    offline_desk: Desk, mail_sink: MailSink, name: str
) -> None:
    desk = offline_desk
    await desk.set_queue("ask", followup_email=FOLLOWUP)
    status, body = await _post_question(
        desk, "203.0.113.30", {"email": "pat@example.net", "name": name, "question": "Hi"}
    )
    assert status == 400 and body["field"] == "name", body
    assert "=?" in body["error"]
    assert await desk.refdesk.store.mail.all() == []


@TRUSTED
@pytest.mark.parametrize("title", HOSTILE_TITLES)
async def test_a_hostile_queue_title_adds_no_header(
    offline_desk: Desk, mail_sink: MailSink, title: str
) -> None:
    desk = offline_desk
    # As a title stored before titles were checked would be.
    await desk.set_queue("ask", followup_email=FOLLOWUP, title=title)
    status, _ = await _post_question(
        desk,
        "203.0.113.31",
        {"email": "pat@example.net", "name": "Pat O'Ron", "question": "Maps?"},
    )
    assert status == 201
    patron = await _patron(desk, "203.0.113.32")
    await patron.say("A question")
    await patron.send({"type": "transcript", "email": "copy@example.net"})
    await patron.send({"type": "end"})
    await mail_sink.wait_for(3)
    staff = check_mail(mail_sink.to(FOLLOWUP)[0], TICKET_HEADERS)
    assert staff["Reply-To"] == "Pat O'Ron <pat@example.net>"
    assert staff["Subject"].startswith("[refdesk #") and "Question from" in staff["Subject"]
    assert "Maps?" in mail_sink.to(FOLLOWUP)[0].text()
    receipt = check_mail(mail_sink.to("pat@example.net")[0], AUTOMATIC_HEADERS)
    assert receipt["Subject"].startswith("We received your question to")
    copy = check_mail(mail_sink.to("copy@example.net")[0], COPY_HEADERS)
    assert copy["Subject"].startswith("Your chat with")
    assert "A question" in mail_sink.to("copy@example.net")[0].text()


@TRUSTED
async def test_a_hostile_title_in_a_referral_adds_no_header(
    desk: Desk, mail_sink: MailSink
) -> None:
    await desk.set_queue("ask", referral_email=REFERRAL, title=INJECTION)
    op = await desk.add_operator(name="Ana\u2028X-Injected: yes")
    patron = await _patron(desk, "203.0.113.33")
    await patron.say("Interlibrary loan please")
    offer = await op.next_message()
    guest = offer["from"].bare
    op.send_message(guest, "!accept")
    await op.next_message(guest)
    op.send_message(guest, "!refer")
    assert "Referred to" in (await op.next_message(guest))["body"]
    (referral,) = await mail_sink.wait_for(1)
    headers = check_mail(referral, [n for n in TICKET_HEADERS if n != "Reply-To"])
    assert "Referral from" in headers["Subject"]
    assert "Interlibrary loan please" in referral.text()


# --- the offline form's hostile bodies (the endpoint that mails staff and the patron) ----


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"[" * 30_000, None),  # deeper than the JSON parser goes
        (b'{"email": {"a": [[[[[]]]]]}, "question": "Hi"}', "email"),
        (b'["pat@example.net", "Hi"]', None),
        (b'"pat@example.net"', None),
        (b"null", None),
        (b'{"email": "pat@example.net", "question": "Hi", "name": 7}', "name"),
        (b'{"email": "pat@example.net", "question": ["Hi"]}', "question"),
        # Lone surrogates: the shared frame parser refuses the whole body.
        (b'{"email": "pat@example.net", "question": "Hi", "name": "\\ud800"}', None),
        (b'{"email": "pat\\udfff@example.net", "question": "Hi"}', None),
        (b'{"email": "pat@example.net", "question": "Hi \\udbff"}', None),
        (b'{"email": "pat@example.net", "question": "\xff\xfe"}', None),
    ],
)
async def test_hostile_form_bodies_get_a_400_and_no_mail(
    offline_desk: Desk, mail_sink: MailSink, raw: bytes, field: str | None
) -> None:
    desk = offline_desk
    await desk.set_queue("ask", followup_email=FOLLOWUP)
    async with aiohttp.ClientSession() as s:
        url = f"{desk.url}/api/queues/ask/questions"
        headers = {"Content-Type": "application/json"}
        async with s.post(url, data=raw, headers=headers) as resp:
            assert resp.status == 400, await resp.text()
            body = await resp.json()
        assert body["field"] == field and body["error"]
        # The endpoint goes on serving.
        good = {"email": "pat@example.net", "question": "Still there?"}
        async with s.post(url, json=good) as resp:
            assert resp.status == 201
    assert len(await desk.refdesk.store.tickets.all()) == 1


async def test_oversized_or_unmeasured_form_bodies_are_refused(
    offline_desk: Desk, mail_sink: MailSink
) -> None:
    desk = offline_desk
    await desk.set_queue("ask", followup_email=FOLLOWUP)
    url = f"{desk.url}/api/queues/ask/questions"
    headers = {"Content-Type": "application/json"}
    big = b'{"email": "pat@example.net", "question": "' + b"x" * 40_000 + b'"}'

    async def chunks() -> Any:
        yield b'{"email": "pat@example.net", "question": "Hi"}'

    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=big, headers=headers) as resp:
            assert resp.status == 413 and (await resp.json())["error"]
        # No Content-Length (chunked): the size cannot be checked before reading.
        async with s.post(url, data=chunks(), headers=headers) as resp:
            assert resp.status == 411 and (await resp.json())["error"]
    assert await desk.refdesk.store.mail.all() == []
