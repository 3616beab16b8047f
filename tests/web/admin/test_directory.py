"""The directory pages (groups, queues, operators, canned messages, embed code) in a real
browser: changes take effect in the running component at once, coordinators stay inside
their group, bad input is explained next to the field, everything is escaped.
Screenshots go to test-artifacts/admin/."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from ipaddress import ip_network
from typing import Any

from playwright.async_api import Browser, Page, expect

from component.core.models import RoutingMode
from tests.conftest import (
    ARTIFACTS,
    Desk,
    admin_account,
    admin_page,
    full_page_screenshot,
    wait_for,
)
from tests.operator_client import OperatorClient


def shot(name: str) -> str:
    folder = ARTIFACTS / "admin"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / f"{name}.png")


async def submit(page: Page, form: str, button: str) -> int:
    """Click a form's button; the HTTP status of the page it leads to (after a redirect,
    the page redirected to)."""
    async with page.expect_navigation() as nav:
        await page.locator(form).get_by_role("button", name=button).click()
    response = await nav.value
    assert response is not None
    return response.status


async def expect_done(page: Page, status: int, text: str) -> None:
    assert status == 200, await page.content()
    assert "done=" in page.url
    await expect(page.get_by_role("status")).to_contain_text(text)


async def expect_field_error(page: Page, form: str, label: str, text: str) -> None:
    """The field is marked invalid, described by an error right after it, saying `text`."""
    field = page.locator(form).get_by_label(label)
    await expect(field).to_have_attribute("aria-invalid", "true")
    described = await field.get_attribute("aria-describedby")
    assert described, label
    error_id = described.split()[0]
    assert error_id.endswith("-error")
    error = page.locator(f"#{error_id}")
    await expect(error).to_be_visible()
    await expect(error).to_contain_text(text, ignore_case=True)
    # Next to the field: right after it (after its label, for a checkbox).
    following = field.locator("xpath=following-sibling::*[1]")
    if await field.get_attribute("type") == "checkbox":
        following = field.locator("xpath=following-sibling::*[2]")
    assert await following.get_attribute("id") == error_id, f"error not next to {label}"


async def fill(page: Page, form: str, values: dict[str, str]) -> None:
    """Type `values` into the fields labelled so in `form`, choosing from menus.
    Which fields are menus is asked of the browser for all of them at once: one question
    after another cost a round trip per field (the queue settings form has twenty)."""
    scope = page.locator(form)
    fields = [scope.get_by_label(label) for label in values]
    tags = await asyncio.gather(*(field.evaluate("e => e.tagName") for field in fields))
    for field, tag, value in zip(fields, tags, values.values(), strict=True):
        if tag == "SELECT":
            await field.select_option(value)
        else:
            await field.fill(value)


async def csrf_of(page: Page) -> str:
    token = await page.locator('input[name="csrf"]').first.get_attribute("value")
    assert token
    return token


# The whole path: pages → store → running component → real operator client ------------------


async def test_admin_builds_a_queue_that_takes_chats_at_once(desk: Desk, browser: Browser) -> None:
    assert desk.server is not None
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/groups")
        await fill(page, "#add-group", {"Group name": "branch", "Group title": "Branch Library"})
        await expect_done(page, await submit(page, "#add-group", "Add group"), "Group branch")
        await expect(page.get_by_role("heading", name="Branch Library")).to_be_visible()

        await page.goto(f"{desk.url}/admin/queues")
        await fill(
            page,
            "#add-queue",
            {"Queue name": "branch-ask", "Group": "branch", "Queue title": "Ask Branch"},
        )
        await expect_done(page, await submit(page, "#add-queue", "Add queue"), "branch-ask")
        assert desk.service.is_queue("branch-ask")
        await page.locator("#queue-settings").get_by_label("Routing").select_option("round-robin")
        await expect_done(
            page, await submit(page, "#queue-settings", "Save settings"), "settings saved"
        )
        assert desk.service.queue("branch-ask").routing is RoutingMode.ROUND_ROBIN

        # The operator's account exists on the XMPP server; the page makes it an operator.
        account = f"branchop{secrets.token_hex(3)}"
        account_password = secrets.token_hex(8)
        await desk.server.register(account, account_password)
        jid = f"{account}@{desk.server.domain}"
        await page.goto(f"{desk.url}/admin/operators")
        await fill(
            page,
            "#add-operator",
            {"XMPP address": jid, "Display name": "Bea", "Max chats at once": "2"},
        )
        await page.locator("#add-operator").get_by_label("Member of branch-ask").check()
        await expect_done(page, await submit(page, "#add-operator", "Add operator"), jid)
        assert desk.service.queues_of(jid) == ["branch-ask"]
        op = desk.service.operator(jid)
        assert op is not None and op.name == "Bea" and op.max_chats == 2
        await full_page_screenshot(page, shot(f"operator-added-{desk.server.kind}"))

        # A real operator client logs in: the queue's contact request is waiting for it.
        client = OperatorClient(jid, account_password, desk.server.host, desk.server.c2s_port)
        await client.connect()
        desk.clients.append(client)
        await wait_for(lambda: desk.service.presence_of(jid).takes_chats, what="Bea available")
        await page.goto(f"{desk.url}/admin/operators")
        row = page.get_by_role("row").filter(has_text=jid)
        await expect(row).to_contain_text("available")

        patron = await desk.patron("branch-ask")
        await patron.say("Do you have the local history archive?")
        while True:
            offer = await client.next_message(timeout=15)
            if "local history archive" in offer["body"]:
                break
        client.send_message(offer["from"].bare, "Yes, on the second floor.")
        reply = await patron.next("message", lambda f: f["from"] == "operator")
        assert reply["name"] == "Bea" and "second floor" in reply["text"]
    finally:
        await page.context.close()


# Coordinators --------------------------------------------------------------------------------


async def _other_group(desk: Desk) -> dict[str, Any]:
    """A second group with a queue, an operator, a link, an exemption and canned messages;
    plus an operator shared between the two groups."""
    store = desk.refdesk.store
    now = datetime.now(UTC)
    other = await store.groups.add("elsewhere", "Elsewhere Library", now)
    theirs = await store.queues.add("theirs", other.id, "Their queue", None, now)
    ask = await store.queues.by_name("ask")
    assert ask is not None
    op = await store.operators.upsert("zed@example.org", "Zed", 3, now)
    await store.operators.assign(theirs.id, op.id)
    shared = await store.operators.upsert("sam@example.org", "Sam", 3, now)
    await store.operators.assign(theirs.id, shared.id, on_call=True)
    await store.operators.assign(ask.id, shared.id)
    await store.links.add(other.id, "Their hours", "https://elsewhere.example/hours")
    await store.exempt.add(other.id, "198.51.100.0/24", "their PCs")
    await store.canned.save("their-hello", "Hello from elsewhere", group_id=other.id)
    await store.canned.save("their-queue", "Queue text", queue_id=theirs.id)
    await desk.service.reload_directory()
    return {
        "group": other,
        "queue": theirs,
        "op": op,
        "shared": shared,
        "link": (await store.links.rows(other.id))[0],
        "exempt": (await store.exempt.rows(other.id))[0],
        "canned": (await store.canned.rows(group_id=other.id))[0],
        "queue_canned": (await store.canned.rows(queue_id=theirs.id))[0],
    }


async def _snapshot(desk: Desk) -> tuple[Any, ...]:
    store = desk.refdesk.store
    groups = await store.groups.all()
    queues = await store.queues.all()
    return (
        groups,
        queues,
        await store.operators.all(),
        await store.operators.assignments(),
        [await store.links.rows(g.id) for g in groups],
        [await store.exempt.rows(g.id) for g in groups],
        await store.canned.rows(),
        [await store.canned.rows(group_id=g.id) for g in groups],
        [await store.canned.rows(queue_id=q.id) for q in queues],
    )


async def test_coordinator_cannot_reach_another_groups_data(
    offline_desk: Desk, browser: Browser
) -> None:
    desk = offline_desk
    data = await _other_group(desk)
    user, password = await admin_account(desk, "coord", role="coordinator", group="library")
    page = await admin_page(browser, desk, user, password)
    try:
        # The lists show their own group only.
        await page.goto(f"{desk.url}/admin/groups")
        await expect(page.get_by_role("link", name="library", exact=False)).to_have_count(1)
        await expect(page.get_by_text("Elsewhere Library")).to_have_count(0)
        await expect(page.locator("#add-group")).to_have_count(0)
        await page.goto(f"{desk.url}/admin/queues")
        await expect(page.get_by_role("link", name="Their queue")).to_have_count(0)
        await expect(page.get_by_label("Group")).to_have_value("library")
        await page.goto(f"{desk.url}/admin/operators")
        await expect(page.get_by_text("zed@example.org")).to_have_count(0)
        # The shared operator is visible, with only this group's queue.
        row = page.get_by_role("row").filter(has_text="sam@example.org")
        await expect(row).to_contain_text("ask")
        await expect(row).not_to_contain_text("theirs")
        await page.get_by_role("link", name="Sam").click()
        await expect(page.get_by_label("Member of ask")).to_be_checked()
        await expect(page.get_by_label("Member of theirs")).to_have_count(0)
        await full_page_screenshot(page, shot("coordinator-operator"))

        token = await csrf_of(page)
        before = await _snapshot(desk)
        g, q, op, shared = data["group"], data["queue"], data["op"], data["shared"]
        gets = [
            f"/admin/groups/{g.name}",
            f"/admin/queues/{q.name}",
            f"/admin/queues/{q.name}?preview=1",
            f"/admin/operators/{op.id}",
        ]
        for path in gets:
            resp = await page.request.get(f"{desk.url}{path}", max_redirects=0)
            assert resp.status == 404, path
            assert "elsewhere" not in (await resp.text()).lower(), path
        resp = await page.request.get(f"{desk.url}/admin/canned", max_redirects=0)
        assert resp.status == 403

        posts: list[tuple[str, dict[str, str], int]] = [
            (f"/admin/groups/{g.name}", {"title": "Hacked", "appeal_email": ""}, 404),
            (f"/admin/groups/{g.name}/delete", {"confirm": "1"}, 403),
            (f"/admin/groups/{g.name}/links", {"title": "X", "url": "https://x.example"}, 404),
            (f"/admin/groups/{g.name}/links/{data['link'].id}/delete", {}, 404),
            (f"/admin/groups/{g.name}/exempt", {"network": "203.0.113.0/24", "note": ""}, 404),
            (f"/admin/groups/{g.name}/exempt/{data['exempt'].id}/delete", {}, 404),
            (f"/admin/groups/{g.name}/canned", {"name": "x", "text": "y"}, 404),
            (f"/admin/groups/{g.name}/canned/{data['canned'].id}", {"name": "x", "text": "y"}, 404),
            (f"/admin/groups/{g.name}/canned/{data['canned'].id}/delete", {}, 404),
            # Their objects through my own group's URLs: still not found.
            (f"/admin/groups/library/links/{data['link'].id}/delete", {}, 404),
            (f"/admin/groups/library/exempt/{data['exempt'].id}/delete", {}, 404),
            (f"/admin/groups/library/canned/{data['canned'].id}/delete", {}, 404),
            (f"/admin/queues/ask/canned/{data['queue_canned'].id}/delete", {}, 404),
            ("/admin/groups", {"name": "mine", "title": "Mine"}, 403),
            ("/admin/queues", {"name": "sneaky", "group": g.name, "title": "S"}, 404),
            (f"/admin/queues/{q.name}", {"title": "Hacked", "routing": "ring-all"}, 404),
            (f"/admin/queues/{q.name}/delete", {"confirm": "1"}, 404),
            (f"/admin/queues/{q.name}/canned", {"name": "x", "text": "y"}, 404),
            (
                f"/admin/queues/{q.name}/canned/{data['queue_canned'].id}/delete",
                {},
                404,
            ),
            (f"/admin/queues/{q.name}/operators/{op.id}/remove", {}, 404),
            (f"/admin/queues/{q.name}/operators/{shared.id}/remove", {}, 404),
            (f"/admin/queues/ask/operators/{op.id}/remove", {}, 404),
            (f"/admin/operators/{op.id}", {"name": "Hacked", "max_chats": "9"}, 404),
            (f"/admin/operators/{op.id}/delete", {"confirm": "1"}, 404),
            # Adding someone to another group's queue, or the shared operator to it.
            (
                "/admin/operators",
                {"jid": "new@example.org", "name": "N", "max_chats": "3", "queue": q.name},
                404,
            ),
            (
                f"/admin/operators/{shared.id}",
                {"name": "Sam", "max_chats": "3", "queue": q.name},
                404,
            ),
            ("/admin/canned", {"name": "x", "text": "y"}, 403),
            ("/admin/canned/1/delete", {}, 403),
        ]
        for path, form, status in posts:
            resp = await page.request.post(
                f"{desk.url}{path}", form={"csrf": token, **form}, max_redirects=0
            )
            assert resp.status == status, (path, resp.status)
        assert await _snapshot(desk) == before

        # Their own changes to the shared operator leave the other group's queue alone;
        # the name and max chats are the other group's too, so only an admin's to change.
        await page.goto(f"{desk.url}/admin/operators/{shared.id}")
        await expect(page.get_by_label("Display name")).to_have_attribute("readonly", "readonly")
        await expect(page.get_by_label("Max chats at once")).to_have_attribute(
            "readonly", "readonly"
        )
        await page.get_by_label("On call for ask").check()
        await expect_done(page, await submit(page, "#operator-settings", "Save operator"), "saved")
        assignments = {
            (a.queue_id, a.on_call)
            for a in await desk.refdesk.store.operators.assignments()
            if a.operator_id == shared.id
        }
        ask = await desk.store_queue("ask")
        assert assignments == {(q.id, True), (ask.id, True)}
        # Removing "from my queues" keeps them in the other group's queue.
        await page.get_by_label("Yes, remove").check()
        await expect_done(
            page, await submit(page, ".danger-zone", "Remove from my queues"), "removed"
        )
        assert desk.service.queues_of("sam@example.org") == ["theirs"]
        await page.goto(f"{desk.url}/admin/operators")
        await expect(page.get_by_text("sam@example.org")).to_have_count(0)

        # A backup queue of another group (set by an admin) is kept, and not named.
        await desk.set_queue("ask", rollover_after=60.0, backup_queue_id=q.id)
        await page.goto(f"{desk.url}/admin/queues/ask")
        backup = page.locator("#queue-settings").get_by_label("Backup queue")
        await expect(backup.locator("option:checked")).to_contain_text("another group")
        assert "theirs" not in await page.content()
        await page.locator("#queue-settings").get_by_label("Title").fill("Ask us, please")
        await expect_done(page, await submit(page, "#queue-settings", "Save settings"), "saved")
        kept = desk.service.queue("ask")
        assert (kept.title, kept.backup_queue_id) == ("Ask us, please", q.id)
    finally:
        await page.context.close()


# Bad input -----------------------------------------------------------------------------------


async def test_bad_input_is_explained_next_to_the_field(
    offline_desk: Desk, browser: Browser
) -> None:
    desk = offline_desk
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        # Queues: a bad name, then a taken one.
        await page.goto(f"{desk.url}/admin/queues")
        await fill(
            page, "#add-queue", {"Queue name": "Bad Name!", "Group": "library", "Queue title": ""}
        )
        assert await submit(page, "#add-queue", "Add queue") == 400
        await expect_field_error(page, "#add-queue", "Queue name", "not a valid queue name")
        await expect(page.locator("#add-queue").get_by_label("Queue name")).to_have_value(
            "Bad Name!"
        )
        await expect(page.get_by_role("alert")).to_contain_text("not a valid queue name")
        await full_page_screenshot(page, shot("queue-bad-name"))
        await fill(page, "#add-queue", {"Queue name": "ask"})
        assert await submit(page, "#add-queue", "Add queue") == 400
        await expect_field_error(page, "#add-queue", "Queue name", "already a queue called")

        # Queue settings: hours, time zone, email, colour, partner sites, all at once.
        await page.goto(f"{desk.url}/admin/queues/ask")
        await fill(
            page,
            "#queue-settings",
            {
                # Titles go into email headers: an encoded word could add one.
                "Title": "=?utf-8?q?Ask=0D=0AX-Injected:_yes?=",
                "Hours": "mon-fri 9am to 5",
                "Time zone": "Mars/Olympus_Mons",
                "Closed days": "2026-02-30",
                "Follow-up address": "not an address",
                "Referral address": "a@b@c.example",
                "Colour": "blue",
                "Logo address": "http://insecure.example/logo.png",
                "On-call rule": "lots",
                "Offer timeout (seconds)": "0",
                "Partner sites": "https://ok.example https://bad.example/path",
            },
        )
        assert await submit(page, "#queue-settings", "Save settings") == 400
        form = "#queue-settings"
        await expect_field_error(page, form, "Title", "=?")
        await expect_field_error(page, form, "Hours", "9am")
        await expect_field_error(page, form, "Time zone", "unknown time zone")
        await expect_field_error(page, form, "Closed days", "no such day")
        await expect_field_error(page, form, "Follow-up address", "email address")
        await expect_field_error(page, form, "Referral address", "email address")
        await expect_field_error(page, form, "Colour", "#0b57d0")
        await expect_field_error(page, form, "Logo address", "https")
        await expect_field_error(page, form, "On-call rule", "cannot read the rule")
        await expect_field_error(page, form, "Offer timeout (seconds)", "greater than 0")
        await expect_field_error(page, form, "Partner sites", "no path")
        await expect(page.locator(form).get_by_label("Colour")).to_have_value("blue")
        await full_page_screenshot(page, shot("queue-settings-errors"))
        queue = await desk.store_queue("ask")
        assert queue.hours == "always" and queue.widget_color == "#0b57d0"
        # Good hours but a bad time zone: only the time zone is wrong.
        await fill(
            page,
            form,
            {
                "Hours": "mon-fri 09:00-17:00",
                "Time zone": "Europe/Nowhere",
                "Closed days": "",
                "Follow-up address": "",
                "Referral address": "",
                "Colour": "#0B57D0",
                "Logo address": "",
                "On-call rule": "",
                "Offer timeout (seconds)": "30",
                "Partner sites": "*",
            },
        )
        assert await submit(page, form, "Save settings") == 400
        await expect_field_error(page, form, "Time zone", "unknown time zone")
        await expect(page.locator(form).get_by_label("Hours")).not_to_have_attribute(
            "aria-invalid", "true"
        )

        # Operators: a bad JID, max chats 0, no queue.
        await page.goto(f"{desk.url}/admin/operators")
        await fill(page, "#add-operator", {"XMPP address": "not a jid@@", "Max chats at once": "0"})
        assert await submit(page, "#add-operator", "Add operator") == 400
        await expect_field_error(page, "#add-operator", "XMPP address", "not a valid XMPP")
        await expect_field_error(page, "#add-operator", "Max chats at once", "from 1 to 50")
        await expect(page.locator("#new-operator-queue-error")).to_contain_text(
            "at least one queue"
        )
        await full_page_screenshot(page, shot("operator-errors"))
        await fill(page, "#add-operator", {"XMPP address": "ana@example.org/phone"})
        assert await submit(page, "#add-operator", "Add operator") == 400
        await expect_field_error(page, "#add-operator", "XMPP address", "bare")
        assert await desk.refdesk.store.operators.all() == []

        # Groups: a bad name, a link that is not a link, a network that is not one, a bad
        # appeal address, a canned message with a bad name.
        await page.goto(f"{desk.url}/admin/groups")
        await fill(page, "#add-group", {"Group name": "guest-x"})
        assert await submit(page, "#add-group", "Add group") == 400
        await expect_field_error(page, "#add-group", "Group name", "not a valid group name")
        await page.goto(f"{desk.url}/admin/groups/library")
        await fill(page, "#add-link", {"Link title": "Hours", "Link address": "javascript:x"})
        assert await submit(page, "#add-link", "Add link") == 400
        await expect_field_error(page, "#add-link", "Link address", "http")
        await expect(page.locator("#add-link").get_by_label("Link title")).to_have_value("Hours")
        await fill(page, "#add-exempt", {"Address or network": "10.0.0.300/8"})
        assert await submit(page, "#add-exempt", "Add network") == 400
        await expect_field_error(
            page, "#add-exempt", "Address or network", "not an IP address or network"
        )
        await fill(page, "#group-settings", {"Appeal address": "appeals at example"})
        assert await submit(page, "#group-settings", "Save settings") == 400
        await expect_field_error(page, "#group-settings", "Appeal address", "email address")
        await fill(
            page, "#add-canned", {"Canned message name": "Bad name", "Canned message text": ""}
        )
        assert await submit(page, "#add-canned", "Add canned message") == 400
        await expect_field_error(page, "#add-canned", "Canned message name", "lower-case")
        await expect_field_error(page, "#add-canned", "Canned message text", "Enter the text")
        await full_page_screenshot(page, shot("group-errors"))
        group = await desk.refdesk.store.groups.by_name("library")
        assert group is not None
        assert await desk.refdesk.store.links.rows(group.id) == []
        assert await desk.refdesk.store.exempt.rows(group.id) == []
        # A delete without the confirmation tick, and one the store refuses.
        await page.locator("#delete-h").scroll_into_view_if_needed()
        assert await submit(page, ".danger-zone", "Delete group") == 400
        await expect_field_error(page, ".danger-zone", "Yes, delete", "Tick the box")
        await page.locator(".danger-zone").get_by_label("Yes, delete").check()
        assert await submit(page, ".danger-zone", "Delete group") == 400
        await expect_field_error(page, ".danger-zone", "Yes, delete", "still has 1 queue")
    finally:
        await page.context.close()


# Escaping ------------------------------------------------------------------------------------


async def test_everything_is_escaped(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    evil = "<script>alert(1)</script>"
    try:
        await page.goto(f"{desk.url}/admin/queues")
        await fill(
            page, "#add-queue", {"Queue name": "evil", "Group": "library", "Queue title": evil}
        )
        await expect_done(page, await submit(page, "#add-queue", "Add queue"), "evil")
        await expect(page.get_by_role("heading", name=evil)).to_be_visible()
        await expect(page.locator("#queue-settings").get_by_label("Title")).to_have_value(evil)
        await fill(page, "#add-canned", {"Canned message name": "x", "Canned message text": evil})
        await expect_done(page, await submit(page, "#add-canned", "Add canned message"), "x")
        await page.goto(f"{desk.url}/admin/queues")
        await expect(page.get_by_role("link", name=evil)).to_be_visible()
        await page.goto(f"{desk.url}/admin/groups/library")
        await fill(
            page, "#add-link", {"Link title": evil, "Link address": "https://x.example/?a=<b>"}
        )
        # '<' in a URL is refused; the title is kept as typed, as text.
        assert await submit(page, "#add-link", "Add link") == 400
        await expect(page.locator("#add-link").get_by_label("Link title")).to_have_value(evil)
        await page.goto(f"{desk.url}/admin/queues/evil?done={evil}")
        await expect(page.get_by_role("status")).to_have_text(evil)
        html = await page.content()
        assert "<script>alert(1)" not in html
        assert dialogs == []
    finally:
        await page.context.close()


# Every setting, links, exemptions, canned messages: stored and live at once ------------------


async def test_settings_take_effect_at_once(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    store = desk.refdesk.store
    service = desk.service
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/queues")
        await fill(page, "#add-queue", {"Queue name": "spare", "Group": "library"})
        await expect_done(page, await submit(page, "#add-queue", "Add queue"), "spare")
        spare = await desk.store_queue("spare")
        assert spare.title == "Spare"

        await page.goto(f"{desk.url}/admin/queues/ask")
        form = "#queue-settings"
        await fill(
            page,
            form,
            {
                "Title": "Ask the Library",
                "Routing": "round-robin",
                "Offer timeout (seconds)": "45",
                "Roll over after (seconds)": "90",
                "Backup queue": "spare",
                "Hours": "Mon-Fri 09:00-17:00; sat 10:00-14:00",
                "Time zone": "America/Chicago",
                "Closed days": "2026-12-25, 2027-01-01",
                "On-call rule": "four chats within ten minutes",
                "Follow-up address": "Desk@Library.Example",
                "Referral address": "experts@library.example",
                "Offer email after (seconds)": "300",
                "Patrons' addresses": "network",
                "Forget addresses after (days)": "30",
                "Colour": "#AA3300",
                "Logo address": "https://library.example/logo.png",
                "Greeting": "Hi! Ask us anything.",
                "Text when available": "We're here",
                "Text when away": "Back soon",
                "Text when offline": "Closed now",
                "Partner sites": "https://library.example HTTPS://www.library.example/",
            },
        )
        await page.locator(form).get_by_label("Also delete the transcripts").check()
        await expect_done(page, await submit(page, form, "Save settings"), "saved")
        q = service.queue("ask")
        assert (q.title, q.routing, q.offer_timeout) == (
            "Ask the Library",
            RoutingMode.ROUND_ROBIN,
            45,
        )
        assert (q.rollover_after, q.backup_queue_id) == (90, spare.id)
        assert q.hours == "mon-fri 09:00-17:00; sat 10:00-14:00"
        assert (q.timezone, q.closed_days) == ("America/Chicago", ("2026-12-25", "2027-01-01"))
        assert q.escalation == "4 chats within 10 minutes"
        assert (q.followup_email, q.referral_email, q.max_wait) == (
            "Desk@library.example",
            "experts@library.example",
            300,
        )
        assert (q.privacy, q.retention_days, q.purge_transcripts) == ("network", 30, True)
        assert (q.widget_color, q.widget_logo) == ("#aa3300", "https://library.example/logo.png")
        assert (q.greeting, q.text_available, q.text_away, q.text_offline) == (
            "Hi! Ask us anything.",
            "We're here",
            "Back soon",
            "Closed now",
        )
        assert q.allowed_origins == "https://library.example https://www.library.example"
        assert await store.queues.by_name("ask") == q
        await expect(
            page.get_by_text("Mon–Fri 09:00–17:00, Sat 10:00–14:00 (America/Chicago)").first
        ).to_be_visible()
        # The form shows what is stored.
        await expect(page.locator(form).get_by_label("Backup queue")).to_have_value("spare")
        await expect(page.locator(form).get_by_label("On-call rule")).to_have_value(
            "4 chats within 10 minutes"
        )
        await full_page_screenshot(page, shot("queue-settings"))
        # The spare queue is a backup now: it cannot be deleted.
        await page.goto(f"{desk.url}/admin/queues/spare")
        await page.locator(".danger-zone").get_by_label("Yes, delete").check()
        assert await submit(page, ".danger-zone", "Delete queue") == 400
        await expect_field_error(page, ".danger-zone", "Yes, delete", "backup queue of ask")

        # Queue canned messages: add, see it win over the global one, edit, delete.
        await page.goto(f"{desk.url}/admin/queues/ask")
        await fill(
            page,
            "#add-canned",
            {"Canned message name": "Greeting", "Canned message text": "Welcome to Ask!"},
        )
        await expect_done(page, await submit(page, "#add-canned", "Add canned message"), "greeting")
        effective = {c.name: c for c in await store.canned.for_queue(q.id, q.group_id)}
        assert effective["greeting"].text == "Welcome to Ask!"
        assert effective["greeting"].scope == "queue"
        row = page.locator(".canned-list > li").filter(has_text="Welcome to Ask!")
        await row.get_by_text("Edit").click()
        await row.get_by_label("Text").fill("Welcome, again!")
        await expect_done(page, await submit(page, ".canned-list > li", "Save greeting"), "saved")
        [queue_row] = await store.canned.rows(queue_id=q.id)
        assert queue_row.text == "Welcome, again!"
        await fill(
            page, "#add-canned", {"Canned message name": "greeting", "Canned message text": "dup"}
        )
        assert await submit(page, "#add-canned", "Add canned message") == 400
        await expect_field_error(page, "#add-canned", "Canned message name", "already")
        row = page.locator(".canned-list > li").filter(has_text="Welcome, again!")
        await row.get_by_text("Edit").click()
        await expect_done(
            page, await submit(page, ".canned-list > li", "Delete greeting"), "deleted"
        )
        assert await store.canned.rows(queue_id=q.id) == []

        # The group page: settings, a link, an exemption (live in moderation), canned.
        await page.goto(f"{desk.url}/admin/groups/library")
        await fill(
            page,
            "#group-settings",
            {"Title": "The Library", "Appeal address": "appeals@library.example"},
        )
        await page.locator("#group-settings").get_by_label("Operators may ban").uncheck()
        await expect_done(page, await submit(page, "#group-settings", "Save settings"), "saved")
        group = service.group_of(service.queue("ask"))
        assert group is not None
        assert (group.title, group.operators_may_ban, group.appeal_email) == (
            "The Library",
            False,
            "appeals@library.example",
        )
        await fill(
            page,
            "#add-link",
            {"Link title": "Opening hours", "Link address": "https://library.example/hours"},
        )
        await expect_done(page, await submit(page, "#add-link", "Add link"), "Opening hours")
        assert [(link.title, link.url) for link in await store.links.of_group(group.id)] == [
            ("Opening hours", "https://library.example/hours")
        ]
        await fill(
            page, "#add-exempt", {"Address or network": "192.0.2.77/24", "Note": "Public PCs"}
        )
        await expect_done(page, await submit(page, "#add-exempt", "Add network"), "192.0.2.0/24")
        assert service.moderation.exempt(group.id) == [ip_network("192.0.2.0/24")]
        await fill(
            page,
            "#add-canned",
            {"Canned message name": "card", "Canned message text": "Your card number, please."},
        )
        await expect_done(page, await submit(page, "#add-canned", "Add canned message"), "card")
        await full_page_screenshot(page, shot("group"))
        await page.get_by_role("button", name="Remove 192.0.2.0/24").click()
        await expect(page.get_by_role("status")).to_contain_text("Exemption removed")
        assert service.moderation.exempt(group.id) == []
        await page.get_by_role("button", name="Remove Opening hours").click()
        await expect(page.get_by_role("status")).to_contain_text("Link removed")
        assert await store.links.of_group(group.id) == []
        effective = {c.name: c for c in await store.canned.for_queue(q.id, q.group_id)}
        assert effective["card"].scope == "group"

        # Global canned messages (admins only).
        await page.goto(f"{desk.url}/admin/canned")
        await fill(
            page,
            "#add-canned",
            {"Canned message name": "wifi", "Canned message text": "The wifi is LibraryGuest."},
        )
        await expect_done(page, await submit(page, "#add-canned", "Add canned message"), "wifi")
        assert "wifi" in {c.name for c in await store.canned.rows()}

        # Operators: add, edit (queues, on call, max chats), remove.
        await page.goto(f"{desk.url}/admin/operators")
        await fill(
            page, "#add-operator", {"XMPP address": "Ana@Example.org", "Max chats at once": "3"}
        )
        await page.locator("#add-operator").get_by_label("Member of ask").check()
        await page.locator("#add-operator").get_by_label("On call for ask").check()
        await expect_done(
            page, await submit(page, "#add-operator", "Add operator"), "ana@example.org"
        )
        op = service.operator("ana@example.org")
        assert op is not None and op.name == "Ana"
        assert service.queues_of("ana@example.org") == ["ask"]
        await fill(page, "#operator-settings", {"Max chats at once": "5"})
        await page.locator("#operator-settings").get_by_label("Member of spare").check()
        await page.locator("#operator-settings").get_by_label("On call for ask").uncheck()
        await expect_done(page, await submit(page, "#operator-settings", "Save operator"), "saved")
        assert service.queues_of("ana@example.org") == ["ask", "spare"]
        op = service.operator("ana@example.org")
        assert op is not None and op.max_chats == 5
        assert not any(a.on_call for a in await store.operators.assignments())
        await full_page_screenshot(page, shot("operator"))
        # Leaving one queue from the queue's page.
        await page.goto(f"{desk.url}/admin/queues/spare")
        await page.get_by_role("button", name="Remove Ana from this queue").click()
        await expect(page.get_by_role("status")).to_contain_text("no longer answers spare")
        assert service.queues_of("ana@example.org") == ["ask"]
        await page.goto(f"{desk.url}/admin/operators/{op.id}")
        await page.locator(".danger-zone").get_by_label("Yes, remove").check()
        await expect_done(page, await submit(page, ".danger-zone", "Remove operator"), "removed")
        assert service.operator("ana@example.org") is None
    finally:
        await page.context.close()


async def test_embed_code_and_preview(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/queues/ask")
        code = page.locator("#embed-code")
        await expect(code).to_have_text(
            '<script src="http://127.0.0.1:8080/embed.js" data-queue="ask" async></script>'
        )
        await expect(page.locator("#direct-link")).to_have_attribute(
            "href", "http://127.0.0.1:8080/chat/ask"
        )
        # No preview until asked for: it connects like a patron.
        await expect(page.get_by_title("Widget preview")).to_have_count(0)
        await page.get_by_role("link", name="Show the live preview").click()
        frame = page.get_by_title("Widget preview")
        await expect(frame).to_have_attribute("src", "/chat/ask")
        await frame.scroll_into_view_if_needed()
        await full_page_screenshot(page, shot("queue-embed-preview"))

        # Partner sites that leave no room for a frame: a note, not a broken frame.
        await desk.set_queue("ask", allowed_origins="")
        await page.goto(f"{desk.url}/admin/queues/ask?preview=1")
        await expect(page.get_by_title("Widget preview")).to_have_count(0)
        await expect(page.locator("#preview-note")).to_contain_text("No preview")
        await desk.set_queue("ask", allowed_origins="https://partner.example")
        await page.goto(f"{desk.url}/admin/queues/ask?preview=1")
        await expect(page.get_by_title("Widget preview")).to_have_count(1)
    finally:
        await page.context.close()


async def test_preview_shows_the_widget(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/queues/ask?preview=1")
        widget = page.frame_locator("#widget-preview")
        await expect(widget.locator("body")).to_contain_text("Ask us (ask)", timeout=3000)
    finally:
        await page.context.close()


async def test_unused_queue_and_group_can_be_deleted(offline_desk: Desk, browser: Browser) -> None:
    desk = offline_desk
    user, password = await admin_account(desk)
    page = await admin_page(browser, desk, user, password)
    try:
        await page.goto(f"{desk.url}/admin/groups")
        await fill(page, "#add-group", {"Group name": "pop-up", "Group title": ""})
        await expect_done(page, await submit(page, "#add-group", "Add group"), "pop-up")
        await page.goto(f"{desk.url}/admin/queues")
        await fill(page, "#add-queue", {"Queue name": "pop-up-ask", "Group": "pop-up"})
        await expect_done(page, await submit(page, "#add-queue", "Add queue"), "pop-up-ask")
        assert desk.service.is_queue("pop-up-ask")
        await page.locator(".danger-zone").get_by_label("Yes, delete").check()
        await expect_done(page, await submit(page, ".danger-zone", "Delete queue"), "deleted")
        assert not desk.service.is_queue("pop-up-ask")
        await page.goto(f"{desk.url}/admin/groups/pop-up")
        await page.locator(".danger-zone").get_by_label("Yes, delete").check()
        await expect_done(page, await submit(page, ".danger-zone", "Delete group"), "deleted")
        assert await desk.refdesk.store.groups.by_name("pop-up") is None
        # A queue with a history is kept.
        patron = await desk.patron("ask")
        await patron.say("Hello?")
        await page.goto(f"{desk.url}/admin/queues/ask")
        await page.locator(".danger-zone").get_by_label("Yes, delete").check()
        assert await submit(page, ".danger-zone", "Delete queue") == 400
        await expect_field_error(page, ".danger-zone", "Yes, delete", "has a history")
        assert desk.service.is_queue("ask")
    finally:
        await page.context.close()


async def test_directory_pages_pass_axe(offline_desk: Desk, browser: Browser) -> None:
    """No serious or critical axe-core violation on any directory page, with errors shown
    too. (The context bypasses the CSP only so that axe itself can be injected.)"""
    from tests.web.test_widget_a11y import violations

    desk = offline_desk
    store = desk.refdesk.store
    ask = await desk.store_queue("ask")
    op = await store.operators.upsert("ana@example.org", "Ana", 3, datetime.now(UTC))
    await store.operators.assign(ask.id, op.id)
    # A drafted message to a shared computer's contact, shown on the group page.
    await store.exempt.add(ask.group_id, "203.0.113.0/28", "School", "it@school.example")
    await store.exempt_contacts.add_draft(
        group_id=ask.group_id,
        network="203.0.113.0/28",
        contact_email="it@school.example",
        incidents=(1, 2),
        body="Hello,\n\nTwo incidents.",
        now=datetime.now(UTC),
    )
    await desk.service.reload_directory()
    user, password = await admin_account(desk)
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = await context.new_page()
    try:
        await page.goto(f"{desk.url}/admin/groups")
        await page.get_by_label("Username").fill(user)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("heading", name="Groups", level=1)).to_be_visible()
        problems = await violations(page, "groups")
        for path in (
            "/admin/groups/library",
            "/admin/queues",
            "/admin/queues/ask",
            "/admin/operators",
            f"/admin/operators/{op.id}",
            "/admin/canned",
        ):
            await page.goto(f"{desk.url}{path}")
            for details in await page.locator("details").all():
                await details.locator("summary").click()
            problems += await violations(page, path)
        await page.goto(f"{desk.url}/admin/queues/ask")
        await fill(page, "#queue-settings", {"Colour": "red", "Time zone": "Nowhere"})
        assert await submit(page, "#queue-settings", "Save settings") == 400
        problems += await violations(page, "queue with errors")
        await page.goto(f"{desk.url}/admin/operators")
        assert await submit(page, "#add-operator", "Add operator") == 400
        problems += await violations(page, "operator with errors")
        assert not problems, problems
    finally:
        await context.close()


async def test_coordinator_cannot_rename_or_resize_a_shared_operator(offline_desk: Desk) -> None:
    """An operator who also serves another group is that group's too: their name and
    capacity are for an admin to change. Their place in the coordinator's own queues is
    still the coordinator's."""
    from tests.web.admin.test_moderation import admin_client

    desk = offline_desk
    data = await _other_group(desk)
    shared = data["shared"]
    store = desk.refdesk.store
    ask = await desk.store_queue("ask")
    mine = await store.operators.upsert("olga@example.org", "Olga", 3, datetime.now(UTC))
    await store.operators.assign(ask.id, mine.id)
    await desk.service.reload_directory()
    coordinator = await admin_client(desk, "coord", role="coordinator", group="library")
    try:
        path = f"/admin/operators/{shared.id}"
        status, html = await coordinator.get(path)
        assert status == 200 and "only an admin can change" in html.lower()
        for changed in ({"name": "Hacked"}, {"max_chats": "9"}):
            form = {"name": "Sam", "max_chats": "3", "queue": "ask", **changed}
            status, html, _ = await coordinator.post(path, form)
            assert status == 400, changed
            assert "only an admin can change" in html.lower()
        op = await store.operators.by_id(shared.id)
        assert op is not None and (op.name, op.max_chats) == ("Sam", 3)
        assert desk.service.operator("sam@example.org").name == "Sam"  # type: ignore[union-attr]
        # Unchanged name and capacity: their own queues' settings are saved.
        form = {"name": "Sam", "max_chats": "3", "queue": "ask", "on_call": "ask"}
        status, _, location = await coordinator.post(path, form)
        assert status == 303 and "saved" in location
        assert any(
            a.queue_id == ask.id and a.on_call
            for a in await store.operators.assignments()
            if a.operator_id == shared.id
        )
        # Someone who serves only the coordinator's group is theirs to rename.
        form = {"name": "Olga B.", "max_chats": "4", "queue": "ask"}
        status, _, _ = await coordinator.post(f"/admin/operators/{mine.id}", form)
        assert status == 303
        op = await store.operators.by_id(mine.id)
        assert op is not None and (op.name, op.max_chats) == ("Olga B.", 4)
    finally:
        await coordinator.session.close()
    admin = await admin_client(desk)
    try:
        fields = [("csrf", admin.csrf), ("name", "Samantha"), ("max_chats", "5")]
        fields += [("queue", "ask"), ("queue", "theirs")]
        async with admin.session.post(
            f"{desk.url}/admin/operators/{shared.id}", data=fields, allow_redirects=False
        ) as resp:
            assert resp.status == 303
        op = await store.operators.by_id(shared.id)
        assert op is not None and (op.name, op.max_chats) == ("Samantha", 5)
    finally:
        await admin.session.close()
