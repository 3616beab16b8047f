"""An automated accessibility check (axe-core, from tests/web/js: `npm ci --prefix
tests/web/js`) of the widget page in its main states: no serious or critical violation.

The page's CSP forbids inline scripts, so the axe context bypasses CSP to inject axe; the
page itself is unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, expect

from tests.conftest import Desk
from tests.web.test_widget_browser import PHONE, browsing, kind_of, shot_path, take_offer

AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"


def axe_source() -> str:
    if not AXE.exists():
        raise RuntimeError(f"{AXE} is missing: run `npm ci --prefix tests/web/js`")
    return AXE.read_text(encoding="utf-8")


async def violations(page: Page, state: str) -> list[dict[str, Any]]:
    """Serious and critical axe violations on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(content=axe_source())
    found: list[dict[str, Any]] = await page.evaluate(
        """async () => {
          const r = await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',
                                             'wcag22aa', 'best-practice']},
            resultTypes: ['violations'],
          });
          return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                         nodes: v.nodes.map(n => n.target.join(' '))}));
        }"""
    )
    bad = [v | {"state": state} for v in found if v["impact"] in ("serious", "critical")]
    return bad


async def test_widget_states_pass_axe(desk: Desk, browser: Browser) -> None:
    await desk.set_queue("ask", widget_color="#ffcc00", greeting="Welcome!")
    op = await desk.add_operator(name="Ann")
    problems: list[dict[str, Any]] = []
    for scheme in ("light", "dark"):
        async with browsing(browser, PHONE, bypass_csp=True, color_scheme=scheme) as s:
            page = s.page
            await page.goto(f"{desk.url}/chat/ask")
            await expect(page.locator("#rd-status")).to_have_attribute("data-status", "available")
            problems += await violations(page, f"empty chat, {scheme}")

            await page.get_by_label("Message").fill("Is the library open on Sunday?")
            await page.get_by_label("Message").press("Enter")
            guest = await take_offer(op, "Is the library open on Sunday?")
            op.send_message(guest, "Yes, 1 to 5 pm: https://lib.example.org/hours")
            assert "You took this chat" in (await op.next_message(guest))["body"]
            await expect(page.locator(".rd-operator")).to_have_count(1)
            await page.get_by_role("button", name="Email me a copy").click()
            problems += await violations(page, f"chatting, {scheme}")

            await page.get_by_role("button", name="End chat").click()
            await expect(page.locator("#rd-over")).to_be_visible()
            await op.next_message(guest)
            problems += await violations(page, f"ended, {scheme}")
            await page.screenshot(path=shot_path(f"a11y-ended-{scheme}-{kind_of(desk)}"))
    assert not problems, json.dumps(problems, indent=1)


async def test_offline_form_passes_axe(offline_desk: Desk, browser: Browser) -> None:
    problems: list[dict[str, Any]] = []
    for lang in ("en", "es"):
        async with browsing(browser, PHONE, bypass_csp=True) as s:
            page = s.page
            await page.goto(f"{offline_desk.url}/chat/ask?lang={lang}")
            await expect(page.locator("#rd-mail")).to_be_visible()
            problems += await violations(page, f"offline form, {lang}")
            # With the field errors showing.
            await page.locator("#rd-mail-send").click()
            await expect(page.locator("#rd-q-err")).not_to_be_empty()
            problems += await violations(page, f"offline form with errors, {lang}")
    assert not problems, json.dumps(problems, indent=1)
