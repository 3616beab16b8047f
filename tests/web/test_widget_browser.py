"""The patron widget in a real browser (Debian's Chromium through Playwright), talking to a
real operator through a real XMPP server. Screenshots of every state go to test-artifacts/
for people to look at: phone size (390x844) and the 400x600 slide-out panel."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import (
    Browser,
    BrowserContext,
    FrameLocator,
    Page,
    Route,
    WebSocket,
    expect,
)

from tests.conftest import ARTIFACTS, Desk
from web.keys import SOCKETS

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def kind_of(desk: Desk) -> str:
    return desk.server.kind if desk.server else "none"


def shot_path(name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    return str(ARTIFACTS / f"{name}.png")


class Session:
    """A browser context and page that record page errors and the WebSocket frames the
    page (or any iframe in it) sends."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.sockets: list[str] = []
        # Requests the browser could not make (offline, refused): the page's retries.
        self.failed_requests = 0
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on(
            "console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None
        )
        page.on("websocket", self._socket)
        page.on("requestfailed", self._request_failed)

    def _request_failed(self, _request: object) -> None:
        self.failed_requests += 1

    def _socket(self, ws: WebSocket) -> None:
        self.sockets.append(ws.url)

        def sent(payload: str | bytes) -> None:
            if isinstance(payload, str):
                self.sent.append(json.loads(payload))

        def received(payload: str | bytes) -> None:
            if isinstance(payload, str):
                self.received.append(json.loads(payload))

        ws.on("framesent", sent)
        ws.on("framereceived", received)

    def frames_sent(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.sent if f.get("type") == kind]


@asynccontextmanager
async def browsing(
    browser: Browser, viewport: dict[str, int] = PHONE, **options: Any
) -> AsyncIterator[Session]:
    context = await browser.new_context(viewport=viewport, **options)  # type: ignore[arg-type]
    session = Session(context, await context.new_page())
    try:
        yield session
    finally:
        await context.close()


@asynccontextmanager
async def partner_site(body: str) -> AsyncIterator[str]:
    """A partner library's page on another origin (its own port) with `body` in it."""

    async def page(_request: web.Request) -> web.Response:
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<title>Partner library</title><link rel="icon" href="data:,"></head><body>'
            "<h1>Springfield Public Library</h1><p>Opening hours, events and more.</p>"
            f"{body}</body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


async def eventually(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def close_patron_sockets(desk: Desk) -> int:
    """Drop every patron WebSocket from the server side, as a flaky network would."""
    runner = desk.refdesk._runner
    assert runner is not None
    sockets = list(runner.app[SOCKETS])
    for ws in sockets:
        await ws.close()
    return len(sockets)


def composing(op: Any, guest: str) -> None:
    """The operator's client says "composing" (XEP-0085), as clients do while one types."""
    msg = op.xmpp.make_message(mto=guest, mtype="chat")
    msg.append(ET.fromstring('<composing xmlns="http://jabber.org/protocol/chatstates"/>'))
    msg.send()


async def take_offer(op: Any, text: str) -> str:
    """The operator gets the chat offer carrying the patron's first message; returns the
    guest's address to answer."""
    offer = await op.next_message()
    assert text in offer["body"], offer["body"]
    return str(offer["from"].bare)


async def test_patron_chats_from_the_widget_page(desk: Desk, browser: Browser) -> None:
    op = await desk.add_operator(name="Ana")
    kind = kind_of(desk)
    async with browsing(browser, PHONE) as s:
        page = s.page
        await page.goto(f"{desk.url}/chat/ask")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "available")
        await expect(page.locator("#rd-greeting")).to_be_visible()
        await page.screenshot(path=shot_path(f"widget-empty-{kind}"))
        box = page.get_by_label("Message")
        await box.fill("Where can I find <b>old maps</b>?")
        # Shift+Enter is a new line, Enter sends.
        await box.press("Shift+Enter")
        await box.type("Thanks!")
        await box.press("Enter")
        guest = await take_offer(op, "Where can I find <b>old maps</b>?\nThanks!")
        op.send_message(guest, "Try https://maps.example.org/old — or ask at the desk.")
        assert "You took this chat" in (await op.next_message(guest))["body"]
        reply = page.locator(".rd-operator").last
        await expect(reply).to_contain_text("ask at the desk")
        await expect(reply.locator(".rd-name")).to_have_text("Ana")
        await expect(reply.locator("time")).to_have_count(1)
        await expect(reply.locator("a")).to_have_attribute("href", "https://maps.example.org/old")
        await expect(reply.locator("a")).to_have_attribute("rel", "noopener noreferrer")
        # What the patron wrote is shown as text, never as HTML.
        await expect(page.locator(".rd-patron .rd-text").first).to_have_text(
            "Where can I find <b>old maps</b>?\nThanks!"
        )
        assert await page.locator(".rd-patron b").count() == 0
        # The operator's typing shows, and goes away with their next message.
        composing(op, guest)
        await expect(page.locator("#rd-typing")).to_have_text("The librarian is typing…")
        await page.screenshot(path=shot_path(f"widget-chat-{kind}"))
        op.send_message(guest, "Anything else?")
        await expect(page.locator("#rd-typing")).to_be_hidden()

        # Reload: the chat comes back from sessionStorage, nothing doubled.
        await page.reload()
        await expect(page.locator(".rd-operator").first).to_contain_text("ask at the desk")
        await expect(page.locator(".rd-operator").last).to_contain_text("Anything else?")
        assert await page.locator(".rd-patron").count() == 1
        assert await page.locator(".rd-operator").count() == 2
        await page.get_by_role("button", name="End chat").click()
        await expect(page.locator("#rd-over")).to_be_visible()
        await expect(page.get_by_role("button", name="Start a new chat")).to_be_focused()
        await expect(page.get_by_label("Message")).to_be_hidden()
        notice = await op.next_message(guest)
        assert "ended" in notice["body"]
        await page.screenshot(path=shot_path(f"widget-ended-{kind}"))
        # A new chat starts empty, with the greeting.
        await page.get_by_role("button", name="Start a new chat").click()
        await expect(page.get_by_label("Message")).to_be_focused()
        await expect(page.locator(".rd-msg")).to_have_count(0)
        await expect(page.locator("#rd-greeting")).to_be_visible()
    assert not s.errors, s.errors


