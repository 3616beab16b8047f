"""What a standby process serves while another holds the active lock: 503 to every
request, so that a proxy checking /healthz (or retrying on 503) sends patrons and admins
to the active process. Created by the composition root while it waits for the lock."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from web.security import STRICT_HEADERS

# A proxy or a widget retries after this many seconds.
RETRY_AFTER = "2"


async def standby(request: web.Request) -> web.Response:
    """Any path, any method: this process is not the active one (yet)."""
    return web.json_response(
        {"status": "standby", "serving": False},
        status=503,
        headers={"Cache-Control": "no-store", "Retry-After": RETRY_AFTER, **STRICT_HEADERS},
    )


def fence_middleware(fenced: Callable[[], bool]) -> Middleware:
    """A middleware for the active process's app: once `fenced()` (the process lost the
    active lock), every request, and every answer a handler had under way, becomes the
    standby's 503, so nothing is served or acknowledged over HTTP by a process that may no
    longer be the active one. Installed outermost by the composition root."""

    @web.middleware
    async def fence(request: web.Request, handler: Handler) -> web.StreamResponse:
        if fenced():
            return await standby(request)
        response: web.StreamResponse = await handler(request)
        if fenced() and not response.prepared:
            return await standby(request)
        return response

    return fence


def make_standby_app() -> web.Application:
    """The standby's whole web application (no store, no service behind it)."""
    app = web.Application(client_max_size=1024)
    app.router.add_route("*", "/{tail:.*}", standby)
    return app
