"""The records pages: transcripts (search, view, downloads, delete), tickets and the mail
outbox, in a real browser and with a plain HTTP client; coordinators kept to their group."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import aiohttp
from playwright.async_api import Browser, expect

from component.core.models import NewMail
from tests.conftest import Desk, admin_account, admin_page, wait_for
from tests.mail_sink import MailSink
from tests.web.admin.test_moderation import (
    TRUSTED,
    ProxiedPatron,
    admin_client,
    chat,
    operator_on,
    other_group,
    shot,
)

XSS = "<img src=x onerror=alert(1)>"
FORMULA = "=cmd|' /C calc'!A0"
PAST = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


async def corpus(desk: Desk) -> tuple[ProxiedPatron, ProxiedPatron]:
    """Two chats: one in `ask` (group library, full addresses) with awkward text, a note
    and a tag; one in `elsewhere` (group branch, privacy none) made on 2025-01-15."""
    await other_group(desk, privacy="none")
    ana = await operator_on(desk, "ask", "Ana")
    bo = await operator_on(desk, "elsewhere", "Bo")
    ours = await chat(
        desk,
        "203.0.113.10",
        (XSS, FORMULA),
        ("Here is the catalogue link.", "!note staff only remark", "!tag circulation"),
        jid=ana,
    )
    desk.clock.set(PAST)
    try:
        theirs = await chat(
            desk,
            "198.51.100.20",
            ("where are the old maps?",),
            ("Second floor.", "!tag maps"),
            jid=bo,
            queue="elsewhere",
        )
    finally:
        desk.clock.fixed = None
    return ours, theirs


def chat_ids(html: str) -> set[int]:
    import re

    return {int(n) for n in re.findall(r'href="/admin/transcripts/(\d+)"', html)}


@TRUSTED
async def test_search_finds_by_text_tag_operator_queue_and_date(offline_desk: Desk) -> None:
    desk = offline_desk
    ours, theirs = await corpus(desk)
    a, b = ours.chat_id, theirs.chat_id
    admin = await admin_client(desk)
    try:
        ana = next(op for op in desk.service.operators() if op.name == "Ana")
        cases = {
            "": {a, b},
            "?text=catalogue": {a},
            "?text=OLD+MAPS": {b},  # case-insensitive
            "?text=staff+only": {a},  # notes are searched too
            "?text=100%25": set(),  # % is matched literally
            "?text=_": set(),
            "?tag=maps": {b},
            "?tag=circulation": {a},
            f"?operator={ana.id}": {a},
            "?queue=elsewhere": {b},
            "?queue=ask": {a},
            "?from=2025-01-15&to=2025-01-15": {b},
            "?from=2025-01-16": {a},
            "?to=2025-01-14": set(),
            "?queue=ask&text=maps": set(),
        }
        for query, expected in cases.items():
            status, html = await admin.get("/admin/transcripts" + query)
            assert status == 200, query
            assert chat_ids(html) == expected, query
        status, html = await admin.get("/admin/transcripts?from=2025-13-01&to=yesterday")
        assert status == 400
        assert 'id="f-from-error"' in html and 'id="f-to-error"' in html
        assert 'aria-describedby="f-from-error"' in html
        status, html = await admin.get("/admin/transcripts?from=2025-02-01&to=2025-01-01")
        assert status == 400 and "before the start date" in html
    finally:
        await admin.session.close()


@TRUSTED
async def test_view_escapes_and_marks_notes(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    ours, _ = await corpus(desk)
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    try:
        await page.goto(f"{desk.url}/admin/transcripts")
        await page.get_by_label("Text").fill("catalogue")
        await page.get_by_role("button", name="Search").click()
        await expect(page.get_by_role("row")).to_have_count(2)  # header and one chat
        await shot(page, "transcripts-search.png")
        await page.get_by_role("link", name=f"#{ours.chat_id}").click()
        transcript = page.locator("ol.transcript")
        await expect(transcript).to_contain_text(XSS)
        assert await page.locator("main img").count() == 0
        note = transcript.locator("li.entry-note")
        await expect(note).to_contain_text("Staff note")
        await expect(note).to_contain_text("staff only remark")
        await expect(note).to_contain_text("Ana")
        await expect(transcript.locator("li.from-patron").first).to_contain_text("Patron")
        facts = page.locator(".facts")
        await expect(facts).to_contain_text("203.0.113.10")
        await expect(facts).to_contain_text("circulation")
        await shot(page, "transcript.png")
        assert dialogs == []
    finally:
        await page.context.close()


def parse_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"))))


@TRUSTED
async def test_downloads_follow_the_privacy_mode_and_neutralise_formulas(
    offline_desk: Desk,
) -> None:
    desk = offline_desk
    ours, theirs = await corpus(desk)
    admin = await admin_client(desk)
    try:
        status, body, kind = await admin.get_raw(f"/admin/transcripts/{ours.chat_id}.txt")
        assert status == 200 and kind.startswith("text/plain")
        text = body.decode()
        assert f"Chat #{ours.chat_id} in Ask us (ask)" in text
        assert "Address:  203.0.113.10 (privacy mode: full)" in text
        assert f"] Patron: {XSS}" in text
        assert "] Ana: Here is the catalogue link." in text
        assert "STAFF NOTE (Ana): staff only remark" in text
        assert "Chat ended (by patron)" in text

        status, body, kind = await admin.get_raw(f"/admin/transcripts/{ours.chat_id}.csv")
        assert status == 200 and kind.startswith("text/csv")
        rows = parse_csv(body)
        header = rows[0]
        assert header[:10] == [
            "chat", "queue", "started", "asked", "accepted", "ended", "state", "operator",
            "address", "tags",
        ]  # fmt: skip
        facts = dict(zip(header, rows[1], strict=True))
        assert facts["address"] == "203.0.113.10" and facts["operator"] == "Ana"
        assert facts["state"] == "ended" and facts["tags"] == "circulation"
        messages = [dict(zip(header, r, strict=True)) for r in rows[2:]]
        texts = [m["text"] for m in messages]
        assert XSS in texts and "'" + FORMULA in texts and FORMULA not in texts
        assert any(m["kind"] == "note" and m["text"] == "staff only remark" for m in messages)
        assert all(m["chat"] == str(ours.chat_id) for m in messages)
        assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)

        # privacy=none: no address anywhere.
        status, body, _ = await admin.get_raw(f"/admin/transcripts/{theirs.chat_id}.csv")
        assert status == 200
        rows = parse_csv(body)
        assert dict(zip(rows[0], rows[1], strict=True))["address"] == ""
        status, body, _ = await admin.get_raw(f"/admin/transcripts/{theirs.chat_id}.txt")
        assert b"198.51.100.20" not in body and b"not kept (privacy mode: none)" in body

        # The search as CSV: one row per chat, the address column as each queue allows.
        status, body, _ = await admin.get_raw("/admin/transcripts.csv")
        rows = parse_csv(body)
        by_chat = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
        assert by_chat[str(ours.chat_id)]["address"] == "203.0.113.10"
        assert by_chat[str(theirs.chat_id)]["address"] == ""
        status, body, _ = await admin.get_raw("/admin/transcripts.csv?tag=maps")
        assert [r[0] for r in parse_csv(body)[1:]] == [str(theirs.chat_id)]

        # A queue switched to 'network' shows only the /24 of addresses kept before.
        await desk.set_queue("ask", privacy="network")
        status, body, _ = await admin.get_raw(f"/admin/transcripts/{ours.chat_id}.csv")
        rows = parse_csv(body)
        assert dict(zip(rows[0], rows[1], strict=True))["address"] == "203.0.113.0/24"
    finally:
        await admin.session.close()


@TRUSTED
async def test_delete_a_transcript(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    ours, theirs = await corpus(desk)
    store = desk.refdesk.store
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/transcripts/{ours.chat_id}")
        await page.get_by_role("link", name="Delete…").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text("Delete chat")
        await page.get_by_role("button", name="Delete").click()
        await expect(page.get_by_role("alert")).to_contain_text("Tick the box")
        await expect(page.locator("#f-confirm")).to_have_attribute("aria-invalid", "true")
        await page.get_by_label(f"Yes, delete chat #{ours.chat_id}").check()
        await shot(page, "transcript-delete.png")
        await page.get_by_role("button", name="Delete").click()
        await expect(page.get_by_role("status")).to_contain_text(
            f"Chat #{ours.chat_id} and its transcript deleted"
        )
        response = await page.goto(f"{desk.url}/admin/transcripts/{ours.chat_id}")
        assert response is not None and response.status == 404
    finally:
        await page.context.close()
    assert await store.chats.by_id(ours.chat_id or 0) is None
    assert await store.chats.events_after(ours.chat_id or 0, 0) == []
    assert await store.chats.tags(ours.chat_id or 0) == []
    assert await store.chats.by_id(theirs.chat_id or 0) is not None
    path = desk.refdesk.config.storage.path
    for suffix in ("", "-wal"):
        file = path.with_name(path.name + suffix)
        if file.exists():
            assert b"staff only remark" not in file.read_bytes(), file.name

    # Open chats, and chats with an open incident, are not deleted.
    admin = await admin_client(desk)
    try:
        jid = await operator_on(desk, "ask", "Cy")
        open_chat = await chat(desk, "192.0.2.33", ("still talking",), jid=jid, end=False)
        status, html, _ = await admin.post(
            f"/admin/transcripts/{open_chat.chat_id}/delete", {"confirm": "yes"}
        )
        assert status == 409 and "still open" in html
        flagged = await chat(desk, "192.0.2.34", ("rude",), ("!tag incident",), jid=jid)
        status, html, _ = await admin.post(
            f"/admin/transcripts/{flagged.chat_id}/delete", {"confirm": "yes"}
        )
        assert status == 409 and "resolve it first" in html
        assert await store.chats.by_id(flagged.chat_id or 0) is not None
    finally:
        await admin.session.close()


@TRUSTED
async def test_coordinators_cannot_reach_another_groups_records(offline_desk: Desk) -> None:
    desk = offline_desk
    ours, theirs = await corpus(desk)
    store = desk.refdesk.store
    elsewhere = await store.queues.by_name("elsewhere")
    assert elsewhere is not None
    now = datetime.now(UTC)
    their_ticket = await store.tickets.create(
        kind="offline",
        queue_id=elsewhere.id,
        question="branch question",
        now=now,
        mails=lambda t: [NewMail("followup", ("branch@example.org",), _message(f"Ticket {t}"))],
    )
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    try:
        status, html = await coordinator.get("/admin/transcripts")
        assert status == 200 and chat_ids(html) == {ours.chat_id}
        b = theirs.chat_id
        for path in (
            f"/admin/transcripts/{b}",
            f"/admin/transcripts/{b}.txt",
            f"/admin/transcripts/{b}.csv",
            f"/admin/transcripts/{b}/delete",
            f"/admin/tickets/{their_ticket}",
        ):
            assert (await coordinator.get(path))[0] == 404, path
        status, _, _ = await coordinator.post(f"/admin/transcripts/{b}/delete", {"confirm": "yes"})
        assert status == 404
        assert await store.chats.by_id(b or 0) is not None
        status, html = await coordinator.get("/admin/transcripts?queue=elsewhere")
        assert status == 400 and "Choose one of the queues" in html
        status, body, _ = await coordinator.get_raw("/admin/transcripts.csv")
        assert [r[0] for r in parse_csv(body)[1:]] == [str(ours.chat_id)]
        status, html = await coordinator.get("/admin/tickets?status=all")
        assert status == 200 and "branch question" not in html
        status, html = await coordinator.get("/admin/mail")
        assert status == 200 and "branch@example.org" not in html
        mail_id = (await store.mail.all())[0].id
        await store.mail.mark_failed(mail_id, "550 no such user")
        status, _, _ = await coordinator.post(f"/admin/mail/{mail_id}/retry", {})
        assert status == 404
        # Their own chat is theirs to read and download.
        assert (await coordinator.get(f"/admin/transcripts/{ours.chat_id}"))[0] == 200
        assert (await coordinator.get_raw(f"/admin/transcripts/{ours.chat_id}.csv"))[0] == 200
    finally:
        await coordinator.session.close()


def _message(subject: str, to: str = "someone@example.org") -> bytes:
    return (
        f"From: desk@library.example\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Message-ID: <test@library.example>\r\n\r\nHello.\r\n"
    ).encode()


@TRUSTED
async def test_tickets_show_mail_status_and_failed_mail_can_be_retried(
    offline_desk: Desk, browser: Browser, mail_sink: MailSink
) -> None:
    desk = offline_desk
    store = desk.refdesk.store
    await desk.set_queue("ask", followup_email="followup@library.example")
    async with (
        aiohttp.ClientSession(headers={"X-Forwarded-For": "192.0.2.77"}) as s,
        s.post(
            f"{desk.url}/api/queues/ask/questions",
            json={"email": "pat@example.org", "name": "Pat", "question": "Do you have atlases?"},
        ) as resp,
    ):
        assert resp.status == 201
    await wait_for(lambda: len(mail_sink.received) >= 2, what="the ticket's emails")
    ask = await store.queues.by_name("ask")
    assert ask is not None
    now = datetime.now(UTC)
    # Filed an hour ahead, so that its email is not due yet: the outbox worker, still
    # busy with the emails above (or woken again by them), would otherwise pick it up
    # before it is marked failed below, send it, and mark it sent after (seen on a loaded
    # machine). "Retry now" makes it due.
    failed_ticket = await store.tickets.create(
        kind="referral",
        queue_id=ask.id,
        question="Needs the map librarian",
        now=now + timedelta(hours=1),
        mails=lambda t: [NewMail("referral", ("maps@example.org",), _message("Retry me 42"))],
    )
    failed = next(m for m in await store.mail.all() if m.ticket_id == failed_ticket)
    await store.mail.mark_failed(failed.id, "550 5.1.1 mailbox unavailable")
    later = await store.mail.enqueue(
        NewMail("on-call", ("oncall@example.org",), _message("Later")), now
    )
    await store.mail.mark_retry(later, now + timedelta(hours=1), "421 try again later")
    before = sum(1 for d in mail_sink.received if d.message["subject"] == "Retry me 42")

    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/tickets")
        offline_row = page.get_by_role("row").filter(has_text="Do you have atlases?")
        await expect(offline_row).to_contain_text("pat@example.org")
        await expect(offline_row.locator(".mail-sent")).to_have_count(2)
        referral_row = page.get_by_role("row").filter(has_text="Needs the map librarian")
        await expect(referral_row).to_contain_text("failed")
        await expect(referral_row).to_contain_text("550 5.1.1 mailbox unavailable")
        await shot(page, "tickets.png")

        await page.get_by_role("link", name="The mail outbox").click()
        rows = page.locator("tbody tr")
        await expect(rows.first).to_contain_text("Retry me 42")  # failed first
        await expect(rows.nth(1)).to_contain_text("421 try again later")
        await expect(rows.nth(1)).to_contain_text("pending")
        await shot(page, "mail-outbox.png")
        await rows.first.get_by_role("button", name="Retry now").click()
        await expect(page.get_by_role("status")).to_contain_text("queued again")
        await wait_for(
            lambda: (
                sum(1 for d in mail_sink.received if d.message["subject"] == "Retry me 42") > before
            ),
            what="the retried email",
        )
        await page.goto(f"{desk.url}/admin/tickets/{failed_ticket}")
        await expect(page.locator(".mail-status")).to_contain_text("sent")
        await page.get_by_role("button", name="Mark as answered (close)").click()
        await expect(page.get_by_role("status")).to_contain_text("closed")
    finally:
        await page.context.close()
    ticket = await store.tickets.get(failed_ticket)
    assert ticket is not None and ticket.status == "closed"


@TRUSTED
async def test_operator_filter_does_not_reveal_other_groups_operators(
    offline_desk: Desk,
) -> None:
    """Asking for another group's operator gets the answer an unknown id gets."""
    desk = offline_desk
    ours, _ = await corpus(desk)
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    try:
        ana = next(op for op in desk.service.operators() if op.name == "Ana")
        bo = next(op for op in desk.service.operators() if op.name == "Bo")
        unknown = max(op.id for op in desk.service.operators()) + 1000
        theirs = await coordinator.get(f"/admin/transcripts?operator={bo.id}")
        missing = await coordinator.get(f"/admin/transcripts?operator={unknown}")
        assert theirs[0] == missing[0] == 400
        assert "Choose one of the operators" in theirs[1]
        assert theirs[1].replace(f'"{bo.id}"', '"N"') == missing[1].replace(f'"{unknown}"', '"N"')
        for path in (
            f"/admin/transcripts.csv?operator={bo.id}",
            "/admin/transcripts.csv?operator=x",
        ):
            assert (await coordinator.get_raw(path))[0] == 400, path
        # Their own operator is a valid filter.
        status, html = await coordinator.get(f"/admin/transcripts?operator={ana.id}")
        assert status == 200 and chat_ids(html) == {ours.chat_id}
    finally:
        await coordinator.session.close()
