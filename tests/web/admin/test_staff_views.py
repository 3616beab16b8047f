"""What coordinators and sysadmins look up on the admin page: a group's coordinators and
referral domains, sticky pickup marks (and clearing one), a patron's rating beside the
transcript. Over plain HTTP with a logged-in session; coordinators kept to their group."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from playwright.async_api import Browser, expect

from component.directory import Directory, GroupChange
from tests.conftest import Desk, admin_account
from tests.web.admin.test_moderation import (
    TRUSTED,
    admin_client,
    chat,
    operator_on,
    other_group,
)


async def test_groups_page_lists_coordinators_and_referral_domains(offline_desk: Desk) -> None:
    desk = offline_desk
    await other_group(desk)
    store = desk.refdesk.store
    group = await store.groups.by_name("library")
    assert group is not None
    await Directory.for_service(desk.service).change_group(
        group,
        GroupChange(coordinator_emails="head@lib.example", referral_domains="lib.example"),
    )
    admin = await admin_client(desk)
    try:
        status, html = await admin.get("/admin/groups")
        assert status == 200
        assert '<th scope="col">Referral domains</th>' in html
        assert "head@lib.example" in html and "<td>lib.example</td>" in html
        # The branch group has none: any domain.
        assert "<td>any</td>" in html
    finally:
        await admin.session.close()


XSS = "<img src=x onerror=alert(1)>"


@TRUSTED
async def test_transcript_view_and_downloads_show_the_patrons_rating(
    offline_desk: Desk,
) -> None:
    desk = offline_desk
    ana = await operator_on(desk, "ask", "Ana")
    rated = await chat(desk, "203.0.113.10", ("hello",), ("Hi there.",), jid=ana)
    plain = await chat(desk, "203.0.113.11", ("hi",), ("Hello.",), jid=ana)
    assert rated.chat_id is not None and plain.chat_id is not None
    comment = f"=HYPERLINK(1) {XSS} very quick"
    await desk.refdesk.store.ratings.add(rated.chat_id, 4, comment, datetime.now(UTC))
    admin = await admin_client(desk)
    try:
        status, html = await admin.get(f"/admin/transcripts/{rated.chat_id}")
        assert status == 200
        assert "<dt>Rating</dt><dd>4 out of 5" in html
        assert XSS not in html and "&lt;img src=x onerror=alert(1)&gt; very quick" in html
        status, html = await admin.get(f"/admin/transcripts/{plain.chat_id}")
        assert "<dt>Rating</dt><dd>not rated</dd>" in html

        _, body, _ = await admin.get_raw(f"/admin/transcripts/{rated.chat_id}.txt")
        assert f"Rating:   4/5: {comment}" in body.decode()
        _, body, _ = await admin.get_raw(f"/admin/transcripts/{plain.chat_id}.txt")
        assert "Rating:   -" in body.decode()
        # Several lines: indented, none passes for an entry of the transcript.
        multi = await chat(desk, "203.0.113.13", ("hey",), ("Hello.",), jid=ana)
        assert multi.chat_id is not None
        await desk.refdesk.store.ratings.add(
            multi.chat_id, 2, "slow\n[12:00] Ana: forged line", datetime.now(UTC)
        )
        _, body, _ = await admin.get_raw(f"/admin/transcripts/{multi.chat_id}.txt")
        text = body.decode()
        assert "Rating:   2/5: slow\n          [12:00] Ana: forged line" in text
        assert "\n[12:00] Ana: forged line" not in text

        _, body, _ = await admin.get_raw(f"/admin/transcripts/{rated.chat_id}.csv")
        rows = list(csv.reader(io.StringIO(body.decode())))
        facts = dict(zip(rows[0], rows[1], strict=True))
        assert facts["rating"] == "4"
        # Patron-typed: a spreadsheet must not run it as a formula.
        assert facts["rating_comment"] == "'" + comment
        assert all(dict(zip(rows[0], r, strict=True))["rating"] == "" for r in rows[2:])
        # The search's CSV: the rating of each chat, never its comment.
        _, body, _ = await admin.get_raw("/admin/transcripts.csv")
        rows = list(csv.reader(io.StringIO(body.decode())))
        by_chat = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
        assert by_chat[str(rated.chat_id)]["rating"] == "4"
        assert by_chat[str(plain.chat_id)]["rating"] == ""
        assert "very quick" not in body.decode()

        # A chat flagged explicit is described, not quoted: its comment too.
        sealed = await chat(desk, "203.0.113.12", ("rude",), ("!tag explicit",), jid=ana)
        assert sealed.chat_id is not None
        await desk.refdesk.store.ratings.add(sealed.chat_id, 1, "rude comment", datetime.now(UTC))
        status, html = await admin.get(f"/admin/transcripts/{sealed.chat_id}")
        assert "<dt>Rating</dt><dd>1 out of 5" in html and "rude comment" not in html
        status, html = await admin.get(f"/admin/transcripts/{sealed.chat_id}?verbatim=1")
        assert "rude comment" in html
    finally:
        await admin.session.close()


@TRUSTED
async def test_a_coordinator_sees_the_rating_of_their_groups_chats_only(
    offline_desk: Desk,
) -> None:
    desk = offline_desk
    await other_group(desk)
    bo = await operator_on(desk, "elsewhere", "Bo")
    theirs = await chat(desk, "198.51.100.2", ("hi",), ("Hello.",), jid=bo, queue="elsewhere")
    assert theirs.chat_id is not None
    await desk.refdesk.store.ratings.add(theirs.chat_id, 1, "secret remark", datetime.now(UTC))
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    try:
        for suffix in ("", ".txt", ".csv"):
            status, body, _ = await coordinator.get_raw(
                f"/admin/transcripts/{theirs.chat_id}{suffix}"
            )
            assert status == 404 and b"secret remark" not in body
    finally:
        await coordinator.session.close()


NAME_XSS = "<script>alert('ana')</script>"


@TRUSTED
async def test_sticky_marks_listed_and_cleared_within_the_group(offline_desk: Desk) -> None:
    """A coordinator sees the sticky pickup marks of their group's chats (who set them,
    why, when), never another group's, and clears one with the page's CSRF token; the
    cleared mark stops routing the patron at once. Names are escaped."""
    desk = offline_desk
    await other_group(desk)
    ana = await operator_on(desk, "ask", "Ana")
    bo = await operator_on(desk, "elsewhere", "Bo")
    ours = await chat(desk, "203.0.113.30", ("rude",), ("!tag incident",), jid=ana)
    theirs = await chat(
        desk, "198.51.100.40", ("rude",), ("!tag incident",), jid=bo, queue="elsewhere"
    )
    store = desk.refdesk.store
    await store.operators.upsert(ana, NAME_XSS, 5, datetime.now(UTC))
    sticky = desk.service.moderation.sticky
    assert [m.operator_jid for m in await sticky.claims("203.0.113.30")] == [ana]
    rows = {r.mark.chat_id: r for r in await store.sticky.rows(datetime.now(UTC), None)}
    mine, other = rows[ours.chat_id or 0], rows[theirs.chat_id or 0]

    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    admin = await admin_client(desk)
    try:
        status, html = await coordinator.get("/admin/bans")
        assert 'href="/admin/bans/sticky"' in html
        status, html = await coordinator.get("/admin/bans/sticky")
        assert status == 200
        assert "203.0.113.30" in html and ana in html and "tagged incident" in html
        assert NAME_XSS not in html and "&lt;script&gt;alert(&#39;ana&#39;)&lt;/script&gt;" in html
        assert f'/admin/transcripts/{ours.chat_id}"' in html
        assert "198.51.100.40" not in html and bo not in html
        assert f"/admin/bans/sticky/{other.id}/clear" not in html

        # Another group's mark: not found, and kept.
        status, _, _ = await coordinator.post(f"/admin/bans/sticky/{other.id}/clear", {})
        assert status == 404
        assert await store.sticky.row(other.id, datetime.now(UTC)) is not None
        # Without the CSRF token: refused, kept.
        async with coordinator.session.post(
            f"{desk.url}/admin/bans/sticky/{mine.id}/clear", allow_redirects=False
        ) as resp:
            assert resp.status == 403
        assert await sticky.claims("203.0.113.30") != []
        for bad in ("0", "99999999999999999999999", "-1", "1e3"):
            status, _, _ = await coordinator.post(f"/admin/bans/sticky/{bad}/clear", {})
            assert status == 404, bad

        status, _, location = await coordinator.post(f"/admin/bans/sticky/{mine.id}/clear", {})
        assert status == 303 and location.startswith("/admin/bans/sticky?done=")
        assert await sticky.claims("203.0.113.30") == []
        status, _, _ = await coordinator.post(f"/admin/bans/sticky/{mine.id}/clear", {})
        assert status == 404  # gone already

        # The admin sees every group's marks, with the group named.
        status, html = await admin.get("/admin/bans/sticky")
        assert "198.51.100.40" in html and "Branch library" in html
        assert "203.0.113.30" not in html
    finally:
        await coordinator.session.close()
        await admin.session.close()


@TRUSTED
async def test_sticky_address_follows_a_stricter_privacy_mode(offline_desk: Desk) -> None:
    desk = offline_desk
    ana = await operator_on(desk, "ask", "Ana")
    await chat(desk, "203.0.113.30", ("rude",), ("!tag incident",), jid=ana)
    await desk.set_queue("ask", privacy="network")
    admin = await admin_client(desk)
    try:
        _, html = await admin.get("/admin/bans/sticky")
        assert "203.0.113.30" not in html and "203.0.113.0/24" in html
    finally:
        await admin.session.close()


@TRUSTED
async def test_sticky_page_in_a_browser_clears_a_mark_and_passes_axe(
    offline_desk: Desk, browser: Browser
) -> None:
    """The page a coordinator uses: accessible (axe, no serious violation), and its
    "Clear" button forgets the mark and says so."""
    from tests.web.test_widget_a11y import violations

    desk = offline_desk
    ana = await operator_on(desk, "ask", "Ana")
    await chat(desk, "203.0.113.30", ("rude",), ("!tag incident",), jid=ana)
    user, password = await admin_account(desk, "coord", role="coordinator", group="library")
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = await context.new_page()
    try:
        await page.goto(f"{desk.url}/admin/bans/sticky")
        await page.get_by_label("Username").fill(user)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("heading", name="Sticky pickup marks")).to_be_visible()
        await expect(page.get_by_role("cell", name="203.0.113.30")).to_be_visible()
        assert await violations(page, "sticky") == []
        await page.get_by_role("button", name="Clear the mark for Ana").click()
        await expect(page.get_by_role("status")).to_contain_text("no longer offered to Ana")
        await expect(page.get_by_role("cell", name="No marks in force.")).to_be_visible()
        assert await desk.service.moderation.sticky.claims("203.0.113.30") == []
    finally:
        await context.close()
