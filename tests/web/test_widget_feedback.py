"""The end-of-chat rating in the real widget (Chromium, operators on Prosody and
ejabberd): offered after an answered chat ends where the queue asks, used with the
keyboard alone, read by assistive technology (axe-core clean, in light and dark, English
and Spanish), and sent once."""

from __future__ import annotations

import json
from typing import Any

from playwright.async_api import Browser, expect

from tests.conftest import Desk
from tests.web.test_widget_a11y import violations
from tests.web.test_widget_browser import PHONE, browsing, kind_of, shot_path, take_offer


async def test_rating_with_the_keyboard(desk: Desk, browser: Browser) -> None:
    await desk.set_queue("ask", feedback=True)
    op = await desk.add_operator(name="Ana")
    ratings = desk.refdesk.store.ratings
    problems: list[dict[str, Any]] = []
    async with browsing(browser, PHONE, bypass_csp=True) as s:
        page = s.page
        await page.goto(f"{desk.url}/chat/ask")
        box = page.get_by_label("Message")
        await box.fill("Can I renew online?")
        await box.press("Enter")
        guest = await take_offer(op, "Can I renew online?")
        op.send_message(guest, "Yes, from your account page.")
        await expect(page.locator(".rd-operator")).to_have_count(1)
        # No rating form while the chat is on.
        await expect(page.locator("#rd-rate")).to_be_hidden()
        op.send_message(guest, "!end")
        await op.next_message(guest)

        group = page.get_by_role("group", name="How helpful was this chat?")
        await expect(group).to_be_visible()
        # The focus moves to the rating, as the end left it nowhere.
        await expect(page.get_by_role("radio", name="1 – not helpful")).to_be_focused()
        problems += await violations(page, "rating form")
        await page.screenshot(path=shot_path(f"widget-rating-{kind_of(desk)}"))

        # Sending without a choice says what is missing, and nothing goes out.
        await page.keyboard.press("Tab")
        await expect(page.get_by_label("Comment (optional)")).to_be_focused()
        await page.keyboard.press("Tab")
        await expect(page.get_by_role("button", name="Send rating")).to_be_focused()
        await page.keyboard.press("Enter")
        await expect(page.locator("#rd-rate-err")).to_have_text(
            "Please choose a rating from 1 to 5."
        )
        await expect(page.get_by_role("radio", name="1 – not helpful")).to_be_focused()
        problems += await violations(page, "rating form with error")
        assert s.frames_sent("rating") == []

        # Arrow keys move through the radio group.
        for _ in range(3):
            await page.keyboard.press("ArrowRight")
        await expect(page.get_by_role("radio", name="4", exact=True)).to_be_checked()
        await page.keyboard.press("Tab")
        await page.keyboard.type("Quick and clear.")
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(page.locator("#rd-rate-done")).to_have_text("Thank you for your feedback!")
        await expect(page.locator("#rd-rate-done")).to_be_focused()
        await expect(page.locator("#rd-rate")).to_be_hidden()
        problems += await violations(page, "rated")
        assert s.frames_sent("rating") == [
            {"type": "rating", "rating": 4, "comment": "Quick and clear."}
        ]
        chat_id = await page.evaluate("JSON.parse(sessionStorage.getItem('refdesk:ask')).chat")
        assert await ratings.comment(chat_id) == (4, "Quick and clear.")

        # A reload shows the ended chat without asking again.
        await page.reload()
        await expect(page.locator("#rd-over")).to_be_visible()
        await expect(page.locator("#rd-rate")).to_be_hidden()
    assert not problems, json.dumps(problems, indent=1)
    assert not s.errors, s.errors


async def test_rating_in_spanish_dark(desk: Desk, browser: Browser) -> None:
    await desk.set_queue("ask", feedback=True)
    op = await desk.add_operator(name="Ana")
    async with browsing(browser, PHONE, bypass_csp=True, locale="es-ES", color_scheme="dark") as s:
        page = s.page
        await page.goto(f"{desk.url}/chat/ask")
        await page.get_by_label("Mensaje", exact=True).fill("¿Abren el domingo?")
        await page.get_by_label("Mensaje", exact=True).press("Enter")
        guest = await take_offer(op, "¿Abren el domingo?")
        op.send_message(guest, "Sí, de 13 a 17 h.")
        await expect(page.locator(".rd-operator")).to_have_count(1)
        await page.get_by_role("button", name="Terminar chat").click()
        await op.next_message(guest)
        await expect(page.get_by_role("group", name="¿Le ha sido útil este chat?")).to_be_visible()
        problems = await violations(page, "rating form, es, dark")
        await page.get_by_role("radio", name="5 – muy útil").check()
        await page.get_by_role("button", name="Enviar valoración").click()
        await expect(page.locator("#rd-rate-done")).to_have_text("¡Gracias por su opinión!")
    assert not problems, json.dumps(problems, indent=1)
    assert not s.errors, s.errors