async def _transcript_request(s: Session, chat: FrameLocator, email: str) -> None:
    """Ask for a copy by email: the frame goes out as the protocol says and whatever the
    server answers (a confirmation, or an error while that part is missing) is shown."""
    before = len(s.frames_sent("transcript"))
    form = chat.locator("#rd-tx")
    await form.get_by_label("Email address for a copy of this chat").fill("not-an-address")
    await form.get_by_role("button", name="Send copy").click()
    await expect(chat.locator("#rd-tx-err")).to_contain_text("valid email address")
    await expect(chat.locator("#rd-tx-email")).to_have_attribute("aria-invalid", "true")
    assert len(s.frames_sent("transcript")) == before
    await form.get_by_label("Email address for a copy of this chat").fill(email)
    await form.get_by_role("button", name="Send copy").click()
    await eventually(lambda: len(s.frames_sent("transcript")) > before, "a transcript frame")
    # The page's language goes with it: the copy's own wording comes in it.
    assert s.frames_sent("transcript")[-1] == {"type": "transcript", "email": email, "lang": "en"}
    answer = chat.locator("#rd-tx-ok:not(:empty), #rd-tx-err:not(:empty), #rd-alert:not(:empty)")
    await expect(answer.first).to_be_visible()
    await expect(answer.first).not_to_have_text("Asking for a copy…")


