"""The statistics page in a real browser: counts and percentiles of chats put in the store
with known times, the SVG charts, the CSV downloads (matching the page, guarded against
formulas), time zones, bad input, and coordinators kept to their own group's queues.
Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from component.core.models import ChatState
from tests.conftest import ARTIFACTS, Desk, admin_account, admin_page, full_page_screenshot

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)  # the desk's clock: range 03-02..03-31
EVIL_QUEUE = '<script>alert("q")</script>'
EVIL_OPERATOR = '=HYPERLINK("http://evil.example","x")'
_guests = itertools.count(1)


def at(day: int, hour: int, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


def shot(name: str) -> str:
    folder = ARTIFACTS / "admin"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{name}.png")


async def add_chat(
    desk: Desk,
    queue: str,
    asked: datetime | None,
    *,
    wait: int | None = None,
    duration: int | None = None,
    operator: str | None = None,
    end: ChatState | None = None,
    ticket: bool = False,
) -> int:
    """One chat through the store's public methods, at the given times: asked at `asked`
    (None: never asked), accepted `wait` seconds later by `operator`, ended `duration`
    seconds after that (or ended as `end` 5 minutes after asking), with a referral
    ticket if `ticket`."""
    store = desk.refdesk.store
    q = await store.queues.by_name(queue)
    assert q is not None
    n = next(_guests)
    created = (asked or NOW) - timedelta(seconds=30)
    chat = await store.chats.create(
        q.id, f"guest-stats{n}", f"resume-stats{n}", None, None, created
    )
    if asked is None:
        return chat.id
    await store.chats.set_asked_at(chat.id, asked)
    if wait is not None:
        op = await store.operators.by_jid(operator or "")
        assert op is not None
        accepted = asked + timedelta(seconds=wait)
        await store.chats.set_state(chat.id, ChatState.ACTIVE, accepted, operator_id=op.id)
        if duration is not None:
            await store.chats.set_state(
                chat.id, ChatState.ENDED, accepted + timedelta(seconds=duration), ended_by="patron"
            )
    elif end is not None:
        await store.chats.set_state(chat.id, end, asked + timedelta(minutes=5), ended_by="system")
    if ticket:
        await store.tickets.create(
            kind="referral",
            queue_id=q.id,
            question="Please send me the article",
            now=asked + timedelta(minutes=20),
            mails=lambda _ticket_id: [],
            chat_id=chat.id,
        )
    return chat.id


async def populate(desk: Desk) -> None:
    """Queue `ask` (group library; seeded) and queue `branchq` (group branch, a title that
    is markup), operators alice and bob (ask) and a formula-named one (branchq only)."""
    desk.clock.set(NOW)
    store = desk.refdesk.store
    branch = await store.groups.add("branch", "Branch library", NOW)
    await store.queues.add("branchq", branch.id, EVIL_QUEUE, None, NOW)
    ops = {
        "alice@example.org": ("Alice", "ask"),
        "bob@example.org": ("Bob", "ask"),
        "carol@example.org": (EVIL_OPERATOR, "branchq"),
    }
    for jid, (name, queue) in ops.items():
        op = await store.operators.upsert(jid, name, 3, NOW)
        q = await store.queues.by_name(queue)
        assert q is not None
        await store.operators.assign(q.id, op.id)
    # ask: ten answered chats, waits 10..100 s, durations 60..600 s, at 09/10/11 UTC on
    # 03-10..03-19; alice took the first six, bob the rest; the first was also referred.
    for i in range(10):
        await add_chat(
            desk,
            "ask",
            at(10 + i, 9 + i % 3),
            wait=10 * (i + 1),
            duration=60 * (i + 1),
            operator="alice@example.org" if i < 6 else "bob@example.org",
            ticket=i == 0,
        )
    await add_chat(desk, "ask", at(20, 14), end=ChatState.MISSED)
    await add_chat(desk, "ask", at(21, 14), end=ChatState.ENDED)  # left before anyone came
    await add_chat(desk, "ask", at(22, 15), end=ChatState.FOLLOWED_UP)
    await add_chat(desk, "ask", at(31, 11))  # still waiting
    await add_chat(desk, "ask", None)  # opened, never asked: not counted
    # Before the default range: a very long wait that would show in p99 if counted.
    await add_chat(
        desk, "ask", at(1, 10, month=2), wait=5000, duration=10, operator="bob@example.org"
    )
    # branchq: one answered, two missed.
    await add_chat(desk, "branchq", at(15, 8), wait=5, duration=30, operator="carol@example.org")
    await add_chat(desk, "branchq", at(16, 8), end=ChatState.MISSED)
    await add_chat(desk, "branchq", at(17, 8), end=ChatState.MISSED)
    await desk.service.reload_directory()


async def summary(page: Page) -> dict[str, str]:
    """The summary's counts, and its wait and duration percentiles as 'p50 / p90 / p99'."""
    out = {}
    for key in ("asked", "answered", "missed", "followed_up", "open"):
        cell = page.locator(f'#stats-summary dd[data-stat="{key}"]')
        out[key] = (await cell.inner_text()).strip()
    for key in ("wait", "duration"):
        cells = page.locator(f'#stats-timing tr[data-stat="{key}"] td')
        out[key] = " / ".join([(await cells.nth(i).inner_text()).strip() for i in range(3)])
    return out


