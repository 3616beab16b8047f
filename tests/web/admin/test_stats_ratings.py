"""Patrons' ratings on the statistics page and in its CSV files, in a real browser: per
queue, over time, and per operator for full admins only (a group coordinator sees neither
the table nor the CSV)."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from component.core.models import ChatState
from tests.conftest import Desk, admin_account, admin_page
from tests.web.admin.test_stats import NOW, add_chat, at, get_csv, populate, table_rows


async def rate_some(desk: Desk) -> None:
    """Four ratings in the default range and one before it (not counted)."""
    ratings = desk.refdesk.store.ratings
    rated = [
        ("ask", at(10, 9), "alice@example.org", 5, "Great help"),
        ("ask", at(11, 9), "alice@example.org", 3, None),
        ("ask", at(12, 9), "bob@example.org", 4, '=HYPERLINK("http://evil.example")'),
        ("branchq", at(15, 9), "carol@example.org", 1, None),
        ("ask", at(1, 9, month=2), "bob@example.org", 1, "old"),
    ]
    for queue, asked, operator, rating, comment in rated:
        chat = await add_chat(desk, queue, asked, wait=10, duration=60, operator=operator)
        assert await ratings.add(chat, rating, comment, NOW)
        assert not await ratings.add(chat, 1, None, NOW)  # once per chat
    # A chat that never ended cannot have been rated through the service; the store
    # keeps whatever it is given, so the statistics count only what is stored.
    open_chat = await add_chat(desk, "ask", at(13, 9))
    assert (await desk.refdesk.store.chats.by_id(open_chat)).state is ChatState.WAITING  # type: ignore[union-attr]


async def test_ratings_for_an_admin(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    await populate(desk)
    await rate_some(desk)
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        response = await page.goto(f"{desk.url}/admin/stats")
        assert response is not None and response.status == 200
        await expect(page.locator('#ratings-summary dd[data-stat="ratings"]')).to_have_text("4")
        await expect(page.locator('#ratings-summary dd[data-stat="rating_mean"]')).to_have_text(
            "3.25"
        )
        queues = await table_rows(page, "ratings-queues")
        assert [r[1:] for r in queues] == [
            ["3", "4.00", "0", "0", "1", "1", "1"],
            ["1", "1.00", "1", "0", "0", "0", "0"],
        ]
        operators = await table_rows(page, "ratings-operators")
        # By name: the formula-named operator sorts first.
        assert [r[0] for r in operators] == [
            '=HYPERLINK("http://evil.example","x") (carol@example.org)',
            "Alice (alice@example.org)",
            "Bob (bob@example.org)",
        ]
        assert [r[1:3] for r in operators] == [["1", "1.00"], ["2", "4.00"], ["1", "4.00"]]
        days = await table_rows(page, "ratings-daily")
        assert [r[1] for r in days] == ["1", "1", "1", "1"]

        rows = await get_csv(page, desk, "table=ratings_queues")
        assert rows[0] == [
            "queue",
            "title",
            "ratings",
            "mean",
            *(f"rated_{n}" for n in range(1, 6)),
        ]
        assert [r[0] for r in rows[1:]] == ["ask", "branchq"]
        assert rows[1][2:] == ["3", "4.00", "0", "0", "1", "1", "1"]
        rows = await get_csv(page, desk, "table=ratings_operators")
        assert [r[0] for r in rows[1:]] == [
            "carol@example.org",
            "alice@example.org",
            "bob@example.org",
        ]
        # A name that is a spreadsheet formula is made inert.
        assert rows[1][1].startswith("'=")
        rows = await get_csv(page, desk, "table=ratings_daily")
        assert len(rows) == 1 + 30  # every day of the default range
        counted = {r[0]: r[1] for r in rows[1:] if r[1] != "0"}
        assert counted == {
            "2026-03-10": "1",
            "2026-03-11": "1",
            "2026-03-12": "1",
            "2026-03-15": "1",
        }
        # One operator's ratings.
        rows = await get_csv(page, desk, "table=ratings_queues&operator=alice@example.org")
        assert rows[1][2:4] == ["2", "4.00"]
    finally:
        await page.context.close()


async def test_no_ratings_per_operator_for_a_coordinator(
    offline_desk: Desk, browser: Browser
) -> None:
    desk = offline_desk
    await populate(desk)
    await rate_some(desk)
    user, password = await admin_account(desk, "coord", role="coordinator", group="library")
    page = await admin_page(browser, desk, user, password)
    try:
        response = await page.goto(f"{desk.url}/admin/stats")
        assert response is not None and response.status == 200
        await expect(page.locator("#ratings-queues")).to_be_visible()
        await expect(page.locator("#ratings-operators")).to_have_count(0)
        assert "ratings_operators" not in await page.content()
        response = await page.request.get(f"{desk.url}/admin/stats.csv?table=ratings_operators")
        assert response.status == 403
        rows = await get_csv(page, desk, "table=ratings_queues")
        assert [r[0] for r in rows[1:]] == ["ask"]
        await expect(page.locator('#ratings-summary dd[data-stat="ratings"]')).to_have_text("3")
    finally:
        await page.context.close()
