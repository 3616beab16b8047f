"""The queue page's Feedback setting, in a real browser: ticking it makes the running
service ask patrons for ratings at once; unticking stops it."""

from __future__ import annotations

from playwright.async_api import Browser

from tests.conftest import Desk, admin_account, admin_page
from tests.web.admin.test_directory import expect_done, submit


async def test_admin_turns_ratings_on_and_off(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/queues/ask")
        box = page.locator("#queue-settings").get_by_label(
            "Ask patrons to rate the chat when it ends"
        )
        assert not await box.is_checked()
        await box.check()
        await expect_done(page, await submit(page, "#queue-settings", "Save settings"), "saved")
        assert desk.service.queue("ask").feedback is True
        assert (await desk.store_queue("ask")).feedback is True

        box = page.locator("#queue-settings").get_by_label(
            "Ask patrons to rate the chat when it ends"
        )
        assert await box.is_checked()
        await box.uncheck()
        await expect_done(page, await submit(page, "#queue-settings", "Save settings"), "saved")
        assert desk.service.queue("ask").feedback is False
    finally:
        await page.context.close()