async def test_embedded_button_chat_end_and_transcript(desk: Desk, browser: Browser) -> None:
    """A partner page with the default snippet: a floating button showing availability
    opens a slide-out 400x600 chat; the patron chats, asks for a copy, ends the chat."""
    op = await desk.add_operator(name="Ben")
    kind = kind_of(desk)
    snippet = f'<script src="{desk.url}/embed.js" data-queue="ask" async></script>'
    async with partner_site(snippet) as site, browsing(browser, DESKTOP) as s:
        page = s.page
        await page.goto(site)
        button = page.get_by_role("button", name="Ask a librarian")
        await expect(button).to_contain_text("Available now")
        await expect(button).to_have_attribute("aria-expanded", "false")
        # Nothing of the chat is loaded until the patron asks for it.
        assert await page.locator("iframe").count() == 0
        await page.screenshot(path=shot_path(f"embed-button-{kind}"))
        await button.click()
        frame = page.locator('iframe[title="Chat with a librarian"]')
        panel = page.get_by_role("dialog", name="Chat with a librarian")
        await expect(frame).to_be_visible()
        await expect(panel).to_have_css("opacity", "1")
        size = await frame.bounding_box()
        assert size is not None and size["width"] == 400, size
        chat = page.frame_locator('iframe[title="Chat with a librarian"]')
        await expect(chat.locator("#rd-status")).to_have_attribute("data-status", "available")

        # A copy can be asked for before the chat has even started.
        await chat.get_by_role("button", name="Email me a copy").click()
        await _transcript_request(s, chat, "pat@example.org")
        await chat.get_by_role("button", name="Email me a copy").click()
        await expect(chat.locator("#rd-tx")).to_be_hidden()

        box = chat.get_by_label("Message")
        await box.fill("Do you have the town council minutes from 1952?")
        await chat.get_by_role("button", name="Send").click()
        guest = await take_offer(op, "town council minutes from 1952")
        op.send_message(
            guest, "Yes: they are in the local history room, see https://lib.example.org/lh"
        )
        assert "You took this chat" in (await op.next_message(guest))["body"]
        await expect(chat.locator(".rd-operator").last).to_contain_text("local history room")
        assert s.frames_sent("message")[-1]["text"] == (
            "Do you have the town council minutes from 1952?"
        )
        await page.screenshot(path=shot_path(f"embed-panel-chat-{kind}"))

        # Escape inside the chat closes the panel; the chat is kept for the next open.
        await box.press("Escape")
        await expect(frame).to_be_hidden()
        await expect(button).to_be_focused()
        await button.press("Enter")
        await expect(chat.locator(".rd-operator").last).to_contain_text("local history room")
        await expect(panel).to_have_css("opacity", "1")

        await chat.get_by_role("button", name="End chat").click()
        await expect(chat.locator("#rd-over")).to_be_visible()
        notice = await op.next_message(guest)
        assert "ended" in notice["body"]
        # At the end the copy form is offered right away.
        await expect(chat.locator("#rd-tx")).to_be_visible()
        await _transcript_request(s, chat, "pat@example.org")
        await page.screenshot(path=shot_path(f"embed-panel-ended-{kind}"))
        await page.get_by_role("button", name="Close chat").click()
        await expect(frame).to_be_hidden()
        await expect(button).to_be_focused()

        # On a phone the panel takes the whole screen, its close bar on top.
        await page.set_viewport_size(PHONE)
        await button.click()
        await expect(frame).to_be_visible()
        await expect(panel).to_have_css("opacity", "1")
        size = await frame.bounding_box()
        assert size is not None and size["width"] == PHONE["width"], size
        await expect(page.get_by_role("button", name="Close chat")).to_be_in_viewport()
        await page.screenshot(path=shot_path(f"embed-panel-phone-{kind}"))
    assert not s.errors, s.errors


async def test_embedded_inline_on_a_phone(desk: Desk, browser: Browser) -> None:
    """Inline mode into a target element, in Spanish, on a phone; the popup mode is a link
    to the chat page that opens a window."""
    op = await desk.add_operator(name="Carla")
    kind = kind_of(desk)
    snippet = (
        '<div id="chat-here"></div>'
        f'<script src="{desk.url}/embed.js" data-queue="ask" data-mode="inline"'
        ' data-target="#chat-here" data-lang="es" data-height="640" async></script>'
        f'<p><script src="{desk.url}/embed.js" data-queue="other" data-mode="popup"'
        ' data-label="Chat in a window" async></script></p>'
    )
    async with partner_site(snippet) as site, browsing(browser, PHONE) as s:
        page = s.page
        await page.goto(site)
        frame = page.locator("#chat-here iframe")
        await expect(frame).to_have_attribute("title", "Chatear con la biblioteca")
        chat = page.frame_locator("#chat-here iframe")
        await expect(chat.locator("#rd-status-text")).to_have_text("Disponible")
        await chat.get_by_label("Mensaje").fill("¿Tienen libros en español?")
        await chat.get_by_label("Mensaje").press("Enter")
        guest = await take_offer(op, "¿Tienen libros en español?")
        op.send_message(guest, "Sí, en la segunda planta.")
        assert "You took this chat" in (await op.next_message(guest))["body"]
        await expect(chat.locator(".rd-operator").last).to_contain_text("segunda planta")
        await frame.scroll_into_view_if_needed()
        await page.screenshot(path=shot_path(f"embed-inline-es-{kind}"))

        popup_link = page.get_by_role("link", name="Chat in a window")
        href = await popup_link.get_attribute("href")
        assert href is not None and href.startswith(f"{desk.url}/chat/other?lang=en")
        async with page.expect_popup() as opened:
            await popup_link.click()
        popup = await opened.value
        await expect(popup.locator("#rd-title")).to_have_text("Ask us (other)")
        await popup.close()
    assert not s.errors, s.errors


