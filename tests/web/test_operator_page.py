"""/operator/: the vendored Converse.js and refdesk's panel, as served (no XMPP needed).

The page is an XMPP client the operator's browser runs against their own server, so what
refdesk must get right is the serving: the switched-off page, a strict CSP that names the one
WebSocket endpoint, never framed, only the vendored files by exact name, and settings that
are data. The end-to-end shift is tests/test_operator_web_end_to_end.py."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import Desk
from tests.web.test_widget_a11y import violations

WS = "wss://xmpp.library.example/xmpp-websocket"
with_websocket = pytest.mark.desk_config(websocket_url=WS)


async def test_switched_off_page_says_so(offline_desk: Desk) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{offline_desk.url}/operator/") as resp:
            assert resp.status == 404
            text = await resp.text()
            assert "not set up" in text and "websocket_url" in text
            assert "converse.min.js" not in text
            assert resp.headers["X-Frame-Options"] == "DENY"
            csp = resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "connect-src 'none'" in csp
        async with http.get(f"{offline_desk.url}/operator", allow_redirects=False) as resp:
            assert resp.status == 308
            assert resp.headers["Location"] == "/operator/"


@with_websocket
async def test_page_policy_and_settings(offline_desk: Desk) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{offline_desk.url}/operator/") as resp,
    ):
        assert resp.status == 200
        page = await resp.text()
        headers = resp.headers
    assert headers["Content-Security-Policy"] == "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
            " 'sha256-JRf3eZJIF59VkE1tlxlBPiCQXjGJ1uE88pEYh49RtTY='",
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self'",
            "media-src 'self'",
            f"connect-src 'self' {WS}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"
    # The only inline script element is data; every executable script is our own file.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    executable = [attrs for attrs, _body in scripts if "application/json" not in attrs]
    assert all('src="/operator/' in attrs for attrs in executable), executable
    data = next(body for attrs, body in scripts if "application/json" in attrs)
    assert json.loads(data) == {
        "websocket_url": WS,
        "assets_path": "/operator/converse/",
        "component_domain": "desk.localhost",
        "xmpp_domain": "xmpp.library.example",
    }


@with_websocket
async def test_a_visitor_who_has_not_logged_in_learns_nothing_of_the_directory(
    offline_desk: Desk,
) -> None:
    """The operator page is public (it is a login form): nothing it serves before log-in,
    nor any other public endpoint, names a queue, an operator's JID or address, or counts
    of staff and waiting patrons beyond what the widget shows (its status word)."""
    store = offline_desk.refdesk.store
    now = datetime.now(UTC)
    group = await store.groups.by_name("library")
    assert group is not None
    hidden = await store.queues.add("rare-manuscripts", group.id, "Special", None, now)
    op = await store.operators.upsert("curator@staff.example", "Curator", 3, now)
    await store.operators.assign(hidden.id, op.id)
    await store.operators.set_email(op.id, "curator.home@mail.example")
    await offline_desk.service.reload_directory()
    secrets_of_the_directory = ("rare-manuscripts", "curator", "staff.example", "mail.example")
    paths = [
        "/operator/",
        "/operator/operator.js",
        "/operator/operator.css",
        "/healthz",
        "/embed.js",
        "/chat/ask",
        "/api/queues/ask/status",
        "/chat/no-such-queue",
        "/api/queues/no-such-queue/status",
        "/admin/login",
    ]
    async with aiohttp.ClientSession() as http:
        for path in paths:
            async with http.get(f"{offline_desk.url}{path}") as resp:
                text = await resp.text()
            for secret in secrets_of_the_directory:
                assert secret not in text.lower(), (path, secret)
        async with http.get(f"{offline_desk.url}/api/queues/ask/status") as resp:
            status = await resp.json()
    # The widget needs the word and whether to offer email; no staff or queue counts.
    assert set(status) == {"queue", "title", "status", "email"}, status


@with_websocket
@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/operator/converse/converse.min.js", 200, "text/javascript"),
        ("/operator/converse/converse.min.css", 200, "text/css"),
        ("/operator/converse/emoji.json", 200, "application/json"),
        ("/operator/converse/sounds/msg_received.ogg", 200, "audio/ogg"),
        ("/operator/converse/webfonts/muli.ttf", 200, "font/ttf"),
        ("/operator/operator.js", 200, "text/javascript"),
        ("/operator/operator.css", 200, "text/css"),
        ("/operator/converse/LICENSE", 404, None),
        ("/operator/converse/VERSION", 404, None),
        ("/operator/converse/__init__.py", 404, None),
        ("/operator/converse/../operator_page.py", 404, None),
        ("/operator/converse/%2e%2e/%2e%2e/pyproject.toml", 404, None),
        ("/operator/converse/converse.min.js.map", 404, None),
        ("/operator/admin.css", 404, None),
        ("/operator/..%2fkeys.py", 404, None),
    ],
)
async def test_only_the_vendored_files_by_exact_name(
    offline_desk: Desk, path: str, status: int, kind: str | None
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{offline_desk.url}{path}", allow_redirects=False) as resp,
    ):
        await resp.read()
        assert resp.status == status, path
        if kind is not None:
            assert resp.headers["Content-Type"].split(";")[0] == kind
            assert resp.headers["X-Content-Type-Options"] == "nosniff"


@with_websocket
async def test_login_page_passes_axe_and_cannot_be_framed(
    offline_desk: Desk, browser: Browser
) -> None:
    context = await browser.new_context(bypass_csp=True)
    try:
        page = await context.new_page()
        await page.goto(f"{offline_desk.url}/operator/")
        await expect(page.get_by_label("XMPP Address")).to_be_visible()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Reference desk: operator log-in"
        )
        problems = await violations(page, "operator log-in")
        assert not problems, json.dumps(problems, indent=1)
    finally:
        await context.close()
