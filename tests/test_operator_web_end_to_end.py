"""The operators' browser client (/operator/: Converse.js and refdesk's panel) in Chromium,
against real Prosody and ejabberd through their WebSocket endpoints, with a patron in the
widget in another browser context and a colleague on a desktop-style client (slixmpp).
Screenshots of each state go to test-artifacts/ (not committed)."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime

from playwright.async_api import Browser, Page, expect

from tests.conftest import Desk, wait_for
from tests.web.test_widget_a11y import axe_source, violations
from tests.web.test_widget_browser import DESKTOP, PHONE, kind_of, shot_path

# Collects the page's CSP violations (the policy allows only what the client needs).
_WATCH_CSP = """
window.__plays = 0;
window.__notifications = [];
const realPlay = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () {
  window.__plays += 1;
  return realPlay.call(this);
};
const RealNotification = window.Notification;
window.Notification = class extends RealNotification {
  constructor(title, options) {
    super(title, options);
    window.__notifications.push(title);
  }
};
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


# Everything the page keeps in the browser's storage, as one string.
STORED_TEXT = """async () => {
  const parts = [];
  for (const store of [localStorage, sessionStorage]) {
    for (let i = 0; i < store.length; i++) parts.push(store.key(i), store.getItem(store.key(i)));
  }
  for (const info of await indexedDB.databases()) parts.push(info.name || '');
  return parts.join('\\n');
}"""


async def browser_operator(
    desk: Desk, name: str, queues: tuple[str, ...] = ("ask",)
) -> tuple[str, str]:
    """An operator account that nobody has logged in yet; returns (jid, password)."""
    assert desk.server is not None
    user = f"web{secrets.token_hex(3)}"
    password = secrets.token_hex(8)
    await desk.server.register(user, password)
    jid = f"{user}@{desk.server.domain}"
    store = desk.refdesk.store
    op = await store.operators.upsert(jid, name, 3, datetime.now(UTC))
    for q in queues:
        queue = await store.queues.by_name(q)
        assert queue is not None
        await store.operators.assign(queue.id, op.id)
    await desk.service.reload_directory()
    return jid, password


async def log_in(page: Page, desk: Desk, jid: str, password: str) -> None:
    await page.add_init_script(_WATCH_CSP)
    await page.goto(f"{desk.url}/operator/")
    await page.get_by_label("XMPP Address").fill(jid)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def csp_violations(page: Page) -> list[str]:
    found: list[str] = await page.evaluate("window.__cspViolations")
    return found


async def accept_queue_subscription(page: Page, desk: Desk, jid: str) -> None:
    """In Converse.js's roster: open the queue's contact request, approve it, confirm."""
    queue_jid = f"ask@{desk.service.domain}"
    await page.locator(f'a.open-chat[data-jid="{queue_jid}"]').click()
    await page.get_by_role("button", name="Approve").click()
    await page.locator(".modal-body").get_by_role("button", name="Accept").click()
    await wait_for(lambda: desk.service.presence_of(jid).takes_chats, what=f"{jid} available")


async def patron_asks(page: Page, desk: Desk, text: str) -> None:
    await page.goto(f"{desk.url}/chat/ask")
    await page.get_by_label("Message").fill(text)
    await page.get_by_label("Message").press("Enter")


