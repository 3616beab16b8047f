"""The admin door: login, logout, sessions, CSRF, framing, throttling, in a real browser
and with a plain HTTP client playing a hostile site."""

from __future__ import annotations

import asyncio
import re
import threading
from collections import Counter

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import ADMIN_PASSWORD, Desk, admin_account, wait_for


async def test_login_logout_in_a_browser(offline_desk: Desk, browser: Browser) -> None:
    """The login form typed into (`admin_page`, for the other tests, posts it for them)."""
    user, password = await admin_account(offline_desk)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"{offline_desk.url}/admin/")
        await page.get_by_label("Username").fill(user)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Log in").click()
        await expect(page.get_by_role("button", name="Log out")).to_be_visible()
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


@pytest.mark.desk_config(web={"password_hashing": "strong"})
async def test_logins_with_the_production_hashing(offline_desk: Desk) -> None:
    """The other tests hash with `password_hashing = "test"`; with the default the page
    logs in a right password and refuses a wrong one and an unknown user the same way."""
    assert offline_desk.refdesk.config.web.password_hashing == "strong"
    user, password = await admin_account(offline_desk)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        assert (await _login(s, offline_desk, user, "wrong password"))[0] == 401
        assert (await _login(s, offline_desk, "nobody", "wrong password"))[0] == 401
        assert (await _login(s, offline_desk, user, password))[0] == 200


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


# The throttle under attack ------------------------------------------------------------------

TRUSTED = pytest.mark.desk_config(trusted_proxies=("127.0.0.1",))


class LoginClient:
    """A login form fetched once, then posted as often as a test likes, from any address
    (through the trusted loopback proxy's X-Forwarded-For)."""

    def __init__(self, desk: Desk, session: aiohttp.ClientSession, token: str) -> None:
        self.desk = desk
        self.session = session
        self.token = token

    @classmethod
    async def open(cls, desk: Desk) -> LoginClient:
        client = cls(desk, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)), "")
        await client.fetch_form()
        return client

    async def fetch_form(self) -> None:
        self.session.cookie_jar.clear()
        async with self.session.get(f"{self.desk.url}/admin/login") as resp:
            token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert token is not None
        self.token = token.group(1)

    async def login(self, user: str, password: str, ip: str) -> int:
        form = {"csrf": self.token, "username": user, "password": password, "next": "/admin/"}
        async with self.session.post(
            f"{self.desk.url}/admin/login",
            data=form,
            headers={"X-Forwarded-For": ip},
            allow_redirects=False,
        ) as resp:
            await resp.read()
            status = resp.status
        if status == 303:  # logged in: the form's token is spent
            await self.fetch_form()
        return status

    async def close(self) -> None:
        await self.session.close()


@TRUSTED
async def test_concurrent_wrong_passwords_are_all_counted(offline_desk: Desk) -> None:
    """A burst of guesses sent at once must not all slip past the check before the
    first failure is recorded."""
    user, _ = await admin_account(offline_desk)
    client = await LoginClient.open(offline_desk)
    try:
        statuses = await asyncio.gather(
            *(client.login(user, f"guess {n}", "203.0.113.7") for n in range(100))
        )
    finally:
        await client.close()
    counts = Counter(statuses)
    assert set(counts) <= {401, 429}, counts
    assert counts[401] <= 5, counts
    assert counts[429] >= 95, counts


@TRUSTED
async def test_ipv6_addresses_are_counted_by_their_64(offline_desk: Desk) -> None:
    """Walking through the addresses of one /64 is one address, not 2^64."""
    client = await LoginClient.open(offline_desk)
    try:
        for n in range(20):
            status = await client.login(f"user{n}", "guess", f"2001:db8:5:6::{n + 1:x}")
            assert status == 401, n
        assert await client.login("someone", "guess", "2001:db8:5:6:ffff::1") == 429
        # The next /64 is another network.
        assert await client.login("someone", "guess", "2001:db8:5:7::1") == 401
    finally:
        await client.close()


@TRUSTED
async def test_a_success_does_not_reset_an_addresses_failures(offline_desk: Desk) -> None:
    """An attacker with an account of their own cannot wipe their record by logging in."""
    boss, _ = await admin_account(offline_desk)
    mallory, password = await admin_account(offline_desk, "mallory")
    client = await LoginClient.open(offline_desk)
    ip = "198.51.100.7"
    try:
        for n in range(19):
            assert await client.login(f"victim{n % 4}", "guess", ip) == 401, n
        assert await client.login(mallory, password, ip) == 303
        assert await client.login(boss, "guess", ip) == 401  # the 20th failure
        assert await client.login(boss, "guess", ip) == 429
        assert await client.login(mallory, password, ip) == 429
    finally:
        await client.close()


