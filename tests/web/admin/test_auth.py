"""The admin door: login, logout, sessions, CSRF, framing, throttling, in a real browser
and with a plain HTTP client playing a hostile site."""

from __future__ import annotations

import re

import aiohttp
from playwright.async_api import Browser, expect

from tests.conftest import ADMIN_PASSWORD, Desk, admin_account, admin_page


async def test_login_logout_in_a_browser(offline_desk: Desk, browser: Browser) -> None:
    user, password = await admin_account(offline_desk)
    page = await admin_page(browser, offline_desk, user, password)
    try:
        await expect(page.get_by_role("heading", name="Live")).to_be_visible()
        cookies = await page.context.cookies()
        session = next(c for c in cookies if c["name"] == "refdesk_admin")
        assert session["httpOnly"] and session["sameSite"] == "Strict"
        await page.get_by_role("button", name="Log out").click()
        await expect(page.get_by_role("button", name="Log in")).to_be_visible()
        # The old session is gone server-side: going back does not get in.
        await page.goto(f"{offline_desk.url}/admin/")
        await expect(page.get_by_label("Username")).to_be_visible()
    finally:
        await page.context.close()


async def test_wrong_password_and_throttling(offline_desk: Desk) -> None:
    user, _ = await admin_account(offline_desk)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        for attempt in range(5):
            status, _ = await _login(s, offline_desk, user, "wrong password")
            assert status == 401, attempt
        status, body = await _login(s, offline_desk, user, ADMIN_PASSWORD)
        assert status == 429 and "Too many failed attempts" in body
        # Another account is not locked out by it.
        other, password = await admin_account(offline_desk, "second")
        status, _ = await _login(s, offline_desk, other, password)
        assert status == 200


async def _login(s: aiohttp.ClientSession, desk: Desk, user: str, password: str) -> tuple[int, str]:
    async with s.get(f"{desk.url}/admin/login") as resp:
        html = await resp.text()
    token = re.search(r'name="csrf" value="([^"]+)"', html)
    assert token is not None
    form = {"csrf": token.group(1), "username": user, "password": password, "next": "/admin/"}
    async with s.post(f"{desk.url}/admin/login", data=form) as resp:
        return resp.status, await resp.text()


async def test_csrf_framing_and_guard(offline_desk: Desk) -> None:
    user, password = await admin_account(offline_desk)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        # Pages need a session.
        async with s.get(f"{offline_desk.url}/admin/bans", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/admin/login")
        # A login form posted without the double-submitted token is refused.
        async with s.post(
            f"{offline_desk.url}/admin/login", data={"username": user, "password": password}
        ) as resp:
            assert resp.status == 403
        status, _ = await _login(s, offline_desk, user, password)
        assert status == 200
        async with s.get(f"{offline_desk.url}/admin/") as resp:
            assert resp.status == 200
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
            html = await resp.text()
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token is not None
        # A cross-site form: no token (the attacker cannot read it) → refused.
        async with s.post(f"{offline_desk.url}/admin/logout", data={}) as resp:
            assert resp.status == 403
        # Even with a token, a foreign Origin is refused.
        async with s.post(
            f"{offline_desk.url}/admin/logout",
            data={"csrf": token.group(1)},
            headers={"Origin": "https://evil.example"},
        ) as resp:
            assert resp.status == 403
        async with s.post(
            f"{offline_desk.url}/admin/logout", data={"csrf": token.group(1)}, allow_redirects=False
        ) as resp:
            assert resp.status == 303
        # No open redirect after login.
        async with s.get(f"{offline_desk.url}/admin/login?next=https://evil.example/") as resp:
            assert "https://evil.example" not in await resp.text()
