"""XEP-0308 last-message correction from an operator's real XMPP client (Prosody and
ejabberd), as the patron sees it in Chromium: the line changes in place and is marked as
edited; the transcript keeps the final text and says it was corrected. Only the
operator's own last line can be corrected."""

from __future__ import annotations

from typing import Any

from playwright.async_api import Browser, expect
from slixmpp.xmlstream import ET

from component.followup import staff_transcript
from tests.conftest import Desk
from tests.web.test_widget_browser import browsing, take_offer

NS_CORRECT = "urn:xmpp:message-correct:0"


def _line(op: Any, guest: str, body: str, stanza_id: str, replaces: str | None = None) -> None:
    """A chat line with an id, as every client that can correct sends it; with `replaces`,
    a correction of the line with that id."""
    msg = op.xmpp.make_message(mto=guest, mbody=body, mtype="chat")
    msg["id"] = stanza_id
    if replaces is not None:
        msg.append(ET.fromstring(f'<replace xmlns="{NS_CORRECT}" id="{replaces}"/>'))
    msg.send()


async def test_operator_corrects_the_last_line_in_the_patrons_view(
    desk: Desk, browser: Browser
) -> None:
    op = await desk.add_operator(name="Ana")
    async with browsing(browser) as s:
        page = s.page
        await page.goto(f"{desk.url}/chat/ask")
        await page.get_by_label("Message").fill("Where is the map room?")
        await page.get_by_label("Message").press("Enter")
        guest = await take_offer(op, "Where is the map room?")
        _line(op, guest, "On the 2nd floor.", "line-1")
        assert "You took this chat" in (await op.next_message(guest))["body"]
        line = page.locator(".rd-operator")
        await expect(line).to_have_count(1)
        await expect(line.locator(".rd-text")).to_have_text("On the 2nd floor.")
        await expect(line.locator(".rd-edited")).to_have_count(0)

        _line(op, guest, "On the 3rd floor.", "line-1b", replaces="line-1")
        await expect(line.locator(".rd-text")).to_have_text("On the 3rd floor.")
        await expect(line.locator(".rd-edited")).to_have_text("(edited)")
        await expect(line).to_have_count(1)
        # A second correction may name the first one (or the original).
        _line(op, guest, "On the 3rd floor, room 301.", "line-1c", replaces="line-1b")
        await expect(line.locator(".rd-text")).to_have_text("On the 3rd floor, room 301.")

        # Once another line has gone out, the earlier one can no longer be corrected.
        _line(op, guest, "Anything else?", "line-2")
        await expect(line).to_have_count(2)
        _line(op, guest, "Sneaky rewrite", "line-3", replaces="line-1")
        error = await op.next_error(guest)
        assert error["error"]["condition"] == "not-acceptable"
        assert "Only your last line" in error["error"]["text"]
        # An oversized or empty correction is refused the same way, nothing changes.
        too_long = "z" * (desk.refdesk.config.chat.max_message_chars + 1)
        _line(op, guest, too_long, "line-4", replaces="line-2")
        assert (await op.next_error(guest))["error"]["condition"] == "not-acceptable"
        # A huge id names no line; an empty one neither.
        _line(op, guest, "Huge id", "line-4b", replaces="q" * 20_000)
        assert (await op.next_error(guest))["error"]["condition"] == "not-acceptable"
        _line(op, guest, "Empty id", "line-4c", replaces="")
        assert (await op.next_error(guest))["error"]["condition"] == "not-acceptable"
        # A correction is never a command.
        _line(op, guest, "!end", "line-5", replaces="line-2")
        await expect(line.nth(1).locator(".rd-text")).to_have_text("!end")
        await expect(line.first.locator(".rd-text")).to_have_text("On the 3rd floor, room 301.")
        assert not [f for f in s.frames_sent("message") if "Sneaky" in str(f)]

        # After a reload the history shows the corrected line, still marked.
        await page.reload()
        await expect(line.first.locator(".rd-text")).to_have_text("On the 3rd floor, room 301.")
        await expect(line.first.locator(".rd-edited")).to_have_text("(edited)")
        await expect(page.locator(".rd-over, #rd-over")).to_be_hidden()
    assert not s.errors, s.errors

    chat_id = next(iter(desk.service.open_chat_ids()))
    events = await desk.refdesk.store.chats.events_after(chat_id, 0)
    texts = [e.text for e in events]
    assert "On the 3rd floor, room 301." in texts and "Sneaky rewrite" not in texts
    assert "On the 2nd floor." not in texts
    corrected = [e for e in events if e.corrected]
    assert [e.text for e in corrected] == ["On the 3rd floor, room 301.", "!end"]
    lines = staff_transcript(events)
    assert any(ln.who == "Ana (corrected)" and "room 301" in ln.text for ln in lines)


async def test_a_correction_reaches_only_the_last_line_and_only_its_author(desk: Desk) -> None:
    """A canned line sent with `!c` is the operator's last line to the patron: the line
    before it can no longer be rewritten (a client corrects only its last message, here
    the `!c`; a hostile one could name the earlier id). A colleague of the same queue
    cannot correct anyone's line."""
    ana = await desk.add_operator(name="Ana")
    ben = await desk.add_operator(name="Ben")
    patron = await desk.patron()
    await patron.say("Where is the map room?")
    guest = await take_offer(ana, "Where is the map room?")
    await take_offer(ben, "Where is the map room?")
    _line(ana, guest, "On the 2nd floor.", "line-1")
    assert "You took this chat" in (await ana.next_message(guest))["body"]
    await patron.next("message", lambda f: f.get("text") == "On the 2nd floor.")

    _line(ben, guest, "Rewritten by Ben", "ben-1", replaces="line-1")
    assert (await ben.next_error(guest))["error"]["condition"] in ("not-allowed", "conflict")

    _line(ana, guest, "!c anything-else", "line-2")
    assert (await ana.next_message(guest))["body"].startswith("Sent: ")
    _line(ana, guest, "Sneaky rewrite", "line-3", replaces="line-1")
    error = await ana.next_error(guest)
    assert error["error"]["condition"] == "not-acceptable"
    assert "Only your last line" in error["error"]["text"]

    chat_id = next(iter(desk.service.open_chat_ids()))
    texts = [e.text for e in await desk.refdesk.store.chats.events_after(chat_id, 0)]
    assert "On the 2nd floor." in texts
    assert "Sneaky rewrite" not in texts and "Rewritten by Ben" not in texts
    # The chat goes on for everyone.
    _line(ana, guest, "Still here.", "line-4")
    await patron.next("message", lambda f: f.get("text") == "Still here.")
