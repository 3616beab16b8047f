"""A whole chat in the Spanish widget (real Chromium, real operators over XMPP on both
servers, over the WebSocket and over long-poll): every line the server writes to the
patron shows in Spanish, and no English sentence of the catalog appears anywhere."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Browser, Page, expect

from component.core.patron_text import ENGLISH
from tests.component.core.test_patron_text import widget_strings
from tests.conftest import Desk, wait_for
from tests.mail_sink import MailSink
from tests.web.test_widget_browser import PHONE, browsing, kind_of, shot_path, take_offer

COPY_TO = "lector@example.net"


def english_sentences() -> list[str]:
    """Every literal piece (between fields) of every English text the widget or the server
    has, long enough that it cannot appear in Spanish by chance."""
    texts: list[str] = list(ENGLISH.values())

    def walk(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, str):
            texts.append(value)

    walk(widget_strings()["en"])
    pieces = {p.strip() for t in texts for p in re.split(r"\{\w+\}", t)}
    return sorted(p for p in pieces if len(p) >= 12)


async def no_english(page: Page) -> None:
    shown = await page.locator("body").inner_text()
    found = [s for s in english_sentences() if s in shown]
    assert found == [], (found, shown)


@pytest.mark.parametrize("transport", ["ws", "lp"])
async def test_a_whole_chat_in_spanish(
    desk: Desk, browser: Browser, transport: str, mail_sink: MailSink
) -> None:
    await desk.set_queue("ask", max_wait=1.0, followup_email="ask@example.org")
    # Queue titles are the admin's words, shown as written.
    await desk.set_queue("other", title="Consultas generales")
    ana = await desk.add_operator(queues=("ask",), name="Ana")
    zoe = await desk.add_operator(queues=("other",), name="Zoe")
    query = "?transport=lp" if transport == "lp" else ""
    async with browsing(browser, PHONE, locale="es-ES") as s:
        page = s.page
        await page.goto(f"{desk.url}/chat/ask{query}")
        await expect(page.locator("html")).to_have_attribute("lang", "es")
        box = page.get_by_label("Mensaje", exact=True)
        await box.fill("¿Dónde están los mapas antiguos?")
        await box.press("Enter")
        guest = await take_offer(ana, "¿Dónde están los mapas antiguos?")
        # Nobody answers within the queue's maximum wait: the offer to email, in Spanish.
        await expect(page.locator("#rd-notice-text")).to_contain_text("Perdone la espera")

        ana.send_message(guest, "Hola, soy Ana.")
        assert "You took this chat" in (await ana.next_message(guest))["body"]
        system = page.locator(".rd-system .rd-text")
        await expect(system.nth(0)).to_have_text("Ana se unió al chat.")
        await expect(page.locator(".rd-operator .rd-text").last).to_have_text("Hola, soy Ana.")
        # A copy by email: asked for in Spanish, worded in Spanish.
        await page.get_by_role("button", name="Enviarme una copia").click()
        await page.get_by_label("Correo electrónico para recibir una copia de este chat").fill(
            COPY_TO
        )
        await page.get_by_role("button", name="Enviar copia").click()
        await expect(page.locator("#rd-tx-ok")).to_contain_text("Se enviará una copia")

        ana.send_message(guest, "!transfer other")
        assert "Transferred" in (await ana.next_message(guest))["body"]
        await expect(system.nth(1)).to_have_text(
            "Le estamos transfiriendo a Consultas generales. No salga del chat, por favor."
        )
        await expect(system.nth(2)).to_have_text(
            "Le estamos transfiriendo; no salga del chat, por favor."
        )
        offer = await zoe.next_message(guest)
        assert "transferred by Ana" in offer["body"]
        zoe.send_message(guest, "Hola, soy Zoe.")
        await expect(system.nth(3)).to_have_text("Zoe se unió al chat.")
        await no_english(page)

        zoe.send_message(guest, "!end")
        await expect(page.locator("#rd-over")).to_be_visible()
        await expect(system.last).to_have_text("Zoe terminó el chat.")
        await expect(page.locator("#rd-over-title")).to_have_text("Chat terminado")
        await no_english(page)
        await page.screenshot(path=shot_path(f"widget-es-ended-{transport}-{kind_of(desk)}"))

        # A reload replays the transcript from the server: still Spanish.
        await page.reload()
        await expect(system.last).to_have_text("Zoe terminó el chat.")
        await expect(system.first).to_have_text("Ana se unió al chat.")
        await no_english(page)
    assert not s.errors, s.errors
    await wait_for(lambda: bool(mail_sink.to(COPY_TO)), what="the transcript copy")
    (copy,) = mail_sink.to(COPY_TO)
    # The chat ended in the queue it was transferred to.
    assert copy.message["Subject"] == "Su chat con Consultas generales"
    text = copy.text()
    assert "Le estamos transfiriendo a Consultas generales." in text
    assert "] Usted: ¿Dónde están los mapas antiguos?" in text
    assert "] Zoe: Hola, soy Zoe." in text and "Zoe terminó el chat." in text
    found = [s for s in english_sentences() if s in text or s in copy.html()]
    assert found == [], found


async def test_error_pages_follow_the_browser_language(desk: Desk, browser: Browser) -> None:
    async with browsing(browser, PHONE, locale="es-ES") as s:
        page = s.page
        response = await page.goto(f"{desk.url}/chat/nosuchqueue")
        assert response is not None and response.status == 404
        await expect(page.locator("h1")).to_have_text("Chat no encontrado")
        await expect(page.locator("main p")).to_contain_text("Compruebe el enlace")
        await no_english(page)
    assert not [e for e in s.errors if "404" not in e], s.errors