async def test_network_drop_mid_chat_loses_nothing(desk: Desk, browser: Browser) -> None:
    """The connection drops mid-chat; both sides write meanwhile. After the reconnect every
    message shows exactly once, in the server's order."""
    op = await desk.add_operator(name="Dee")
    kind = kind_of(desk)
    async with browsing(browser, PHONE) as s:
        page = s.page
        await page.goto(f"{desk.url}/chat/ask")
        box = page.get_by_label("Message")
        await box.fill("p1")
        await box.press("Enter")
        guest = await take_offer(op, "p1")
        op.send_message(guest, "o1")
        assert "You took this chat" in (await op.next_message(guest))["body"]
        await expect(page.locator(".rd-operator")).to_have_count(1)

        await s.context.set_offline(True)
        assert await close_patron_sockets(desk) == 1
        await expect(page.locator("#rd-conn")).to_have_text("Reconnecting…")
        for text in ("p2", "p3"):
            await box.fill(text)
            await box.press("Enter")
        await expect(page.locator(".rd-pending")).to_have_count(2)
        op.send_message(guest, "o2")
        op.send_message(guest, "o3")
        # The page tries again while offline (a new socket, or a long-poll request that
        # fails) before the screenshot of its reconnecting state.
        sockets, failed = len(s.sockets), s.failed_requests
        await eventually(
            lambda: len(s.sockets) > sockets or s.failed_requests > failed,
            "a retry while offline",
        )
        await page.screenshot(path=shot_path(f"widget-reconnecting-{kind}"))
        await s.context.set_offline(False)

        await expect(page.locator(".rd-pending")).to_have_count(0)
        await expect(page.locator(".rd-operator")).to_have_count(3)
        await expect(page.locator("#rd-conn")).to_be_empty()
        texts = await page.locator(".rd-msg:not(.rd-system) .rd-text").all_inner_texts()
        seqs = [
            int(x)
            for x in await page.locator(".rd-msg").evaluate_all(
                "els => els.map(e => e.dataset.seq)"
            )
        ]
        assert sorted(texts) == ["o1", "o2", "o3", "p1", "p2", "p3"], texts
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
        assert [t for t in texts if t[0] == "o"] == ["o1", "o2", "o3"]
        assert [t for t in texts if t[0] == "p"] == ["p1", "p2", "p3"]
        # The operator got each patron message once.
        got = [(await op.next_message(guest)).get("body") for _ in range(2)]
        assert got == ["p2", "p3"], got
        # Each message went out under one client id, however often it was sent.
        ids = {f["text"]: f["id"] for f in s.frames_sent("message")}
        assert len({f["id"] for f in s.frames_sent("message")}) == len(ids) == 3

        # A second drop, server side only: the page reconnects by itself.
        await close_patron_sockets(desk)
        op.send_message(guest, "o4")
        await expect(page.locator(".rd-operator")).to_have_count(4)
        await expect(page.locator(".rd-operator .rd-text").last).to_have_text("o4")
    assert not s.errors or all("WebSocket" in e or "ERR_INTERNET" in e for e in s.errors), s.errors


async def test_offline_queue_offers_the_email_form(offline_desk: Desk, browser: Browser) -> None:
    """Nobody online: the email form replaces the chat. Errors show next to their field;
    the answers follow the questions endpoint's contract (faked here with a route)."""
    posted: list[dict[str, Any]] = []
    answers = [
        (400, {"error": "That address cannot receive mail.", "field": "email"}),
        (429, {"error": "Too many questions from here; try again in a minute."}),
        (201, {"ticket": 42}),
    ]

    async def questions(route: Route) -> None:
        assert route.request.method == "POST"
        posted.append(json.loads(route.request.post_data or "{}"))
        status, body = answers.pop(0)
        await route.fulfill(status=status, json=body)

    async with browsing(browser, PHONE) as s:
        page = s.page
        await page.route("**/api/queues/ask/questions", questions)
        await page.goto(f"{offline_desk.url}/chat/ask")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "offline")
        await expect(page.locator("#rd-notice-text")).to_contain_text("No librarian is online")
        await expect(page.get_by_label("Message")).to_be_hidden()
        await expect(page.get_by_role("button", name="Back to the chat")).to_be_hidden()
        await expect(
            page.get_by_role("heading", name="Send your question by email")
        ).to_be_visible()
        await page.screenshot(path=shot_path("widget-offline-form"))

        send = page.get_by_role("button", name="Send question")
        await send.click()
        await expect(page.locator("#rd-q-err")).to_have_text("Please write your question.")
        await expect(page.get_by_label("Your question", exact=True)).to_be_focused()
        await page.get_by_label("Your question", exact=True).fill("Can I renew a book twice?")
        await page.get_by_label("Email address", exact=True).fill("pat@")
        await send.click()
        await expect(page.locator("#rd-email-err")).to_contain_text("valid email address")
        await expect(page.get_by_label("Email address", exact=True)).to_be_focused()
        assert posted == []

        await page.get_by_label("Email address", exact=True).fill("pat@example.org")
        await page.get_by_label("Name (optional)").fill("Pat")
        await send.click()
        await expect(page.locator("#rd-email-err")).to_have_text(
            "That address cannot receive mail."
        )
        await expect(page.get_by_label("Email address", exact=True)).to_have_attribute(
            "aria-invalid", "true"
        )
        assert posted == [
            {"question": "Can I renew a book twice?", "email": "pat@example.org", "name": "Pat"}
        ]
        await page.screenshot(path=shot_path("widget-offline-form-error"))
        await send.click()
        await expect(page.locator("#rd-alert")).to_have_text(
            "Too many questions from here; try again in a minute."
        )
        await expect(page.locator("#rd-email-err")).to_be_empty()
        await send.click()
        await expect(page.locator("#rd-mail-done")).to_be_visible()
        await expect(page.locator("#rd-mail-done")).to_be_focused()
        await expect(page.locator("#rd-ticket")).to_have_text("Reference number: 42")
        await expect(page.locator("#rd-alert")).to_be_empty()
        await page.screenshot(path=shot_path("widget-offline-sent"))
        assert len(posted) == 3
    assert not [e for e in s.errors if "status of 4" not in e], s.errors


