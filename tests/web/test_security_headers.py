"""Every answer the web server sends carries the security headers, errors included: the
ones a handler raises (404, 403, 413, redirects), the admin guard's own refusals, and the
ones aiohttp makes when no route matches (404) or the method is wrong (405). Each answer
is compared with a guarded handler's ordinary answer on the same side (patron or admin),
and the status endpoint's answers with its own 200.

What cannot carry them: a request aiohttp cannot parse at all (a malformed request line or
header) is answered by the protocol before the application sees a request; that answer is
checked here for what it can promise (a plain-text body, the connection closed)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDictProxy

from tests.conftest import Desk, admin_account
from web.app import _security_headers
from web.standby import make_standby_app

# The headers compared; a name missing from an answer compares as None.
SECURITY = (
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "X-Frame-Options",
)
HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
# Admin answers must also never be kept by a shared cache.
ADMIN_SECURITY = (*SECURITY, "Cache-Control")


def _security(
    headers: CIMultiDictProxy[str], names: tuple[str, ...] = SECURITY
) -> dict[str, str | None]:
    return {name: headers.get(name) for name in names}


async def _reference(
    session: aiohttp.ClientSession, url: str, names: tuple[str, ...] = SECURITY
) -> dict[str, str | None]:
    """The headers on a guarded handler's ordinary answer."""
    async with session.get(url, allow_redirects=False) as resp:
        assert resp.status == 200, url
        found = _security(resp.headers, names)
    assert found["X-Content-Type-Options"] == "nosniff"
    assert found["Content-Security-Policy"]
    return found


async def _answer(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: object
) -> tuple[int, CIMultiDictProxy[str]]:
    async with session.request(method, url, allow_redirects=False, **kwargs) as resp:  # type: ignore[arg-type]
        await resp.read()
        return resp.status, resp.headers


async def _check(
    session: aiohttp.ClientSession,
    want: dict[str, str | None],
    cases: list[tuple[str, str, int, dict[str, object]]],
    base: str,
) -> None:
    """Every case's answer has its status and exactly the reference's security headers;
    all failures are reported at once."""
    names = tuple(want)
    wrong = []
    for method, path, status, kwargs in cases:
        got_status, headers = await _answer(session, method, base + path, **kwargs)
        got = _security(headers, names)
        if got_status != status or got != want:
            wrong.append((method, path, got_status, got))
    assert not wrong, f"expected {want}; got: {wrong}"


async def test_patron_side_errors_carry_the_headers(offline_desk: Desk) -> None:
    url = offline_desk.url
    big = b"x" * (offline_desk.refdesk.config.chat.max_frame_bytes + 1)
    async with aiohttp.ClientSession() as s:
        want = await _reference(s, url + "/widget/chat.js")
        assert want == await _reference(s, url + "/embed.js")
        cases: list[tuple[str, str, int, dict[str, object]]] = [
            # No route at all (aiohttp's own 404).
            ("GET", "/nonexistent", 404, {}),
            ("GET", "/", 404, {}),
            ("GET", "/widget/a/b", 404, {}),
            ("GET", "/api/queues/ask/status/more", 404, {}),
            ("GET", "/chat/ask/%3Cscript%3E", 404, {}),
            ("POST", "/lp", 404, {}),
            # A route whose handler raises 404.
            ("GET", "/widget/nosuch.js", 404, {}),
            ("GET", "/operator/converse/nosuch.js", 404, {}),
            ("GET", "/operator/nosuch.js", 404, {}),
            # A known path with the wrong method (aiohttp's own 405), the status path too.
            ("POST", "/healthz", 405, {}),
            ("DELETE", "/chat/ask", 405, {}),
            ("PUT", "/api/queues/ask/status", 405, {}),
            ("POST", "/api/queues/ask/status", 405, {}),
            ("PATCH", "/widget/embed.js", 405, {}),
            # An oversized body, refused by raising 413.
            ("POST", "/lp/ask", 413, {"data": big}),
            # Malformed JSON to the long-poll hello, which refuses it in frames.
            ("POST", "/lp/ask", 400, {"data": b'{"type": "hello", ' + b"[" * 5000}),
            # A redirect the handler raises.
            ("GET", "/operator", 308, {}),
            # A WebSocket handshake from another site, and one that is no handshake.
            ("GET", "/ws/ask", 403, {"headers": {**HANDSHAKE, "Origin": "https://evil.example"}}),
            ("GET", "/ws/ask", 400, {}),
        ]
        await _check(s, want, cases, url)


async def test_a_wrong_method_keeps_its_allow_header(offline_desk: Desk) -> None:
    async with aiohttp.ClientSession() as s:
        status, headers = await _answer(s, "POST", offline_desk.url + "/healthz")
        assert status == 405
        assert set(headers["Allow"].split(",")) == {"GET", "HEAD"}
        assert headers["X-Content-Type-Options"] == "nosniff"


