"""The status endpoint serves a body encoded once per change, with an ETag and
Cache-Control that browsers and proxies can use, and answers If-None-Match with 304."""

from __future__ import annotations

import json

import aiohttp

from component.core.models import QueueStatus
from component.live import QueueInfo
from tests.conftest import Desk
from web import pages
from web.status_body import StatusBodies, etag_matches


def info(waiting: int = 0, status: QueueStatus = QueueStatus.OFFLINE) -> QueueInfo:
    return QueueInfo("ask", "Ask", status, waiting, 0)


def test_the_body_is_encoded_once_per_change() -> None:
    bodies = StatusBodies()
    first = bodies.get(info(), False)
    assert bodies.get(info(), False) is first
    changed = bodies.get(info(status=QueueStatus.AWAY), False)
    assert changed.etag != first.etag
    assert json.loads(changed.body)["status"] == "away"
    assert bodies.get(info(status=QueueStatus.AWAY), True).etag != changed.etag


def test_the_public_body_has_no_staff_or_queue_counts() -> None:
    """Anyone may read the status: it says what the widget shows, not how many operators
    are on or patrons wait (a count that changes also made a new body, and a new ETag, at
    every patron who came or went)."""
    busy = StatusBodies().get(info(waiting=7), True)
    assert json.loads(busy.body) == {
        "queue": "ask",
        "title": "Ask",
        "status": "offline",
        "email": True,
    }
    assert StatusBodies().get(info(waiting=0), True).etag == busy.etag


def test_if_none_match_is_parsed_as_the_standard_says() -> None:
    etag = StatusBodies().get(info(), False).etag
    assert etag_matches(etag, etag)
    assert etag_matches(f'"other", W/{etag}', etag)
    assert etag_matches("*", etag)
    assert not etag_matches(None, etag)
    assert not etag_matches('"other"', etag)
    assert not etag_matches(",".join([etag] * 200), etag)  # oversized: just send the body


async def test_status_has_an_etag_and_answers_304_to_a_matching_if_none_match(
    offline_desk: Desk,
) -> None:
    url = offline_desk.url + "/api/queues/ask/status"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("application/json")
            assert resp.headers["Cache-Control"] == "public, max-age=5"
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            etag = resp.headers["ETag"]
            body = await resp.json()
            assert body["queue"] == "ask" and body["status"] == "offline"
        async with session.get(url, headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
            assert resp.headers["ETag"] == etag
            assert await resp.read() == b""
        async with session.get(url, headers={"If-None-Match": '"stale"'}) as resp:
            assert resp.status == 200
            assert (await resp.json()) == body
        async with session.get(url, headers={"If-None-Match": '"x",' * 1500}) as resp:
            assert resp.status == 200
        async with session.get(url) as resp:
            assert resp.status == 200  # still serving


async def test_status_answers_carry_each_security_header_once(offline_desk: Desk) -> None:
    """The status answer brings its own complete header set (the middleware adds nothing
    to it); a 304 and an unknown queue's 404 carry the same protections, and an answer
    after them still has one Content-Length, its body's (the precomputed set is copied
    per response, never written into)."""
    base = offline_desk.url + "/api/queues/"
    expected = {
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Access-Control-Allow-Origin": "*",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "ask/status") as resp:
            assert resp.status == 200
            etag = resp.headers["ETag"]
            first = {name: resp.headers.getall(name) for name in expected}
        async with session.get(base + "ask/status", headers={"If-None-Match": etag}) as resp:
            assert resp.status == 304
            again = {name: resp.headers.getall(name) for name in expected}
        assert first == again == {name: [value] for name, value in expected.items()}
        async with session.get(base + "nosuch/status") as resp:
            assert resp.status == 404
            for name in ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"):
                assert len(resp.headers.getall(name)) == 1
        async with session.get(base + "ask/status") as resp:
            assert resp.status == 200
            assert resp.headers["ETag"] == etag
            assert resp.headers.getall("Content-Length") == [str(len(await resp.read()))]


async def test_the_status_route_runs_no_middleware_layer(offline_desk: Desk) -> None:
    """An aiohttp app with any middleware runs two layers around every request (the
    middleware and aiohttp's own that sets `request.app`), about an eighth of a status
    request's CPU. The headers every answer carries are added around each route's handler
    instead, except the status endpoint's, which brings its own set."""
    runner = offline_desk.refdesk._runner
    assert runner is not None
    app = runner.app
    assert not app.middlewares
    status_routes = [
        route
        for route in app.router.routes()
        if route.resource is not None and route.resource.canonical == "/api/queues/{queue}/status"
    ]
    assert status_routes
    assert all(route.handler is pages.queue_status for route in status_routes)


async def test_every_other_route_still_adds_the_security_headers(offline_desk: Desk) -> None:
    """Pages, files, the admin login form and its static files, and the operations
    endpoints each carry the headers once, through the route wrapper."""
    paths = ["/chat/ask", "/embed.js", "/healthz", "/admin/login", "/admin/static/admin.css"]
    async with aiohttp.ClientSession() as session:
        for path in paths:
            async with session.get(offline_desk.url + path, allow_redirects=False) as resp:
                # /healthz: 503, this desk has no XMPP link.
                assert resp.status in (200, 503), path
                for name in ("Content-Security-Policy", "X-Content-Type-Options"):
                    assert len(resp.headers.getall(name)) == 1, (path, name)
                assert resp.headers.getall("Referrer-Policy"), path
        # Under /admin the guard still runs: no session, so to the login form.
        async with session.get(offline_desk.url + "/admin/", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"].startswith("/admin/login")