async def test_spanish_strings(offline_desk: Desk, browser: Browser) -> None:
    async with browsing(browser, PHONE, locale="es-ES") as s:
        page = s.page
        # Every English string has its Spanish one (same keys at every level).
        await page.goto(f"{offline_desk.url}/chat/ask?lang=en")
        missing = await page.evaluate(
            """() => {
              const out = [];
              const walk = (en, es, path) => {
                for (const k of Object.keys(en)) {
                  if (!(k in es)) out.push(path + k);
                  else if (typeof en[k] === 'object') walk(en[k], es[k], path + k + '.');
                  else if (typeof es[k] !== 'string' || !es[k]) out.push(path + k);
                }
              };
              walk(REFDESK_STRINGS.en, REFDESK_STRINGS.es, '');
              walk(REFDESK_STRINGS.es, REFDESK_STRINGS.en, 'es-only:');
              return out;
            }"""
        )
        assert missing == []
        await expect(page.locator("#rd-status-text")).to_have_text("Offline")
        # The browser asks for Spanish: the page speaks it without ?lang.
        await page.goto(f"{offline_desk.url}/chat/ask")
        await expect(page.locator("html")).to_have_attribute("lang", "es")
        await expect(page.locator("#rd-status-text")).to_have_text("Fuera de línea")
        await expect(page.locator("#rd-notice-text")).to_contain_text(
            "no hay personal de la biblioteca en línea"
        )
        for label in ("Su pregunta", "Correo electrónico", "Nombre (opcional)"):
            await expect(page.get_by_label(label, exact=True)).to_be_visible()
        await expect(page.get_by_role("button", name="Enviar pregunta")).to_be_visible()
        await page.get_by_role("button", name="Enviar pregunta").click()
        await expect(page.locator("#rd-q-err")).to_have_text("Escriba su pregunta, por favor.")
        await expect(page.get_by_label("Mensaje", exact=True)).to_be_hidden()
        await page.screenshot(path=shot_path("widget-offline-es"))
    assert not s.errors, s.errors