async def test_admin_side_errors_and_redirects_carry_the_admin_headers(offline_desk: Desk) -> None:
    url = offline_desk.url
    user, password = await admin_account(offline_desk)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        want = await _reference(s, url + "/admin/login", ADMIN_SECURITY)
        assert want["X-Frame-Options"] == "DENY"
        anonymous: list[tuple[str, str, int, dict[str, object]]] = [
            # The admin guard's redirect to the login form.
            ("GET", "/admin/", 303, {}),
            ("GET", "/admin/bans", 303, {}),
            ("GET", "/admin/whatever", 404, {}),
            ("GET", "/admin", 303, {}),
            ("GET", "/admin/static/nosuch.css", 404, {}),
            ("GET", "/admin/static/a/b", 404, {}),
            ("DELETE", "/admin/login", 405, {}),
            # The login form without its token: 403 raised by the handler.
            ("POST", "/admin/login", 403, {"data": {"username": user, "password": password}}),
            # A body over the app's limit, refused while the form is read.
            ("POST", "/admin/login", 413, {"data": {"csrf": "x" * (300 * 1024)}}),
        ]
        await _check(s, want, anonymous, url)
        async with s.get(url + "/admin/login") as resp:
            token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert token is not None
        form = {"csrf": token.group(1), "username": user, "password": password}
        async with s.post(url + "/admin/login", data=form, allow_redirects=False) as resp:
            assert resp.status == 303
            assert _security(resp.headers, ADMIN_SECURITY) == want
        logged_in: list[tuple[str, str, int, dict[str, object]]] = [
            ("GET", "/admin/whatever", 404, {}),
            ("PUT", "/admin/bans", 405, {}),
            # A form without the session's CSRF token: the guard's own 403.
            ("POST", "/admin/logout", 403, {"data": {}}),
        ]
        await _check(s, want, logged_in, url)


async def test_the_status_route_keeps_its_own_headers(offline_desk: Desk) -> None:
    url = offline_desk.url + "/api/queues/"
    async with aiohttp.ClientSession() as s:
        want = await _reference(s, url + "ask/status")
        assert want["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        async with s.get(url + "ask/status") as resp:
            etag = resp.headers["ETag"]
        cases: list[tuple[str, str, int, dict[str, object]]] = [
            ("HEAD", "ask/status", 200, {}),
            ("GET", "ask/status", 304, {"headers": {"If-None-Match": etag}}),
            ("GET", "nosuch/status", 404, {}),
            ("GET", "%3Cscript%3E/status", 404, {}),
        ]
        await _check(s, want, cases, url)


async def test_a_request_aiohttp_cannot_parse_gets_a_plain_closing_answer(
    offline_desk: Desk,
) -> None:
    """Answered by the protocol before any application code runs (nothing there can add
    headers): what it can promise is a plain-text answer that closes the connection, so
    no browser renders it as a page and nothing else is read from that connection."""
    port = offline_desk.refdesk.port
    for request in (
        b"<script>alert(1)</script> / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        # Read to the end: the server closed the connection after answering.
        assert re.match(r"HTTP/1\.[01] 400 ", head), head
        assert re.search(r"(?im)^Content-Type: text/plain", head), head


async def test_a_handler_that_fails_answers_500_with_the_headers() -> None:
    """No refdesk handler is known to fail, so a route that does is served by a real
    aiohttp server with the app's answer hook: aiohttp's own 500 gets the headers too."""

    async def crash(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("a bug")

    app = web.Application()
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/boom", crash)
    app.router.add_get("/admin/boom", crash)
    async with TestServer(app) as server, aiohttp.ClientSession() as s:
        status, headers = await _answer(s, "GET", str(server.make_url("/boom")))
        assert status == 500
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "frame-ancestors *" in headers["Content-Security-Policy"]
        status, headers = await _answer(s, "GET", str(server.make_url("/admin/boom")))
        assert status == 500
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


@pytest.mark.desk_config(web={"connections_per_address": 1})
async def test_the_doors_refusal_carries_the_headers(offline_desk: Desk) -> None:
    """A connection over the address's cap is answered at the door, before the app sees
    it, with bytes of its own: they carry the headers too."""
    port = offline_desk.refdesk.port
    _held_reader, held = await asyncio.open_connection("127.0.0.1", port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            answer = await asyncio.wait_for(reader.read(), 10)
        finally:
            writer.close()
    finally:
        held.close()
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    assert head.startswith("HTTP/1.1 429"), head
    assert re.search(r"(?m)^X-Content-Type-Options: nosniff\r?$", head), head
    assert re.search(r"(?m)^Content-Security-Policy: default-src 'none'", head), head
    assert re.search(r"(?m)^Referrer-Policy: ", head), head


async def test_the_standbys_answers_carry_the_headers() -> None:
    """A process waiting for the database's active lock answers everything with 503 from
    an app of its own (served here by a real aiohttp server)."""
    async with TestServer(make_standby_app()) as server, aiohttp.ClientSession() as s:
        for method, path in (("GET", "/chat/ask"), ("POST", "/admin/login"), ("PUT", "/x")):
            status, headers = await _answer(s, method, str(server.make_url(path)))
            assert status == 503
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert (
                headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
            )
            assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