async def table_rows(page: Page, table_id: str) -> list[list[str]]:
    """The body rows of a table (row header and cells), by their text content (the
    tables behind the charts are inside a closed <details>)."""
    # Read in one round trip to the browser: a call per cell made a table of 30 days
    # cost some 200 round trips.
    rows: list[list[str | None]] = await page.locator(f"#{table_id} tbody tr").evaluate_all(
        "rows => rows.map(row => Array.from(row.querySelectorAll('th, td'),"
        " cell => cell.textContent))"
    )
    return [[" ".join((text or "").split()) for text in row] for row in rows]


async def get_csv(page: Page, desk: Desk, query: str) -> list[list[str]]:
    response = await page.request.get(f"{desk.url}/admin/stats.csv?{query}")
    assert response.status == 200, await response.text()
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    text = (await response.body()).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


ASK_ROW = ["14", "10", "2", "2", "1"]
ASK_TIMES = ["50 s", "1 min 30 s", "1 min 40 s", "5 min 00 s", "9 min 00 s", "10 min 00 s"]
BRANCH_ROW = ["3", "1", "2", "0", "0", "5 s", "5 s", "5 s", "30 s", "30 s", "30 s"]
ALICE_ROW = ["6", "6", "0", "1", "0", "30 s", "1 min 00 s", "1 min 00 s"]
ALICE_ROW += ["3 min 00 s", "6 min 00 s", "6 min 00 s"]
BOB_ROW = ["4", "4", "0", "0", "0", "1 min 20 s", "1 min 40 s", "1 min 40 s"]
BOB_ROW += ["8 min 00 s", "10 min 00 s", "10 min 00 s"]
CAROL_ROW = ["1", "1", "0", "0", "0", *BRANCH_ROW[5:]]


def same_counts(page_rows: list[list[str]], csv_rows: list[list[str]], first: int) -> None:
    """The CSV's count columns (from index `first`) are the page table's count cells."""
    assert len(page_rows) == len(csv_rows)
    for shown, downloaded in zip(page_rows, csv_rows, strict=True):
        assert shown[1:6] == downloaded[first : first + 5], (shown, downloaded)


async def show(page: Page) -> int:
    async with page.expect_navigation() as nav:
        await page.locator("form.stats-filters").get_by_role("button", name="Show").click()
    response = await nav.value
    assert response is not None
    return response.status