@TRUSTED
async def test_guesses_from_elsewhere_do_not_lock_the_admin_out(offline_desk: Desk) -> None:
    """Five guesses by anyone used to lock the account for everyone."""
    boss, password = await admin_account(offline_desk)
    client = await LoginClient.open(offline_desk)
    try:
        for n in range(5):
            assert await client.login(boss, f"guess {n}", "203.0.113.9") == 401, n
        assert await client.login(boss, password, "203.0.113.9") == 429
        assert await client.login(boss, password, "192.0.2.10") == 303
    finally:
        await client.close()


@TRUSTED
async def test_distributed_guessing_spares_known_good_networks(offline_desk: Desk) -> None:
    """Many networks guessing one account lock it, except from networks where its owner
    has logged in before."""
    boss, password = await admin_account(offline_desk)
    client = await LoginClient.open(offline_desk)
    try:
        assert await client.login(boss, password, "192.0.2.10") == 303
        assert await client.login(boss, password, "2001:db8:aa:bb::1") == 303
        for net in range(6):
            for n in range(5):
                assert await client.login(boss, "guess", f"198.18.{net}.{n + 1}") == 401
        assert await client.login(boss, password, "198.51.100.99") == 429
        assert await client.login(boss, password, "192.0.2.10") == 303
        assert await client.login(boss, password, "2001:db8:aa:bb::2") == 303
    finally:
        await client.close()


@TRUSTED
async def test_password_hashing_leaves_the_server_answering(offline_desk: Desk) -> None:
    """argon2 runs in a small pool of worker threads: while every worker is busy the
    patrons' status endpoint still answers, logins wait their turn, and once the waiting
    room is full further logins are turned away at once instead of piling up."""
    from web.admin.auth import PASSWORDS

    boss, password = await admin_account(offline_desk)
    workers = offline_desk.refdesk.web_app[PASSWORDS]
    release = threading.Event()
    # Occupy every worker thread with a job that holds it until released.
    holders = [asyncio.ensure_future(workers.run(release.wait)) for _ in range(workers.threads)]
    client = await LoginClient.open(offline_desk)
    try:
        await wait_for(lambda: workers.running == workers.threads, what="workers busy")
        waiting = asyncio.ensure_future(client.login(boss, password, "192.0.2.10"))
        await wait_for(lambda: workers.in_flight == workers.threads + 1, what="login queued")
        async with client.session.get(f"{offline_desk.url}/api/queues/ask/status") as resp:
            assert resp.status == 200
            assert (await resp.json())["queue"] == "ask"
        assert not waiting.done() and workers.running == workers.threads
        # Fill the waiting room; the next login is refused, not queued.
        fillers = [
            asyncio.ensure_future(workers.run(release.wait))
            for _ in range(workers.capacity - workers.in_flight)
        ]
        await wait_for(lambda: workers.in_flight == workers.capacity, what="backlog full")
        form = {"csrf": client.token, "username": boss, "password": password}
        async with client.session.post(
            f"{offline_desk.url}/admin/login",
            data=form,
            headers={"X-Forwarded-For": "192.0.2.11"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 503
            assert int(resp.headers["Retry-After"]) > 0
            assert "busy" in await resp.text()
        release.set()
        assert await waiting == 303
        await asyncio.gather(*holders, *fillers)
        # The turned-away attempt was no guess: it does not count against anyone.
        assert await client.login(boss, password, "192.0.2.11") == 303
    finally:
        release.set()
        await client.close()


@TRUSTED
async def test_odd_login_forms_get_a_plain_answer(offline_desk: Desk) -> None:
    """Undecodable bytes, NULs, controls, huge and repeated fields: a 401 like any wrong
    password (never a 500), and the form still works afterwards."""
    boss, password = await admin_account(offline_desk)
    client = await LoginClient.open(offline_desk)
    token = f"csrf={client.token}"
    bodies = [
        "username=%FF&password=x",
        "username=%ED%A0%80&password=x",  # an encoded lone surrogate
        "username=a&password=%FF%FE",
        "username=a%00b&password=%00",
        "username=a&password=" + "x" * 200_000,
        "username=" + "%E2%80%AE" * 50 + "&password=%1B%5B2J",
        "username=a&username=b&password=x&password=y",
        "password=x",
    ]
    try:
        for body in bodies:
            async with client.session.post(
                f"{offline_desk.url}/admin/login",
                data=f"{token}&{body}".encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Forwarded-For": "198.51.100.50",
                },
                allow_redirects=False,
            ) as resp:
                assert resp.status == 401, body[:60]
        assert await client.login(boss, password, "192.0.2.10") == 303
    finally:
        await client.close()
