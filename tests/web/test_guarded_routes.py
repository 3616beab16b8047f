"""Every route but the status endpoint's is wrapped in the guard when it is added (with
aiohttp's public route-adding methods, `web.guarded`); the admin pages' static files have
a route of their own so that the guard covers them, and serve nothing but those files."""

from __future__ import annotations

import aiohttp

from tests.conftest import Desk
from web import pages


async def test_every_route_but_the_status_one_is_guarded(offline_desk: Desk) -> None:
    runner = offline_desk.refdesk._runner
    assert runner is not None
    bare = []
    for route in runner.app.router.routes():
        handler = route.handler
        # The guard keeps the handler it wraps (functools.wraps), so this tells them apart.
        if getattr(handler, "__wrapped__", None) is None:
            bare.append((route.method, route.resource.canonical if route.resource else None))
    assert sorted(bare) == [
        ("GET", "/api/queues/{queue}/status"),
        ("HEAD", "/api/queues/{queue}/status"),
    ]
    assert all(
        route.handler is pages.queue_status
        for route in runner.app.router.routes()
        if route.resource is not None and route.resource.canonical == "/api/queues/{queue}/status"
    )


async def test_admin_static_files_are_served_and_nothing_else(offline_desk: Desk) -> None:
    async with aiohttp.ClientSession() as session:
        url = offline_desk.url + "/admin/static/"
        async with session.get(url + "admin.css") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/css")
            assert "body" in await resp.text()
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
        # Names that are not one of the files (the handler's 404), and paths outside the
        # route (no name, a way out), which match no route at all.
        for name in ("nosuch.css", "..%2Ftemplates%2Foperator.html", "operator.html", ""):
            async with session.get(url + name, allow_redirects=False) as resp:
                assert resp.status == 404, name
        for name in ("%2E%2E/app.py", "../../pyproject.toml"):
            async with session.get(url + name, allow_redirects=False) as resp:
                assert resp.status == 404, name
