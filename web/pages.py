"""Patron pages and the status endpoint."""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from web.assets import file_response
from web.keys import SERVICE, STATUS_BODIES, WIDGET_FILES
from web.patron import request_origin
from web.security import content_security_policy
from web.status_body import error_headers, etag_matches

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
                # The widget's strings translate the page (`data-i18n-page`).
                "key": "notFound",
                "lang": _lang(request),
            },
            status=404,
        )
    ip = request_origin(request).ip
    if service.moderation.banned(ip) is not None:
        return aiohttp_jinja2.render_template(
            "error.html",
            request,
            {
                "title": "Chat not available",
                "text": service.ban_text(queue, ip),
                "static_prefix": STATIC_PREFIX,
                "key": "banned",
                "lang": _lang(request),
                # The ban message is the admin's: shown as written.
                "admin_text": True,
            },
            status=403,
        )
    info = service.queue_info(queue)
    settings = service.queue(queue)
    links = await service.store.links.of_group(settings.group_id)
    response = aiohttp_jinja2.render_template(
        "chat.html",
        request,
        {
            "queue": queue,
            "title": info.title,
            "status": info.status.value,
            "ws_path": f"/ws/{queue}",
            "lp_path": f"/lp/{queue}",
            "status_path": f"/api/queues/{queue}/status",
            "questions_path": f"/api/queues/{queue}/questions",
            "lang": _lang(request),
            "static_prefix": STATIC_PREFIX,
            "color": settings.widget_color,
            "logo": settings.widget_logo,
            "greeting": settings.greeting,
            "texts": {
                "available": settings.text_available,
                "away": settings.text_away,
                "offline": settings.text_offline,
            },
            "links": links,
        },
    )
    response.headers["Content-Security-Policy"] = content_security_policy(
        request, settings.allowed_origins
    )
    return response


async def queue_status(request: web.Request) -> web.Response:
    """GET /api/queues/{queue}/status: hit on every page view of every partner site, so it
    is answered from memory with a body encoded once per change (web.status_body), and
    may be cached for a few seconds (ETag, Cache-Control)."""
    service = request.app[SERVICE]
    queue = request.match_info["queue"]
    if not service.is_queue(queue):
        return web.json_response(
            {"error": "unknown_queue", "text": f"There is no queue called {queue!r}."},
            status=404,
            headers=error_headers(),
        )
    info = service.recent_queue_info(queue)
    answer = request.app[STATUS_BODIES].get(info, bool(service.queue(queue).followup_email))
    if etag_matches(request.headers.get("If-None-Match"), answer.etag):
        return web.Response(status=304, headers=answer.headers)
    return web.Response(body=answer.body, headers=answer.headers)


async def widget_file(request: web.Request) -> web.FileResponse:
    """GET /widget/{name}: the widget's scripts and styles, and nothing else."""
    path = request.app[WIDGET_FILES].get(request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return file_response(path)


async def embed_script(request: web.Request) -> web.FileResponse:
    """GET /embed.js: the snippet partner sites load (`widget/embed.js`). It runs on the
    partner's page, so it must be served with a script type and may be cached a while."""
    response = file_response(request.app[WIDGET_FILES]["embed.js"])
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
