"""The aiohttp application factory."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import WSCloseCode, web

from component.config import Config
from component.operations import LinkState, Operations
from component.service import DeskService
from web import assets, longpoll, operator_page, ops, pages, patron, questions
from web.admin.auth import admin_guard, admin_headers
from web.admin.routes import setup_admin
from web.connlimits import AddressSlots
from web.guarded import ROUTE_GUARD, guarded_router
from web.hub import PatronHub
from web.keys import (
    CONFIG,
    HUB,
    METRICS_NETWORKS,
    OPERATIONS,
    PATRON_SLOTS,
    SERVICE,
    SOCKETS,
    STATUS_BODIES,
    WIDGET_FILES,
)
from web.security import content_security_policy
from web.status_body import StatusBodies

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _through_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a route's handler with the admin pages' guard for paths under /admin. Called
    for every request whose route `_guarded` wrapped (all but the status endpoint's). The
    headers every answer carries are added later, by `_security_headers`, which sees the
    answers no handler returns too."""
    if request.path.startswith("/admin"):
        return await admin_guard(request, handler)
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Add the security headers an answer lacks, just before its head is written. Called by
    aiohttp (the app's `on_response_prepare` signal) for every answer to a request that
    reached the app: those a handler returns or raises, the status endpoint's, aiohttp's
    own 404 and 405, and the 500 of a handler that failed. Only an answer to a request
    aiohttp could not parse (its 400, before any application code runs) goes without.

    Why a signal and not the route wrapper alone: the wrapper never sees answers that no
    route's handler makes. Why not a middleware: see `_guarded`. A status request pays the
    signal's dispatch and two look-ups (its answers are complete): about a microsecond,
    1-2 % of its CPU (bench/RESULTS.md, "security headers on every answer")."""
    headers = response.headers
    if "X-Content-Type-Options" in headers and "Content-Security-Policy" in headers:
        return  # the status endpoint's answers, and the admin guard's
    if request.path.startswith("/admin"):
        # Under /admin but not through the admin guard (no admin route matched).
        admin_headers(request, response)
        return
    # Checked first: building the policy costs a string join per request.
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = content_security_policy(request)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")


def _guarded(handler: Handler) -> Callable[[web.Request], Coroutine[Any, Any, web.StreamResponse]]:
    """`handler` run through `_through_guard`. Stored as the app's `ROUTE_GUARD`, which
    `web.guarded.guarded_router` applies to every route as it is added: all but the status
    endpoint's, which answers with its own complete, precomputed set of headers
    (web.status_body) and is added bare.

    Why per route and not as an application middleware: an app with any middleware makes
    aiohttp run two layers per request (the middleware and its own that sets
    `request.app`), about an eighth of the CPU of a status request, which is hit on every
    page view of every partner site. An active process on PostgreSQL has the fence's
    middleware (component.runner), which still sees every request, this one included."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        return await _through_guard(request, handler)

    return guarded


def make_app(
    service: DeskService, config: Config, operations: Operations | None = None
) -> web.Application:
    """Build the web application around a running service. Called by the composition root
    (which passes `operations`, knowing the XMPP link) and by tests; the caller runs it
    (e.g. with `web.AppRunner`). Without `operations` the app reports no XMPP link."""
    app = web.Application(client_max_size=256 * 1024)
    app[SERVICE] = service
    app[CONFIG] = config
    app[HUB] = PatronHub(service.bus, lambda queue, ip: service.ban_notice(queue, ip).frame())
    app[STATUS_BODIES] = StatusBodies()
    app[SOCKETS] = set()
    app[WIDGET_FILES] = assets.widget_files()
    app[OPERATIONS] = operations or Operations(service, lambda: LinkState(False, 0))
    app[METRICS_NETWORKS] = config.web.metrics_network_list
    app[PATRON_SLOTS] = AddressSlots(
        config.web.connections_per_address, config.web.connections_per_network
    )
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(assets.package_dir("web", "templates"))),
        autoescape=jinja2.select_autoescape(default=True),
    )
    app.cleanup_ctx.append(_hub_ctx)
    app.on_cleanup.append(_close_operations)
    app.on_shutdown.append(_close_sockets)
    app.on_response_prepare.append(_security_headers)
    app[ROUTE_GUARD] = _guarded
    # The one bare route: the status endpoint (see `_guarded`).
    app.router.add_get("/api/queues/{queue}/status", pages.queue_status)
    routes = guarded_router(app)
    routes.add_get("/chat/{queue}", pages.chat_page)
    routes.add_post("/api/queues/{queue}/questions", questions.submit_question)
    routes.add_get("/ws/{queue}", patron.handle_ws)
    longpoll.add_routes(app)
    setup_admin(app)
    operator_page.add_routes(app)
    routes.add_get("/healthz", ops.healthz)
    routes.add_get("/metrics", ops.metrics)
    routes.add_get("/embed.js", pages.embed_script)
    routes.add_get(pages.STATIC_PREFIX + "/{name}", pages.widget_file)
    return app


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.start()
    yield
    hub.stop()


async def _close_sockets(app: web.Application) -> None:
    sockets: set[web.WebSocketResponse] = app[SOCKETS]
    for ws in tuple(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")


async def _close_operations(app: web.Application) -> None:
    app[OPERATIONS].close()