async def test_away_and_appearance(desk: Desk, browser: Browser) -> None:
    """The admin's colour (too light for white text, so darkened), logo, greeting, texts
    and local links; then the librarian goes away and the page offers email or waiting."""
    kind = kind_of(desk)
    queue = await desk.store_queue("ask")
    await desk.refdesk.store.links.add(
        queue.group_id, "Catalogue", "https://catalogue.example.org/"
    )
    await desk.refdesk.store.links.add(queue.group_id, "Bad", "javascript:alert(1)")
    await desk.refdesk.store.links.add(queue.group_id, "Events", "https://events.example.org/")
    logo = (
        "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='64' height='32'%3E"
        "%3Crect width='64' height='32' fill='%23c0392b'/%3E%3C/svg%3E"
    )
    await desk.set_queue(
        "ask",
        widget_color="#ffcc00",
        widget_logo=logo,
        greeting="Welcome to Springfield's Ask-a-Librarian!",
        text_available="Librarians answer until 8 pm.",
        text_away="Back in five minutes: wait here or email us.",
    )
    op = await desk.add_operator(name="Eve")
    async with browsing(browser, PHONE) as s:
        page = s.page
        await page.goto(f"{desk.url}/chat/ask")
        await expect(page.locator("#rd-greeting")).to_have_text(
            "Welcome to Springfield's Ask-a-Librarian!"
        )
        await expect(page.locator("#rd-avail")).to_have_text("Librarians answer until 8 pm.")
        await expect(page.locator("img.rd-logo")).to_have_attribute("alt", "")
        accent = await page.evaluate(
            "getComputedStyle(document.documentElement).getPropertyValue('--accent')"
        )
        assert contrast_with_white(accent) >= 4.5, accent
        links = page.locator("#rd-links")
        await expect(links.locator("summary")).to_have_text("Local resources")
        await links.locator("summary").click()
        await expect(links.get_by_role("link")).to_have_count(2)
        catalogue = links.get_by_role("link", name="Catalogue")
        await expect(catalogue).to_have_attribute("target", "_blank")
        await page.screenshot(path=shot_path(f"widget-custom-{kind}"))

        op.set_presence("away")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "away")
        await expect(page.locator("#rd-notice-text")).to_have_text(
            "Back in five minutes: wait here or email us."
        )
        await page.get_by_label("Message").fill("Is the museum pass available?")
        await page.screenshot(path=shot_path(f"widget-away-{kind}"))
        await page.get_by_role("button", name="Send your question by email").click()
        await expect(
            page.get_by_role("heading", name="Send your question by email")
        ).to_be_focused()
        await page.get_by_role("button", name="Back to the chat").click()
        await expect(page.get_by_label("Message")).to_be_focused()
        await expect(page.get_by_label("Message")).to_have_value("Is the museum pass available?")

        # On a wide screen the links stand open beside the chat.
        await page.set_viewport_size(DESKTOP)
        await page.reload()
        await expect(links.get_by_role("link", name="Events")).to_be_visible()
        await page.screenshot(path=shot_path(f"widget-wide-{kind}"))
    assert not s.errors, s.errors


def contrast_with_white(css: str) -> float:
    parts = css.strip().removeprefix("rgb(").removesuffix(")").split(",")
    channels = []
    for p in parts:
        v = int(p) / 255
        channels.append(v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4)
    lum = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]
    return 1.05 / (lum + 0.05)


async def test_long_poll_chat_with_a_real_operator(desk: Desk, browser: Browser) -> None:
    """?transport=lp (the test hook) speaks the protocol over /lp: a whole chat, a reload
    and the end, with no WebSocket at all."""
    op = await desk.add_operator(name="Fay")
    kind = kind_of(desk)
    async with browsing(browser, PHONE) as s:
        page = s.page
        await page.goto(f"{desk.url}/chat/ask?transport=lp")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "available")
        await page.get_by_label("Message").fill("Over long-poll, please.")
        await page.get_by_label("Message").press("Enter")
        guest = await take_offer(op, "Over long-poll, please.")
        await expect(page.locator(".rd-pending")).to_have_count(0)
        op.send_message(guest, "Received over long-poll.")
        assert "You took this chat" in (await op.next_message(guest))["body"]
        await expect(page.locator(".rd-operator .rd-text")).to_have_text("Received over long-poll.")
        composing(op, guest)
        await expect(page.locator("#rd-typing")).to_be_visible()
        await page.reload()
        await expect(page.locator(".rd-operator .rd-text")).to_have_text("Received over long-poll.")
        await expect(page.locator(".rd-patron")).to_have_count(1)
        await page.get_by_label("Message").fill("Second one.")
        await page.get_by_label("Message").press("Enter")
        assert (await op.next_message(guest))["body"] == "Second one."
        await page.screenshot(path=shot_path(f"widget-longpoll-{kind}"))
        await page.get_by_role("button", name="End chat").click()
        await expect(page.locator("#rd-over")).to_be_visible()
        assert "ended" in (await op.next_message(guest))["body"]
        assert s.sockets == []
    assert not s.errors, s.errors


# As behind a proxy that breaks WebSockets: every handshake is refused (this path is no
# WebSocket endpoint), so no socket ever opens.
BROKEN_WEBSOCKETS = """
(() => {
  const Real = window.WebSocket;
  window.WebSocket = class extends Real {
    constructor() { super(location.origin.replace(/^http/, 'ws') + '/no-websockets-here'); }
  };
})();
"""


