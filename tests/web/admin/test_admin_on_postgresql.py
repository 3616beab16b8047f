"""Every admin page, form, search, export and statistics table with the data in
PostgreSQL, in one running refdesk: asyncpg is strict about parameter types (int, text,
dates, NULL, LIMIT) where SQLite is lenient, so each page must answer on PostgreSQL as on
SQLite, and hostile values in query strings must stay a page, a 400 or a 404."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.conftest import Desk
from tests.test_directory_parity import GROUP_FORM, OPERATOR_FORM, QUEUE_FORM
from tests.web.admin.test_hostile_queries import KEYS, PAGES
from tests.web.admin.test_moderation import admin_client
from tests.web.admin.test_records import corpus

pytestmark = pytest.mark.postgresql_store

# The values PostgreSQL reads differently from SQLite: out of BIGINT range, NUL, negative.
HOSTILE = ("99999999999999999999", "\x00", "-1", "9" * 400, "2026-13-45", "%ff")


async def test_every_admin_page_and_form_on_postgresql(offline_desk: Desk) -> None:
    desk = offline_desk
    store = desk.refdesk.store
    assert store.dialect == "postgresql"
    ours, _theirs = await corpus(desk)
    assert ours.chat_id is not None
    ask = await store.queues.by_name("ask")
    assert ask is not None
    incident = await store.incidents.add(
        kind="abuse",
        reporter="ana@example.org",
        now=datetime.now(UTC),
        chat_id=ours.chat_id,
        address="203.0.113.10",
        queue_id=ask.id,
        tags=("threat",),
        notes="reported",
    )
    await desk.set_queue("ask", followup_email="followup@library.example")
    async with (
        aiohttp.ClientSession(headers={"X-Forwarded-For": "192.0.2.77"}) as s,
        s.post(
            f"{desk.url}/api/queues/ask/questions",
            json={"email": "pat@example.org", "name": "Pat", "question": "Atlases?"},
        ) as resp,
    ):
        assert resp.status == 201
    ticket = (await store.tickets.all())[0]
    ana = next(op for op in await store.operators.all() if op.name == "Ana")
    mail = (await store.mail.all())[0]

    admin = await admin_client(desk)
    failures: list[tuple[str, int]] = []

    async def post(path: str, form: dict[str, str], expect: int = 303) -> str:
        status, _html, where = await admin.post(path, form)
        if status != expect:
            failures.append((f"POST {path}", status))
        return where

    try:
        # The directory's forms, each changing what it says.
        await post("/admin/groups", {"name": "annex", "title": "Annex"})
        await post("/admin/groups/annex", {**GROUP_FORM, "title": "The annex"})
        await post("/admin/groups/annex/links", {"title": "Hours", "url": "https://x.example/h"})
        await post("/admin/groups/annex/exempt", {"network": "203.0.113.0/28", "note": "School"})
        await post("/admin/queues", {"name": "annexq", "group": "annex", "title": "Annex"})
        await post("/admin/queues/annexq", {**QUEUE_FORM, "title": "Ask the annex"})
        await post(
            "/admin/operators",
            {**OPERATOR_FORM, "jid": "cy@example.org", "name": "Cy", "queue": "annexq"},
        )
        added = await store.operators.by_jid("cy@example.org")
        assert added is not None
        await post(
            f"/admin/operators/{added.id}", {"name": "Cyd", "max_chats": "2", "queue": "annexq"}
        )
        await post("/admin/groups/annex/canned", {"name": "hello", "text": "Hello!"})
        annex = await store.groups.by_name("annex")
        assert annex is not None and annex.title == "The annex"
        queue = await store.queues.by_name("annexq")
        assert queue is not None and queue.title == "Ask the annex"
        cy = await store.operators.by_jid("cy@example.org")
        assert cy is not None and cy.name == "Cyd" and cy.max_chats == 2
        links = await store.links.rows(annex.id)
        exempt = await store.exempt.rows(annex.id)
        canned = await store.canned.rows(group_id=annex.id)
        assert len(links) == len(exempt) == len(canned) == 1

        where = await post(
            "/admin/bans/new",
            {"target": "192.0.2.9", "reason": "spam", "length": "custom", "days": "10"},
        )
        found = re.search(r"/admin/bans/(\d+)", where)
        assert found is not None, where
        ban_id = int(found.group(1))

        month_ago = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
        details = [
            "/admin/groups/annex",
            "/admin/queues/annexq",
            f"/admin/operators/{cy.id}",
            "/admin/canned",
            f"/admin/bans/{ban_id}",
            "/admin/bans/lookup?address=192.0.2.9",
            f"/admin/incidents/{incident}",
            f"/admin/incidents/{incident}/verbatim",
            f"/admin/transcripts/{ours.chat_id}",
            f"/admin/transcripts/{ours.chat_id}.txt",
            f"/admin/transcripts/{ours.chat_id}.csv",
            f"/admin/transcripts/{ours.chat_id}/delete",
            f"/admin/tickets/{ticket.id}",
            f"/admin/transcripts?text=catalogue&tag=circulation&operator={ana.id}",
            "/admin/transcripts?queue=ask&from=2025-01-01&to=2099-12-31&page=2",
            "/admin/transcripts.csv?text=maps",
            f"/admin/stats?from={month_ago}&queue=ask&tz=Europe/Madrid",
            f"/admin/stats?operator={ana.jid}",
            "/admin/mail?status=pending",
            "/admin/tickets?status=open",
            "/admin/incidents?status=open",
            *(f"/admin/stats.csv?table={t}" for t in ("summary", "queues", "operators", "hourly")),
        ]
        for path in (*PAGES, *details):
            status, _html = await admin.get(path)
            # The statistics export names its table (the details ask for each one).
            if status != (400 if path == "/admin/stats.csv" else 200):
                failures.append((f"GET {path}", status))
        _, html = await admin.get("/admin/transcripts?text=catalogue")
        assert f"/admin/transcripts/{ours.chat_id}" in html

        for path in PAGES:
            for key in KEYS:
                for value in HOSTILE:
                    async with admin.session.get(
                        desk.url + path, params={key: value}, allow_redirects=False
                    ) as resp:
                        if resp.status not in (200, 400, 404):
                            failures.append((f"GET {path}?{key}={value[:12]!r}", resp.status))

        # The forms that act on records, then the deletions.
        resolution = {"resolution": "dealt with", "outcome": "warned"}
        await post(f"/admin/incidents/{incident}/resolve", resolution)
        await post(f"/admin/tickets/{ticket.id}/status", {"status": "closed"})
        await post(f"/admin/mail/{mail.id}/retry", {})
        await post(f"/admin/bans/{ban_id}/lift", {"reason": "appeal granted"})
        await post(f"/admin/transcripts/{ours.chat_id}/delete", {"confirm": "yes"})
        await post(f"/admin/queues/annexq/operators/{cy.id}/remove", {})
        await post(f"/admin/groups/annex/links/{links[0].id}/delete", {})
        await post(f"/admin/groups/annex/exempt/{exempt[0].id}/delete", {})
        await post(f"/admin/groups/annex/canned/{canned[0].id}/delete", {})
        await post(f"/admin/operators/{cy.id}/delete", {"confirm": "on"})
        await post("/admin/queues/annexq/delete", {"confirm": "on"})
        await post("/admin/groups/annex/delete", {"confirm": "on"})
        await post("/admin/logout", {})
    finally:
        await admin.session.close()
    assert failures == [], failures
    assert await store.groups.by_name("annex") is None
    assert (await store.incidents.get(incident)).status != "open"  # type: ignore[union-attr]
