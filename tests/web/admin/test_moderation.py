"""The moderation pages: bans (create, refuse, lift, audit, ladder look-up) and incidents
(list, view, resolve, explicit reports, related chats), in a real browser and with a plain
HTTP client. Patrons come through a trusted loopback proxy with X-Forwarded-For, as in
tests/test_bans_end_to_end.py."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from component.core.changes import QueueUpdate
from component.core.models import Presence
from tests.conftest import (
    ADMIN_PASSWORD,
    ARTIFACTS,
    Desk,
    admin_account,
    admin_page,
    full_page_screenshot,
    wait_for,
)
from tests.patron_client import ProxiedPatron

TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
PATRON_IP = "203.0.113.45"
SHOTS = ARTIFACTS / "admin"
_n = itertools.count(1)


# Helpers shared with test_records.py ----------------------------------------------------


async def patron_from(desk: Desk, ip: str, queue: str = "ask") -> ProxiedPatron:
    patron = ProxiedPatron(desk.url, queue, ip)
    desk.patrons.append(patron)
    await patron.connect()
    return patron


async def first_frame(desk: Desk, ip: str, queue: str = "ask") -> dict[str, Any]:
    """What a fresh widget socket from `ip` is told first."""
    async with aiohttp.ClientSession(headers={"X-Forwarded-For": ip}) as s:
        ws = await s.ws_connect(desk.url.replace("http", "ws", 1) + f"/ws/{queue}")
        await ws.send_str('{"type": "hello"}')
        frame: dict[str, Any] = json.loads((await ws.receive(timeout=5)).data)
        await ws.close()
        return frame


async def operator_on(desk: Desk, queue: str = "ask", name: str = "Ana") -> str:
    """An operator of `queue`, available as far as the service knows (no XMPP needed)."""
    store = desk.refdesk.store
    jid = f"{name.lower()}{next(_n)}@example.org"
    op = await store.operators.upsert(jid, name, 5, datetime.now(UTC))
    found = await store.queues.by_name(queue)
    assert found is not None
    await store.operators.assign(found.id, op.id)
    await desk.service.reload_directory()
    await desk.service.on_operator_presence(jid, "laptop", Presence.AVAILABLE)
    return jid


def guest_of(desk: Desk, chat_id: int | None) -> str:
    live = next(c for c in desk.service.open_chats() if c.id == chat_id)
    return str(live.guest)


async def chat(
    desk: Desk,
    ip: str,
    patron_lines: tuple[str, ...],
    operator_lines: tuple[str, ...] = (),
    *,
    jid: str,
    queue: str = "ask",
    end: bool = True,
) -> ProxiedPatron:
    """A chat from `ip`: the patron's lines, then the operator's (commands too)."""
    patron = await patron_from(desk, ip, queue)
    for line in patron_lines:
        await patron.say(line)
    guest = guest_of(desk, patron.chat_id)
    for line in operator_lines:
        await desk.service.on_operator_message(jid, guest, line)
    if end:
        await patron.send({"type": "end"})
        await patron.seen("ended")
    return patron


async def other_group(desk: Desk, queue: str = "elsewhere", **settings: object) -> None:
    """A second group ("branch") with its own queue."""
    store = desk.refdesk.store
    group = await store.groups.add("branch", "Branch library", datetime.now(UTC))
    await store.queues.add(queue, group.id, "Ask the branch", None, datetime.now(UTC))
    if settings:
        found = await store.queues.by_name(queue)
        assert found is not None
        await store.queues.update(found.id, QueueUpdate(**settings))
    await desk.service.reload_directory()


class Admin:
    """A logged-in admin page session over plain HTTP."""

    def __init__(self, desk: Desk, session: aiohttp.ClientSession) -> None:
        self.desk = desk
        self.session = session
        self.csrf = ""

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.desk.url + path, allow_redirects=False) as resp:
            return resp.status, await resp.text()

    async def get_raw(self, path: str) -> tuple[int, bytes, str]:
        async with self.session.get(self.desk.url + path, allow_redirects=False) as resp:
            return resp.status, await resp.read(), resp.headers.get("Content-Type", "")

    async def post(self, path: str, data: dict[str, str]) -> tuple[int, str, str]:
        """Returns status, body and the redirect target (if any)."""
        async with self.session.post(
            self.desk.url + path, data={"csrf": self.csrf, **data}, allow_redirects=False
        ) as resp:
            return resp.status, await resp.text(), resp.headers.get("Location", "")


async def admin_client(
    desk: Desk, username: str = "boss", *, role: str = "admin", group: str | None = None
) -> Admin:
    if await desk.refdesk.store.accounts.admin_by_name(username) is None:
        await admin_account(desk, username, role=role, group=group)
    user, password = username, ADMIN_PASSWORD
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    admin = Admin(desk, session)
    _, html = await admin.get("/admin/login")
    token = re.search(r'name="csrf" value="([^"]+)"', html)
    assert token is not None
    async with session.post(
        desk.url + "/admin/login",
        data={"csrf": token.group(1), "username": user, "password": password, "next": "/admin/"},
    ) as resp:
        html = await resp.text()
        assert resp.status == 200, html
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    admin.csrf = found.group(1)
    return admin


async def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    await full_page_screenshot(page, str(SHOTS / name))


# Bans ------------------------------------------------------------------------------------


@TRUSTED
async def test_a_ban_made_in_the_page_bites_at_once_and_a_lift_lets_in(
    offline_desk: Desk, browser: Browser
) -> None:
    desk = offline_desk
    jid = await operator_on(desk)
    patron = await chat(desk, PATRON_IP, ("hello?",), ("Hi, how can I help?",), jid=jid, end=False)
    bystander = await patron_from(desk, "198.51.100.7")
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/bans")
        await page.get_by_role("link", name="New ban").click()
        await page.get_by_label("Address or network").fill(PATRON_IP)
        await page.get_by_label("Reason").fill("threats after two warnings")
        await shot(page, "ban-form.png")
        await page.get_by_role("button", name="Ban now").click()
        await expect(page.get_by_role("status")).to_contain_text(f"Banned {PATRON_IP}/32")
        await expect(page.get_by_role("heading", level=1)).to_contain_text(f"{PATRON_IP}/32")

        # At once: the open connection is told, the open chat ends, the widget refuses.
        banned = await patron.seen("banned")
        assert "appeals@library.example" in banned["text"]
        await wait_for(
            lambda: patron.chat_id not in desk.service.open_chat_ids(), what="chat ended"
        )
        stored = await desk.refdesk.store.chats.by_id(patron.chat_id or 0)
        assert stored is not None and not stored.state.open
        assert (await first_frame(desk, PATRON_IP))["type"] == "banned"
        assert (await bystander.say("still here"))["seq"] >= 1

        await page.goto(f"{desk.url}/admin/bans")
        row = page.get_by_role("row").filter(has_text=f"{PATRON_IP}/32")
        await expect(row).to_contain_text("threats after two warnings")
        await expect(row).to_contain_text("boss (admin page)")
        await expect(row).to_contain_text("active")
        await shot(page, "bans.png")

        await row.get_by_role("link").click()
        await page.get_by_label("Why is it lifted?").fill("appeal upheld: a shared computer")
        await page.get_by_role("button", name="Lift the ban").click()
        await expect(page.get_by_role("status")).to_contain_text("Lifted the ban")
        # At once again: the same address gets a chat.
        assert (await first_frame(desk, PATRON_IP))["type"] == "welcome"
        audit = page.get_by_role("region", name="Audit trail")
        await expect(audit).to_contain_text("appeal upheld: a shared computer")
        await shot(page, "ban-lifted.png")
    finally:
        await page.context.close()
    ban = (await desk.refdesk.store.bans.all())[0]
    trail = await desk.refdesk.store.bans.audit(ban.id)
    assert [(a.action, a.detail) for a in trail] == [
        ("create", "threats after two warnings"),
        ("lift", "appeal upheld: a shared computer"),
    ]
    assert all(a.actor == "boss (admin page)" for a in trail)


@TRUSTED
async def test_refusals_and_bad_input_are_shown_next_to_the_field(
    offline_desk: Desk, browser: Browser
) -> None:
    desk = offline_desk
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        for target, words in (
            ("0.0.0.0/0", "every IPv4 address"),
            ("::/0", "every IPv6 address"),
            ("127.0.0.1", "loopback"),
            ("not an address", "not an IP address"),
        ):
            await page.goto(f"{desk.url}/admin/bans/new")
            await page.get_by_label("Address or network").fill(target)
            await page.get_by_label("Reason").fill("testing refusals")
            await page.get_by_role("button", name="Ban now").click()
            field = page.locator("#f-target")
            await expect(page.locator("#f-target-error")).to_contain_text(words)
            await expect(field).to_have_attribute("aria-invalid", "true")
            await expect(field).to_have_attribute("aria-describedby", re.compile("f-target-error"))
            await expect(field).to_have_value(target)
            await expect(page.get_by_role("alert")).to_contain_text(words)
        await shot(page, "ban-refused.png")

        # Other fields: a missing reason, a bad custom length, permanent with a length.
        await page.goto(f"{desk.url}/admin/bans/new")
        await page.get_by_label("Address or network").fill("192.0.2.50")
        await page.get_by_label("Another number of days").check()
        await page.get_by_label("Number of days", exact=True).fill("0")
        await page.get_by_role("button", name="Ban now").click()
        await expect(page.locator("#f-reason-error")).to_contain_text("Give a reason")
        await expect(page.locator("#f-days-error")).to_contain_text("from 1 to 3650")
        await expect(page.locator("#f-days")).to_have_attribute("aria-invalid", "true")
        await page.get_by_label("Reason").fill("spam")
        await page.get_by_label("30 days").check()
        await page.get_by_label("Make this ban permanent").check()
        await page.get_by_role("button", name="Ban now").click()
        await expect(page.locator("#f-permanent-error")).to_contain_text("no length")
        await shot(page, "ban-errors.png")
    finally:
        await page.context.close()
    assert await desk.refdesk.store.bans.all() == []

    admin = await admin_client(desk)
    try:
        status, html, _ = await admin.post(
            "/admin/bans/new", {"target": "::/0", "reason": "x", "length": "ladder"}
        )
        assert status == 400 and "every IPv6 address" in html
        status, html, _ = await admin.post(
            "/admin/bans/new",
            {"target": "2001:db8::1", "reason": "x", "length": "ladder", "ipv6_prefix": "7"},
        )
        assert status == 400 and "prefix length from 32 to 128" in html
    finally:
        await admin.session.close()


@TRUSTED
async def test_lengths_permanent_lookup_and_who_may_ban(offline_desk: Desk) -> None:
    desk = offline_desk
    admin = await admin_client(desk)
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    try:
        status, _, where = await admin.post(
            "/admin/bans/new",
            {"target": "192.0.2.9", "reason": "spam", "length": "custom", "days": "10"},
        )
        assert status == 303 and where.startswith("/admin/bans/")
        first = (await desk.refdesk.store.bans.all())[0]
        assert first.ends_at is not None and (first.ends_at - first.starts_at).days == 10
        status, _, _ = await admin.post(
            "/admin/bans/new",
            {"target": "2001:db8:1:2::5", "reason": "spam", "ipv6_prefix": "128"},
        )
        assert status == 303
        assert "2001:db8:1:2::5/128" in {
            str(b.network) for b in await desk.refdesk.store.bans.all()
        }

        # The ladder position: one earlier ban counts, so the next is offence 2 (90 days).
        status, html = await admin.get("/admin/bans/lookup?address=192.0.2.9")
        assert status == 200
        assert "offence 2, lasting 90d" in html and "ban #" in html
        status, html = await admin.get("/admin/bans/lookup?address=nonsense")
        assert status == 400 and 'aria-invalid="true"' in html

        # Permanent only by an explicit choice.
        status, _, _ = await admin.post(
            "/admin/bans/new",
            {"target": "192.0.2.10", "reason": "director's decision", "permanent": "yes"},
        )
        assert status == 303
        permanent = next(
            b for b in await desk.refdesk.store.bans.all() if str(b.network) == "192.0.2.10/32"
        )
        assert permanent.ends_at is None and permanent.permanent
        _, html = await admin.get("/admin/bans")
        assert "never (permanent)" in html

        # A coordinator sees bans and asks for one; the request is an incident, not a ban.
        status, html = await coordinator.get("/admin/bans")
        assert status == 200 and "192.0.2.9/32" in html and "Ask for a ban" in html
        status, html = await coordinator.get("/admin/bans/new")
        assert "Ban now" not in html and "Make this ban permanent" not in html
        status, html, _ = await coordinator.post(
            "/admin/bans/new", {"target": "0.0.0.0/0", "reason": "x", "queue": "ask"}
        )
        assert status == 400 and "every IPv4 address" in html
        status, _, where = await coordinator.post(
            "/admin/bans/new",
            {"target": "198.51.100.23", "reason": "keeps insulting", "queue": "ask",
             "length": "30d"},
        )  # fmt: skip
        assert status == 303 and where.startswith("/admin/incidents/")
        bans = await desk.refdesk.store.bans.all()
        assert "198.51.100.23/32" not in {str(b.network) for b in bans}
        request = (await desk.refdesk.store.incidents.all())[0]
        assert request.kind == "ban-request" and "keeps insulting" in request.notes
        ban_id = bans[0].id
        status, _, _ = await coordinator.post(f"/admin/bans/{ban_id}/lift", {"reason": "x"})
        assert status == 403
        # An admin lifting needs a reason.
        status, html, _ = await admin.post(f"/admin/bans/{ban_id}/lift", {"reason": " "})
        assert status == 400 and "audit log" in html
        status, html = await admin.get("/admin/bans/audit")
        assert status == 200 and "192.0.2.9/32" in html and "create" in html
    finally:
        await admin.session.close()
        await coordinator.session.close()


# Incidents ----------------------------------------------------------------------------------


@TRUSTED
async def test_incidents_list_view_resolve_and_related(
    offline_desk: Desk, browser: Browser
) -> None:
    desk = offline_desk
    jid = await operator_on(desk)
    tagged = await chat(
        desk,
        "203.0.113.60",
        ("you are all useless idiots",),
        ("Please keep it civil.", "!tag incident", "!note warned once"),
        jid=jid,
    )
    # Same address later, and a neighbour in the same /24, and someone unrelated.
    same = await chat(desk, "203.0.113.60", ("me again",), jid=jid)
    near = await chat(desk, "203.0.113.99", ("hello from next door",), jid=jid)
    far = await chat(desk, "198.51.100.5", ("unrelated",), jid=jid)
    incident = await desk.refdesk.store.incidents.first_for_chat(tagged.chat_id or 0, "tagged")
    assert incident is not None
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/incidents")
        row = page.get_by_role("row").filter(has_text=f"#{incident.id}")
        await expect(row).to_contain_text("tagged")
        await expect(row).to_contain_text("203.0.113.60")
        await expect(row).to_contain_text("open")
        await row.get_by_role("link", name=f"#{incident.id}").click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(
            f"Incident #{incident.id}"
        )
        chat_part = page.get_by_role("region", name="The chat")
        await expect(chat_part).to_contain_text("you are all useless idiots")
        await expect(chat_part).to_contain_text("Staff note")
        related = page.get_by_role("region", name="Chats from the same address or network")
        await expect(
            related.get_by_role("row").filter(has_text=f"#{same.chat_id}")
        ).to_contain_text("same address")
        await expect(
            related.get_by_role("row").filter(has_text=f"#{near.chat_id}")
        ).to_contain_text("same /24")
        await expect(related).not_to_contain_text(f"#{far.chat_id} ")
        await shot(page, "incident.png")

        await page.get_by_role("button", name="Resolve the incident").click()
        await expect(page.locator("#f-resolution-error")).to_contain_text("Write what was done")
        await page.get_by_label("Resolution").fill("Warned; no ban for now.")
        await page.get_by_label("Outcome").select_option("warned")
        await page.get_by_role("button", name="Resolve the incident").click()
        await expect(page.get_by_role("status")).to_contain_text("resolved")
        await expect(page.locator(".facts")).to_contain_text("Warned; no ban for now.")
        await page.goto(f"{desk.url}/admin/incidents")
        await expect(page.get_by_role("row").filter(has_text=f"#{incident.id}")).to_have_count(0)
        await page.get_by_role("link", name="Resolved").click()
        await expect(page.get_by_role("row").filter(has_text=f"#{incident.id}")).to_have_count(1)
    finally:
        await page.context.close()
    resolved = await desk.refdesk.store.incidents.get(incident.id)
    assert resolved is not None and resolved.status == "resolved"


@TRUSTED
async def test_explicit_incidents_are_not_quoted(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    jid = await operator_on(desk)
    marker = "OBSCENE-MARKER-q7"
    patron = await chat(
        desk, "203.0.113.70", (f"{marker} and worse",), ("!tag explicit incident",), jid=jid
    )
    incident = await desk.refdesk.store.incidents.first_for_chat(patron.chat_id or 0, "tagged")
    assert incident is not None and incident.explicit
    admin = await admin_client(desk)
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    try:
        for client in (admin, coordinator):
            for path in (
                f"/admin/incidents/{incident.id}",
                f"/admin/transcripts/{patron.chat_id}",
            ):
                status, html = await client.get(path)
                assert status == 200 and marker not in html, path
                assert "not quoted" in html
            status, _ = await client.get(f"/admin/transcripts/{patron.chat_id}.txt")
            assert status == 403
        status, _ = await coordinator.get(f"/admin/incidents/{incident.id}/verbatim")
        assert status == 403
        status, _ = await coordinator.get(f"/admin/transcripts/{patron.chat_id}?verbatim=1")
        assert status == 403
        status, body = await admin.get(f"/admin/transcripts/{patron.chat_id}.txt?verbatim=1")
        assert status == 200 and marker in body
    finally:
        await admin.session.close()
        await coordinator.session.close()

    user, password = await admin_account(desk, "head")
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/incidents/{incident.id}")
        await expect(page.locator("main")).not_to_contain_text(marker)
        await shot(page, "incident-explicit.png")
        await page.get_by_role("button", name="Show verbatim text").click()
        await expect(page.get_by_role("region", name="The chat")).to_contain_text(marker)
    finally:
        await page.context.close()


@TRUSTED
async def test_coordinators_see_only_their_groups_incidents(offline_desk: Desk) -> None:
    desk = offline_desk
    await other_group(desk)
    ours = await operator_on(desk, "ask", "Ana")
    theirs = await operator_on(desk, "elsewhere", "Bo")
    mine = await chat(desk, "203.0.113.80", ("rude",), ("!tag incident",), jid=ours)
    other = await chat(
        desk, "203.0.113.80", ("rude there",), ("!tag incident",), jid=theirs, queue="elsewhere"
    )
    store = desk.refdesk.store
    my_incident = await store.incidents.first_for_chat(mine.chat_id or 0, "tagged")
    their_incident = await store.incidents.first_for_chat(other.chat_id or 0, "tagged")
    assert my_incident is not None and their_incident is not None
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    admin = await admin_client(desk)
    try:
        status, html = await coordinator.get("/admin/incidents?status=all")
        assert status == 200
        assert f'/admin/incidents/{my_incident.id}"' in html
        assert f'/admin/incidents/{their_incident.id}"' not in html
        for path in (
            f"/admin/incidents/{their_incident.id}",
            f"/admin/incidents/{their_incident.id}/verbatim",
        ):
            assert (await coordinator.get(path))[0] == 404, path
        status, _, _ = await coordinator.post(
            f"/admin/incidents/{their_incident.id}/resolve", {"resolution": "mine now"}
        )
        assert status == 404
        # Their own incident does not reveal the other group's chat from the same address.
        status, html = await coordinator.get(f"/admin/incidents/{my_incident.id}")
        assert status == 200 and f'/admin/transcripts/{other.chat_id}"' not in html
        # An admin sees both, and the link between them.
        status, html = await admin.get(f"/admin/incidents/{my_incident.id}")
        assert f'/admin/transcripts/{other.chat_id}"' in html
        assert f'/admin/incidents/{their_incident.id}"' in html
    finally:
        await coordinator.session.close()
        await admin.session.close()


@TRUSTED
async def test_coordinators_do_not_see_other_groups_chats_through_incidents_or_bans(
    offline_desk: Desk,
) -> None:
    """A transfer moves a chat into another group's queue while an incident filed on it
    stays with the first group (and the other way round); a ban may come from another
    group's chat. None of these lets a coordinator read, or learn of, the other group's
    chat or incident."""
    desk = offline_desk
    store = desk.refdesk.store
    await other_group(desk)
    ask = await store.queues.by_name("ask")
    elsewhere = await store.queues.by_name("elsewhere")
    assert ask is not None and elsewhere is not None
    ana = await operator_on(desk, "ask", "Ana")
    bo = await operator_on(desk, "elsewhere", "Bo")
    now = datetime.now(UTC)
    # Filed in our queue, then the chat moved to theirs.
    moved_away = await chat(desk, "203.0.113.61", ("words for the branch only",), jid=ana)
    ours_incident = await store.incidents.add(
        kind="report", reporter=ana, now=now, chat_id=moved_away.chat_id, queue_id=ask.id,
        notes="our report",
    )  # fmt: skip
    await store.chats.set_queue(moved_away.chat_id or 0, elsewhere.id)
    # Filed in their queue, then the chat moved to ours.
    moved_here = await chat(
        desk, "203.0.113.62", ("hello again",), jid=bo, queue="elsewhere", end=False
    )
    their_incident = await store.incidents.add(
        kind="report", reporter=bo, now=now, chat_id=moved_here.chat_id, queue_id=elsewhere.id,
        notes="their private report",
    )  # fmt: skip
    await store.chats.set_queue(moved_here.chat_id or 0, ask.id)
    await moved_here.send({"type": "end"})
    await moved_here.seen("ended")
    # A ban from one of their chats.
    theirs = await chat(desk, "203.0.113.63", ("rude",), jid=bo, queue="elsewhere")
    ban = await desk.service.moderation.ban(
        "203.0.113.63", reason="rude", actor=bo, chat_id=theirs.chat_id
    )
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    try:
        status, html = await coordinator.get(f"/admin/incidents/{ours_incident}")
        assert status == 200 and "our report" in html
        assert "words for the branch only" not in html
        assert f'href="/admin/transcripts/{moved_away.chat_id}"' not in html
        for path in (
            f"/admin/transcripts/{moved_here.chat_id}",
            f"/admin/transcripts/{moved_here.chat_id}/delete",
        ):
            status, html = await coordinator.get(path)
            assert status == 200, path
            assert f"/admin/incidents/{their_incident}" not in html, path
            assert f"Incident #{their_incident}" not in html, path
        status, html = await coordinator.get(f"/admin/bans/{ban.id}")
        assert status == 200 and "203.0.113.63" in html
        assert f"/admin/transcripts/{theirs.chat_id}" not in html
        # Bans are service-wide, but who in another group banned is not told: an
        # operator's address is theirs to know.
        await desk.service.moderation.lift("203.0.113.63", actor=bo, detail="appeal upheld")
        ours_ban = await desk.service.moderation.ban("203.0.113.64", reason="rude", actor=ana)
        for path in ("/admin/bans?show=all", f"/admin/bans/{ban.id}", "/admin/bans/audit"):
            status, html = await coordinator.get(path)
            assert status == 200, path
            assert bo not in html, path
            assert "an operator of another group" in html, path
        status, html = await coordinator.get("/admin/bans/lookup?address=203.0.113.63")
        assert status == 200 and bo not in html
        status, html = await coordinator.get(f"/admin/bans/{ours_ban.id}")
        assert ana in html
        # An admin sees all of it.
        admin = await admin_client(desk)
        try:
            status, html = await admin.get(f"/admin/incidents/{ours_incident}")
            assert "words for the branch only" in html
            status, html = await admin.get(f"/admin/transcripts/{moved_here.chat_id}")
            assert f"/admin/incidents/{their_incident}" in html
            status, html = await admin.get(f"/admin/bans/{ban.id}")
            assert f"/admin/transcripts/{theirs.chat_id}" in html
            assert bo in html
        finally:
            await admin.session.close()
    finally:
        await coordinator.session.close()