async def test_falls_back_to_long_poll_when_websockets_fail(desk: Desk, browser: Browser) -> None:
    op = await desk.add_operator(name="Gus")
    async with browsing(browser, PHONE) as s:
        page = s.page
        await s.context.add_init_script(BROKEN_WEBSOCKETS)
        polls: list[str] = []
        page.on("request", lambda r: polls.append(r.url) if "/lp/ask" in r.url else None)
        await page.goto(f"{desk.url}/chat/ask")
        await page.get_by_label("Message").fill("Sockets are blocked here.")
        await page.get_by_label("Message").press("Enter")
        guest = await take_offer(op, "Sockets are blocked here.")
        op.send_message(guest, "Long-poll works.")
        assert "You took this chat" in (await op.next_message(guest))["body"]
        await expect(page.locator(".rd-operator .rd-text")).to_have_text("Long-poll works.")
        assert len(s.sockets) == 2, s.sockets
        assert polls
        # Later reconnects, and a reload, stay on long-poll.
        await page.reload()
        await expect(page.locator(".rd-operator .rd-text")).to_have_text("Long-poll works.")
        assert len(s.sockets) == 2, s.sockets
    assert all("no-websockets-here" in e or "404" in e for e in s.errors), s.errors


class FakeLongPoll:
    """Frames the server cannot be made to send yet (a queue position, the email offer, a
    ban) reach the page through a faked long-poll session."""

    def __init__(self) -> None:
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []

    async def hello(self, route: Route) -> None:
        self.sent.append(json.loads(route.request.post_data or "{}"))
        welcome = {"type": "welcome", "chat": 7, "resume": "tok", "resumed": False}
        status = {"type": "status", "status": "busy", "waiting": 3, "position": 3}
        await route.fulfill(
            json={"session": "s1", "frames": [welcome | {"status": "busy"}, status]}
        )

    async def session(self, route: Route) -> None:
        if route.request.method == "POST":
            self.sent.append(json.loads(route.request.post_data or "{}"))
            await route.fulfill(json={"ok": True})
            return
        frames = []
        with suppress(TimeoutError):
            frames.append(await asyncio.wait_for(self.frames.get(), 5))
        await route.fulfill(json={"frames": frames})


async def test_queue_position_email_offer_and_ban(offline_desk: Desk, browser: Browser) -> None:
    fake = FakeLongPoll()
    async with browsing(browser, PHONE) as s:
        page = s.page
        await page.route("**/lp/ask", fake.hello)
        await page.route("**/lp/ask/s1", fake.session)
        await page.goto(f"{offline_desk.url}/chat/ask?transport=lp")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "busy")
        notice = page.locator("#rd-notice-text")
        await expect(notice).to_contain_text("All librarians are helping other people")
        await expect(notice).to_contain_text("You are number 3 in line.")
        await page.get_by_label("Message").fill("Still here")
        await page.get_by_label("Message").press("Enter")
        await eventually(lambda: any(f["type"] == "message" for f in fake.sent), "a message")
        message = next(f for f in fake.sent if f["type"] == "message")
        assert message["text"] == "Still here" and message["id"]
        fake.frames.put_nowait({"type": "ack", "id": message["id"], "seq": 1})
        await expect(page.locator(".rd-pending")).to_have_count(0)
        await page.screenshot(path=shot_path("widget-busy"))

        fake.frames.put_nowait({"type": "offer_email", "text": "Long wait today: email us?"})
        await expect(notice).to_contain_text("Long wait today: email us?")
        await page.get_by_role("button", name="Send your question by email").click()
        await expect(page.get_by_label("Your question", exact=True)).to_have_value("Still here")
        await page.screenshot(path=shot_path("widget-offer-email"))
        await page.get_by_role("button", name="Back to the chat").click()

        ban = "Chat is not available from your network. To appeal, write to appeals@lib.example."
        fake.frames.put_nowait({"type": "banned", "text": ban})
        await expect(page.locator("#rd-over")).to_contain_text(ban)
        await expect(page.locator("#rd-over-title")).to_have_text("Chat not available")
        await expect(page.get_by_role("button", name="Start a new chat")).to_be_hidden()
        await expect(page.get_by_label("Message")).to_be_hidden()
        await expect(page.locator("#rd-notice-text")).to_be_empty()
        assert await page.evaluate("sessionStorage.getItem('refdesk:ask')") is None
        await page.screenshot(path=shot_path("widget-banned"))
    assert not s.errors, s.errors


