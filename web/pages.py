"""Patron pages and the status endpoint."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from web.keys import SERVICE

STATIC_PREFIX = "/widget"


def _lang(request: web.Request) -> str:
    """Spanish if asked for with ?lang=es or preferred by the browser, else English."""
    asked = request.query.get("lang")
    if asked in ("en", "es"):
        return asked
    accept = request.headers.get("Accept-Language", "")
    first = accept.split(",")[0].strip().lower()
    return "es" if first.startswith("es") else "en"


async def chat_page(request: web.Request) -> web.Response:
    """GET /chat/{queue}: the widget page (iframe, popup or direct link)."""
    service = request.app[SERVICE]
    queue = request.match_info["queue"]
    if not service.is_queue(queue):
        return aiohttp_jinja2.render_template(
            "error.html",
            request,
            {
                "title": "Chat not found",
                "text": "There is no chat service at this address. Check the link.",
                "static_prefix": STATIC_PREFIX,
            },
            status=404,
        )
    info = service.queue_info(queue)
    return aiohttp_jinja2.render_template(
        "chat.html",
        request,
        {
            "queue": queue,
            "title": info.title,
            "status": info.status.value,
            "ws_path": f"/ws/{queue}",
            "status_path": f"/api/queues/{queue}/status",
            "lang": _lang(request),
            "static_prefix": STATIC_PREFIX,
        },
    )


async def queue_status(request: web.Request) -> web.Response:
    """GET /api/queues/{queue}/status: hit on every page view of every partner site, so it
    is answered from memory and may be cached for a few seconds."""
    service = request.app[SERVICE]
    queue = request.match_info["queue"]
    headers = {"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=5"}
    if not service.is_queue(queue):
        return web.json_response(
            {"error": "unknown_queue", "text": f"There is no queue called {queue!r}."},
            status=404,
            headers=headers,
        )
    info = service.queue_info(queue)
    return web.json_response(
        {
            "queue": info.queue,
            "title": info.title,
            "status": info.status.value,
            "waiting": info.waiting,
            "operators_available": info.operators_available,
        },
        headers=headers,
    )
