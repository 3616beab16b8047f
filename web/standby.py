"""What a standby process serves while another holds the active lock: 503 to every
request, so that a proxy checking /healthz (or retrying on 503) sends patrons and admins
to the active process. Created by the composition root while it waits for the lock."""

from __future__ import annotations

from aiohttp import web

# A proxy or a widget retries after this many seconds.
RETRY_AFTER = "2"


async def standby(request: web.Request) -> web.Response:
    """Any path, any method: this process is not the active one (yet)."""
    return web.json_response(
        {"status": "standby", "serving": False},
        status=503,
        headers={"Cache-Control": "no-store", "Retry-After": RETRY_AFTER},
    )


def make_standby_app() -> web.Application:
    """The standby's whole web application (no store, no service behind it)."""
    app = web.Application(client_max_size=1024)
    app.router.add_route("*", "/{tail:.*}", standby)
    return app