@pytest.mark.parametrize(
    "appeal", ["javascript:alert(1)//@x.org", "a@b.org?body=hi", "<b>x</b>@evil.org", 7]
)
async def test_a_hostile_ban_frame_shows_text_and_links_nothing(
    offline_desk: Desk, browser: Browser, appeal: object
) -> None:
    """Whatever the ban frame carries is shown as text; only a plain address is linked."""
    fake = FakeLongPoll()
    async with browsing(browser, PHONE) as s:
        page = s.page
        await page.route("**/lp/ask", fake.hello)
        await page.route("**/lp/ask/s1", fake.session)
        await page.goto(f"{offline_desk.url}/chat/ask?transport=lp")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "busy")
        address = '<img src=x onerror="document.title=1">'
        fake.frames.put_nowait(
            {"type": "banned", "text": "<b>banned</b>", "address": address, "appeal": appeal}
        )
        await expect(page.locator("#rd-over-detail")).to_have_text("<b>banned</b>")
        await expect(page.locator("#rd-ban-address")).to_have_text(address)
        assert await page.locator("#rd-ban img, #rd-over b").count() == 0
        assert await page.locator("#rd-ban-appeal").get_attribute("href") is None
        assert await page.title() != "1"
    assert not s.errors, s.errors


@pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
async def test_the_email_form_of_a_banned_patron_shows_their_address(
    offline_desk: Desk, browser: Browser
) -> None:
    """The ban reaches the patron through the (real) questions endpoint: the widget shows
    the address refdesk saw and the appeal address as a mail link."""
    patron = "198.51.100.77"
    fake = FakeLongPoll()
    async with browsing(browser, PHONE, extra_http_headers={"X-Forwarded-For": patron}) as s:
        page = s.page
        await page.route("**/lp/ask", fake.hello)
        await page.route("**/lp/ask/s1", fake.session)
        await page.goto(f"{offline_desk.url}/chat/ask?transport=lp")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "busy")
        fake.frames.put_nowait({"type": "offer_email", "text": "Long wait today: email us?"})
        await page.get_by_role("button", name="Send your question by email").click()
        await page.get_by_label("Your question", exact=True).fill("Can I renew twice?")
        await page.get_by_label("Email address", exact=True).fill("pat@example.org")
        await offline_desk.service.moderation.ban(patron, reason="spam", actor="admin")
        await page.get_by_role("button", name="Send question").click()
        await expect(page.locator("#rd-over-title")).to_have_text("Chat not available")
        await expect(page.locator("#rd-over-detail")).to_contain_text(f"saw it: {patron}")
        await expect(page.locator("#rd-ban-address")).to_have_text(patron)
        appeal = page.get_by_role("link", name="appeals@library.example")
        await expect(appeal).to_have_attribute("href", "mailto:appeals@library.example")
        await page.screenshot(path=shot_path("widget-banned-form"))
    assert all("status of 403" in e for e in s.errors), s.errors


@pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))
async def test_a_real_ban_mid_chat(offline_desk: Desk, browser: Browser) -> None:
    """The admins ban the patron's address while the page is open: the live page shows the
    ban text and stops; a reload gets the ban page instead of the chat. (The patron seems
    to come through a trusted proxy: loopback itself can never be banned.)"""
    patron = "203.0.113.7"
    forwarded = {"X-Forwarded-For": patron}
    async with browsing(browser, PHONE, extra_http_headers=forwarded) as s:
        page = s.page
        await page.goto(f"{offline_desk.url}/chat/ask")
        await expect(page.locator("#rd-status")).to_have_attribute("data-status", "offline")
        await eventually(lambda: len(s.sockets) == 1, "the socket")
        await eventually(lambda: any(f.get("type") == "welcome" for f in s.received), "the welcome")
        await offline_desk.service.moderation.ban(patron, reason="spam", actor="admin")
        text = offline_desk.service.ban_text("ask", patron)
        await expect(page.locator("#rd-over-title")).to_have_text("Chat not available")
        await expect(page.locator("#rd-over-detail")).to_have_text(text)
        # The address refdesk saw, labelled, and the appeal address as a mail link.
        ban = page.locator("#rd-ban")
        await expect(ban).to_be_visible()
        await expect(ban.locator("dt").first).to_have_text("Your address as we saw it")
        await expect(page.locator("#rd-ban-address")).to_have_text(patron)
        appeal = page.get_by_role("link", name="appeals@library.example")
        await expect(appeal).to_have_attribute("href", "mailto:appeals@library.example")
        await expect(page.locator("#rd-conn")).to_be_empty()
        await expect(page.locator("#rd-mail")).to_be_hidden()
        await page.screenshot(path=shot_path("widget-banned-live"))
        await page.wait_for_timeout(1500)  # no reconnect attempts
        assert len(s.sockets) == 1
        response = await page.reload()
        assert response is not None and response.status == 403
        await expect(page.locator("body")).to_contain_text(text)
        await expect(page.locator("body")).to_contain_text(f"saw it: {patron}")
    # The 403 of the ban page, and its favicon (error.html has no icon link).
    assert all("status of 403" in e or "status of 404" in e for e in s.errors), s.errors