async def test_stats_page_counts_percentiles_charts_and_csv(
    offline_desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    desk = offline_desk
    await populate(desk)
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    alerts: list[str] = []
    csp: list[str] = []
    page.on("dialog", lambda d: alerts.append(d.message))
    page.on("console", lambda m: csp.append(m.text) if "Content Security" in m.text else None)
    try:
        await page.get_by_role("link", name="Statistics").click()
        await expect(page.get_by_role("heading", name="Statistics", level=1)).to_be_visible()
        # Default: every queue, the last 30 days, UTC.
        await expect(page.get_by_label("From", exact=True)).to_have_value("2026-03-02")
        await expect(page.get_by_label("To", exact=True)).to_have_value("2026-03-31")
        await expect(page.get_by_label("Time zone", exact=True)).to_have_value("UTC")
        assert await summary(page) == {
            "asked": "17",
            "answered": "11",
            "missed": "4",
            "followed_up": "2",
            "open": "1",
            # 11 waits 5, 10, 20 ... 100 s: nearest ranks 6, 10 and 11.
            "wait": "50 s / 1 min 30 s / 1 min 40 s",
            # 11 durations 30, 60, 120 ... 600 s: the same ranks.
            "duration": "5 min 00 s / 9 min 00 s / 10 min 00 s",
        }

        # Charts: inline SVG images with a label, a bar per hour and per day.
        hours = page.locator("svg#chart-hours")
        await expect(hours).to_be_visible()
        await expect(hours).to_have_attribute("role", "img")
        label = await hours.get_attribute("aria-label") or ""
        assert label.startswith("Chats asked per hour of day (UTC). 17 chats in all"), label
        bars = hours.locator("rect.bar")
        assert await bars.count() == 24
        height = [
            float(h or "0")
            for h in await bars.evaluate_all("bars => bars.map(b => b.getAttribute('height'))")
        ]
        assert len(height) == 24
        # 08: 3 (branchq), 09: 4, 10: 3, 11: 4 (one still open), 14: 2, 15: 1.
        assert height[9] == height[11] > height[8] == height[10] > height[14] > height[15] > 0
        assert height[0] == height[12] == height[23] == 0
        tip = await bars.nth(9).locator("title").text_content()
        assert tip == "09:00–10:00: 4 chats"
        days = page.locator("svg#chart-days")
        assert await days.locator("rect.bar").count() == 30
        await expect(page.locator("#chart-days title").first).to_have_text(
            "Chats asked per day (UTC)"
        )

        # The tables behind the charts, and per queue and operator.
        hourly = await table_rows(page, "table-hourly")
        assert hourly[9] == ["09:00–10:00", "4", "4", "0", "1", "0"]
        assert hourly[11] == ["11:00–12:00", "4", "3", "0", "0", "1"]
        daily = await table_rows(page, "table-daily")
        assert daily[0][0] == "Mon 2 Mar 2026" and daily[-1][0] == "Tue 31 Mar 2026"
        assert daily[8] == ["Tue 10 Mar 2026", "1", "1", "0", "1", "0"]
        assert daily[-1] == ["Tue 31 Mar 2026", "1", "0", "0", "0", "1"]
        queues = await table_rows(page, "table-queues")
        assert queues == [
            ["Ask us (ask) (ask)", *ASK_ROW, *ASK_TIMES],
            [f"{EVIL_QUEUE} (branchq)", *BRANCH_ROW],
        ]
        operators = await table_rows(page, "table-operators")
        assert operators == [
            [f"{EVIL_OPERATOR} (carol@example.org)", *CAROL_ROW],
            ["Alice (alice@example.org)", *ALICE_ROW],
            ["Bob (bob@example.org)", *BOB_ROW],
        ]
        # Markup in names is text, never markup; no inline style anywhere (CSP).
        assert alerts == [] and csp == []
        assert " style=" not in await page.content()
        await full_page_screenshot(page, shot("stats"))

        # CSV downloads: the same numbers; seconds; formulas defused.
        query = "from=2026-03-02&to=2026-03-31&tz=UTC"
        rows = await get_csv(page, desk, f"table=queues&{query}")
        assert rows[0] == [
            "queue", "title", "asked", "answered", "missed", "followed_up", "open",
            "wait_p50_s", "wait_p90_s", "wait_p99_s",
            "duration_p50_s", "duration_p90_s", "duration_p99_s",
        ]  # fmt: skip
        csv_times = ["50.0", "90.0", "100.0", "300.0", "540.0", "600.0"]
        assert rows[1] == ["ask", "Ask us (ask)", *ASK_ROW, *csv_times]
        assert rows[2][:2] == ["branchq", EVIL_QUEUE]
        same_counts(queues, rows[1:], 2)
        rows = await get_csv(page, desk, f"table=operators&{query}")
        assert rows[1][:2] == ["carol@example.org", "'" + EVIL_OPERATOR]
        assert [r[0] for r in rows[1:]] == [
            "carol@example.org",
            "alice@example.org",
            "bob@example.org",
        ]
        same_counts(operators, rows[1:], 2)
        rows = await get_csv(page, desk, f"table=hourly&{query}")
        assert rows[0] == ["hour", "asked", "answered", "missed", "followed_up", "open"]
        assert rows[10] == ["09:00", "4", "4", "0", "1", "0"]
        same_counts(hourly, rows[1:], 1)
        rows = await get_csv(page, desk, f"table=daily&{query}")
        assert rows[1][0] == "2026-03-02" and rows[-1][0] == "2026-03-31"
        same_counts(daily, rows[1:], 1)
        rows = await get_csv(page, desk, f"table=summary&{query}")
        assert rows[1] == ["2026-03-02", "2026-03-31", "UTC", "17", "11", "4", "2", "1", *csv_times]
        # The page's own link downloads the same file.
        async with page.expect_download() as download_info:
            await page.get_by_role("link", name="Download per queue as CSV").click()
        download = await download_info.value
        assert download.suggested_filename == "refdesk-queues-2026-03-02-2026-03-31.csv"
        saved = tmp_path / "queues.csv"
        await download.save_as(saved)
        linked = list(csv.reader(io.StringIO(saved.read_text("utf-8-sig"))))
        assert linked == await get_csv(page, desk, f"table=queues&{query}")
        response = await page.request.get(f"{desk.url}/admin/stats.csv?table=nope")
        assert response.status == 400

        # Filters: one queue, then one operator.
        await page.get_by_label("Queue", exact=True).select_option("ask")
        assert await show(page) == 200
        assert "queue=ask" in page.url
        got = await summary(page)
        assert [got[k] for k in ("asked", "answered", "missed", "followed_up", "open")] == ASK_ROW
        assert got["wait"] == " / ".join(ASK_TIMES[:3])
        assert got["duration"] == " / ".join(ASK_TIMES[3:])
        assert len(await table_rows(page, "table-queues")) == 1
        await page.get_by_label("Operator", exact=True).select_option("alice@example.org")
        assert await show(page) == 200
        got = await summary(page)
        assert [got[k] for k in ("asked", "answered", "followed_up")] == ["6", "6", "1"]
        assert await table_rows(page, "table-operators") == [
            ["Alice (alice@example.org)", *ALICE_ROW]
        ]

        # Another time zone moves the hours (New York is UTC-4 after 8 March).
        await page.get_by_label("Queue", exact=True).select_option("")
        await page.get_by_label("Operator", exact=True).select_option("")
        await page.get_by_label("Time zone", exact=True).fill("America/New_York")
        assert await show(page) == 200
        hourly = await table_rows(page, "table-hourly")
        assert [(r[0], r[1]) for r in hourly if r[1] != "0"] == [
            ("04:00–05:00", "3"),
            ("05:00–06:00", "4"),
            ("06:00–07:00", "3"),
            ("07:00–08:00", "4"),
            ("10:00–11:00", "2"),
            ("11:00–12:00", "1"),
        ]
        rows = await get_csv(
            page, desk, "table=hourly&from=2026-03-02&to=2026-03-31&tz=America/New_York"
        )
        same_counts(hourly, rows[1:], 1)

        # Bad input: explained next to the field, nothing counted.
        await page.get_by_label("Time zone", exact=True).fill("Mars/Olympus_Mons")
        await page.get_by_label("From", exact=True).fill("2026-03-20")
        await page.get_by_label("To", exact=True).fill("2026-03-10")
        assert await show(page) == 400
        for field, text in (("Time zone", "Unknown time zone"), ("To", "before the start")):
            box = page.get_by_label(field, exact=True)
            await expect(box).to_have_attribute("aria-invalid", "true")
            error = page.locator(f"#{await box.get_attribute('aria-describedby')}")
            await expect(error).to_contain_text(text)
        await expect(page.locator("#stats-summary")).to_have_count(0)
        response = await page.request.get(f"{desk.url}/admin/stats.csv?table=hourly&tz=Nowhere")
        assert response.status == 400
    finally:
        await page.context.close()


@pytest.mark.postgresql_store
async def test_stats_page_on_postgresql(
    offline_desk: Desk, browser: Browser, tmp_path: Path
) -> None:
    """The same figures with the data in PostgreSQL (its own date arithmetic)."""
    await test_stats_page_counts_percentiles_charts_and_csv(offline_desk, browser, tmp_path)


async def test_coordinator_sees_only_their_group(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    await populate(desk)
    user, password = await admin_account(desk, "coord", role="coordinator", group="library")
    page = await admin_page(browser, desk, user, password)
    try:
        response = await page.goto(f"{desk.url}/admin/stats")
        assert response is not None and response.status == 200
        got = await summary(page)
        assert [got[k] for k in ("asked", "answered", "missed", "followed_up", "open")] == ASK_ROW
        assert got["wait"] == " / ".join(ASK_TIMES[:3])
        queues = await table_rows(page, "table-queues")
        assert queues == [["Ask us (ask) (ask)", *ASK_ROW, *ASK_TIMES]]
        names = [r[0] for r in await table_rows(page, "table-operators")]
        assert names == ["Alice (alice@example.org)", "Bob (bob@example.org)"]
        options = await page.get_by_label("Queue", exact=True).locator("option").all_inner_texts()
        assert options == ["All queues", "Ask us (ask) (ask)"]
        options = (
            await page.get_by_label("Operator", exact=True).locator("option").all_inner_texts()
        )
        assert "carol@example.org" not in " ".join(options)
        assert "branchq" not in await page.content()

        # Asking for the other group's queue or operator by URL: 404, as if unknown.
        branch = await desk.refdesk.store.queues.by_name("branchq")
        assert branch is not None
        for query in (
            "queue=branchq",
            f"queue={branch.id}",
            "queue=no-such-queue",
            "operator=carol@example.org",
        ):
            response = await page.goto(f"{desk.url}/admin/stats?{query}")
            assert response is not None and response.status == 404, query
            response = await page.request.get(f"{desk.url}/admin/stats.csv?table=queues&{query}")
            assert response.status == 404, query
        # The CSV without a queue holds their queue only.
        rows = await get_csv(page, desk, "table=queues")
        assert [r[0] for r in rows[1:]] == ["ask"]
        rows = await get_csv(page, desk, "table=summary")
        assert rows[1][3:8] == ASK_ROW
        # Their own queue by id works.
        ask = await desk.refdesk.store.queues.by_name("ask")
        assert ask is not None
        response = await page.goto(f"{desk.url}/admin/stats?queue={ask.id}")
        assert response is not None and response.status == 200
        await expect(page.get_by_label("Queue", exact=True)).to_have_value("ask")
    finally:
        await page.context.close()


async def test_stats_page_passes_axe(offline_desk: Desk, browser: Browser) -> None:
    """No serious or critical axe-core violation, tables behind the charts opened too.
    (The context bypasses the CSP only so that axe itself can be injected.)"""
    from tests.web.test_widget_a11y import violations

    desk = offline_desk
    await populate(desk)
    user, password = await admin_account(desk)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = await context.new_page()
    try:
        await page.goto(f"{desk.url}/admin/stats")
        await page.get_by_label("Username").fill(user)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("heading", name="Statistics", level=1)).to_be_visible()
        for summary_text in ("Chats per hour of day as a table", "Chats per day as a table"):
            await page.get_by_text(summary_text).click()
        await page.get_by_text("How these figures are counted").click()
        problems = await violations(page, "statistics")
        await page.get_by_label("Time zone", exact=True).fill("Nowhere/Special")
        async with page.expect_navigation():
            await page.get_by_role("button", name="Show").click()
        problems += await violations(page, "statistics, bad input")
        assert not problems, problems
    finally:
        await context.close()


async def test_stats_filters_that_look_like_numbers_are_404(offline_desk: Desk) -> None:
    """A queue or operator filter of digits Python does not read as a number ("²", or
    more digits than int() accepts) was a 500; it is an unknown queue or operator."""
    from tests.test_directory_parity import admin_session

    session, _token = await admin_session(offline_desk)
    async with session:
        for query in ("queue=²", "operator=²", f"queue={'9' * 5000}", "queue=99999999999999999999"):
            for path in ("/admin/stats", "/admin/stats.csv?table=queues"):
                sep = "&" if "?" in path else "?"
                async with session.get(f"{offline_desk.url}{path}{sep}{query}") as resp:
                    assert resp.status == 404, (path, query[:30], resp.status)
        async with session.get(f"{offline_desk.url}/admin/stats") as resp:
            assert resp.status == 200


async def test_stats_and_transcript_dates_at_the_ends_of_the_calendar(offline_desk: Desk) -> None:
    """The first and last days a date can hold, in zones on either side of UTC: the day
    after 9999-12-31 (or the instant before 0001-01-01) does not exist, and asking for it
    was a 500. Each is a clear refusal or an empty report, and the page goes on."""
    from tests.test_directory_parity import admin_session

    session, _token = await admin_session(offline_desk)
    async with session:
        for tz in ("UTC", "America/Chicago", "Pacific/Kiritimati"):
            for day in ("9999-12-31", "0001-01-01"):
                for path in (
                    f"/admin/stats?from={day}&to={day}&tz={tz}",
                    f"/admin/stats.csv?table=summary&from={day}&to={day}&tz={tz}",
                    f"/admin/transcripts?from={day}&to={day}",
                    f"/admin/transcripts.csv?from={day}&to={day}",
                ):
                    async with session.get(f"{offline_desk.url}{path}") as resp:
                        assert resp.status in (200, 400), (path, resp.status)
        async with session.get(f"{offline_desk.url}/admin/stats") as resp:
            assert resp.status == 200
