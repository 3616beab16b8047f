"""The widget page in a real browser, talking to a real operator through a real server.
Screenshots go to test-artifacts/ for people to look at."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.conftest import ARTIFACTS, Desk


async def test_patron_chats_from_the_widget_page(desk: Desk, browser: Browser) -> None:
    op = await desk.add_operator(name="Ana")
    kind = desk.server.kind if desk.server else "none"
    ARTIFACTS.mkdir(exist_ok=True)
    context = await browser.new_context(viewport={"width": 390, "height": 700})
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        await page.goto(f"{desk.url}/chat/ask")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "available")
        box = page.get_by_label("Message")
        await box.fill("Where can I find <b>old maps</b>?")
        await box.press("Enter")
        offer = await op.next_message()
        assert "Where can I find <b>old maps</b>?" in offer["body"]
        guest = offer["from"].bare
        op.send_message(guest, "Try https://maps.example.org/old — or ask at the desk.")
        reply = page.locator(".rd-operator").last
        await expect(reply).to_contain_text("ask at the desk")
        await expect(reply.locator("a")).to_have_attribute("href", "https://maps.example.org/old")
        # What the patron wrote is shown as text, never as HTML.
        await expect(page.locator(".rd-patron .rd-text").first).to_have_text(
            "Where can I find <b>old maps</b>?"
        )
        assert await page.locator(".rd-patron b").count() == 0
        await page.screenshot(path=str(ARTIFACTS / f"widget-chat-{kind}.png"))

        # Reload: the chat comes back from sessionStorage, nothing doubled.
        await page.reload()
        await expect(page.locator(".rd-operator").last).to_contain_text("ask at the desk")
        assert await page.locator(".rd-patron").count() == 1
        await page.get_by_role("button", name="End chat").click()
        await expect(page.locator("#rd-over")).to_be_visible()
        notice = await op.next_message(guest)
        assert "ended" in notice["body"]
        await page.screenshot(path=str(ARTIFACTS / f"widget-ended-{kind}.png"))
    finally:
        await context.close()
    assert not errors, errors