async def test_a_shift_from_the_browser(desk: Desk, browser: Browser) -> None:
    """An operator logs in at /operator/, accepts the queue's subscription, gets an offer
    from a patron, takes it, sends an edited canned message, transfers the chat to a
    colleague on a desktop client; a second chat is ended; then they log out."""
    kind = kind_of(desk)
    jid, password = await browser_operator(desk, "Wanda")
    # The colleague is on another queue: no offers from "ask", but a transfer target.
    colin = await desk.add_operator(("other",), name="Colin")
    operator = await browser.new_context(viewport=DESKTOP, permissions=["notifications"])
    patron_context = await browser.new_context(viewport=PHONE)
    errors: list[str] = []
    try:
        page = await operator.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await log_in(page, desk, jid, password)
        panel = page.get_by_role("complementary", name="Reference desk")
        await expect(panel).to_be_visible()
        await expect(panel.locator("#rd-queues")).to_contain_text(
            "once you accept their contact requests"
        )
        await page.screenshot(path=shot_path(f"operator-logged-in-{kind}"))

        await accept_queue_subscription(page, desk, jid)
        await expect(panel.locator('li[data-queue="ask"]')).to_contain_text("0 waiting")
        await page.screenshot(path=shot_path(f"operator-subscribed-{kind}"))

        # A patron asks in the widget: the offer shows and its chat opens on its own.
        patron = await patron_context.new_page()
        await patron_asks(patron, desk, "Do you have books about bees?")
        await expect(panel.locator("#rd-alert")).to_contain_text("New chat offer")
        # Audible and on the desktop: the sound played and a notification was shown.
        assert await page.evaluate("window.__plays") >= 1
        assert "New chat offer" in await page.evaluate("window.__notifications")
        guest_chat = page.locator("converse-chat:not(.hidden)")
        await expect(guest_chat).to_contain_text("Do you have books about bees?")
        # A guest is not offered as a roster contact.
        await expect(guest_chat.get_by_text("as a contact?")).to_have_count(0)
        await page.screenshot(path=shot_path(f"operator-offer-{kind}"))
        # axe-core through the DevTools protocol (which the page's CSP does not govern).
        await page.evaluate(axe_source())
        problems = await violations(page, "offer open")
        assert not problems, json.dumps(problems, indent=1)

        # Take it with the panel's button: an ordinary "!accept" line.
        await panel.get_by_role("button", name="Accept").click()
        await expect(patron.locator(".rd-msg").last).to_contain_text("Wanda")
        await patron.screenshot(path=shot_path(f"patron-taken-{kind}"))

        # A canned message goes into the message box, is edited there, then sent.
        await panel.get_by_label("Canned message").fill("greeting")
        await panel.get_by_role("button", name="Insert").click()
        box = guest_chat.locator("textarea.chat-textarea")
        await expect(box).to_have_value(re.compile(r"^Hello! Thanks for contacting us"))
        await box.press("End")
        await box.press("Control+End")
        await box.type(" About bees: yes!")
        await page.screenshot(path=shot_path(f"operator-canned-edited-{kind}"))
        await box.press("Enter")
        sent = patron.locator(".rd-operator").last
        await expect(sent).to_contain_text("Hello! Thanks for contacting us")
        await expect(sent).to_contain_text("About bees: yes!")

        # Transfer to the colleague on a desktop client.
        await panel.get_by_label("Transfer to").fill("Colin")
        await panel.get_by_role("button", name="Transfer").click()
        offer = await colin.next_message(timeout=15)
        assert "Do you have books about bees?" in offer["body"], offer["body"]
        guest = str(offer["from"].bare)
        colin.send_message(guest, "Hi, Colin here: the bee books are on shelf 595.")
        await expect(patron.locator(".rd-operator").last).to_contain_text("Colin here")
        await patron.screenshot(path=shot_path(f"patron-transferred-{kind}"))
        await page.screenshot(path=shot_path(f"operator-transferred-{kind}"))

        # Muted: the next offer is shown but neither sounds nor notifies.
        mute = panel.get_by_role("button", name="Mute alerts")
        await mute.click()
        await expect(panel.get_by_role("button", name="Unmute alerts")).to_have_attribute(
            "aria-pressed", "true"
        )
        plays = await page.evaluate("window.__plays")
        shown = await page.evaluate("window.__notifications.length")
        # A second chat, ended from the panel.
        second = await patron_context.new_page()
        await patron_asks(second, desk, "When do you open tomorrow?")
        await expect(page.locator("converse-chat:not(.hidden)")).to_contain_text(
            "When do you open tomorrow?"
        )
        assert await page.evaluate("window.__plays") == plays
        assert await page.evaluate("window.__notifications.length") == shown
        # The group's ban policy is shown with the ban control.
        await expect(panel.locator("#rd-ban-policy")).to_contain_text("operators ban directly")
        await panel.get_by_role("button", name="Accept").click()
        await expect(second.locator(".rd-msg").last).to_contain_text("Wanda")
        # A note and a tag from the panel: answered to the operator only.
        second_chat = page.locator("converse-chat:not(.hidden)")
        await panel.get_by_label("Note").fill("Asked about opening hours")
        await panel.get_by_role("button", name="Add note").click()
        await expect(second_chat).to_contain_text("Note added to the transcript")
        await panel.get_by_label("Tag").fill("hours")
        await panel.get_by_role("button", name="Add tag").click()
        await expect(second_chat).to_contain_text("!tag hours")
        # With the keyboard alone: focus the button and press Enter.
        await panel.get_by_role("button", name="End chat").focus()
        await page.keyboard.press("Enter")
        await expect(second.locator("#rd-over")).to_be_visible()
        await second.screenshot(path=shot_path(f"patron-ended-{kind}"))
        await page.screenshot(path=shot_path(f"operator-ended-{kind}"))

        # The policy allows exactly what the client needs: nothing was refused.
        assert await csp_violations(page) == []
        # No script error during the shift. (Converse.js 14.0.0 itself throws one harmless
        # "api.disco.feature.has: You need to provide an entity JID" while logging out.)
        assert not errors, errors
        # The password is not kept in the browser's storage even during the shift.
        assert password not in await page.evaluate(STORED_TEXT)
        # Log out: the XMPP session ends and nothing of it stays in the browser.
        await panel.get_by_role("button", name="Log out").click()
        await expect(page.get_by_label("XMPP Address")).to_be_visible()
        await wait_for(lambda: not desk.service.presence_of(jid).online, what=f"{jid} offline")
        stored = await page.evaluate(STORED_TEXT)
        assert password not in stored
        await page.reload()
        await expect(page.get_by_label("XMPP Address")).to_be_visible()
        await expect(page.get_by_label("Password")).to_have_value("")
        await page.screenshot(path=shot_path(f"operator-logged-out-{kind}"))
        assert await csp_violations(page) == []

    finally:
        await patron_context.close()
        await operator.close()
