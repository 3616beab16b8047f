"""The operators' browser XMPP client at /operator/: a vendored Converse.js (web/converse/,
updated by scripts/update-converse) plus refdesk's small plugin (web/static/operator.js).

The page connects straight from the operator's browser to their XMPP server's WebSocket
endpoint ([operator_web] websocket_url), so refdesk never sees a password: these handlers
serve only static files and a page whose settings are data, never script.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import aiohttp_jinja2
from aiohttp import web

from web.assets import package_dir
from web.guarded import guarded_router
from web.keys import CONFIG, OPERATOR_FILES, SERVICE

PREFIX = "/operator"
# What the vendored client may be asked for, by type: nothing else in its directory (the
# licence and version notes are for people reading the package, not for browsers).
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".ogg": "audio/ogg",
    ".mp3": "audio/mpeg",
    ".ttf": "font/ttf",
    ".json": "application/json",
}


# The sha256 of each <style> element text the vendored Converse.js adds (Chromium names
# them in its CSP reports); check again after scripts/update-converse.
_CONVERSE_STYLE_HASHES = (
    "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='",
    "'sha256-JRf3eZJIF59VkE1tlxlBPiCQXjGJ1uE88pEYh49RtTY='",
)


def converse_files() -> dict[str, Path]:
    """The servable files of the vendored client by path relative to its directory
    (e.g. "sounds/msg_received.ogg"). Built once by the app factory; a name that is not in
    this map is a 404, so no request path ever reaches the file system."""
    root = package_dir("web", "converse")
    return {
        path.relative_to(root).as_posix(): path
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.suffix in _TYPES
    }


def operator_csp(websocket_url: str) -> str:
    """The operator page's Content-Security-Policy: our own files, the one WebSocket
    endpoint of the operators' XMPP server, and nothing else. Never framed (a framed
    login form invites clickjacking). What Converse.js needs beyond that, found by running
    it in Chromium with this policy until nothing was refused: style attributes, two
    fixed <style> texts (by hash), its emoji table fetched from here. It needs no eval."""
    # 'self': Converse.js fetches its emoji table (emoji.json) before sending any message.
    connect = f"'self' {websocket_url}" if websocket_url else "'none'"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            # Converse.js's bundle adds <style> elements whose text is always one of these
            # two (empty, and an empty CSS module's placeholder): allowed by hash, exactly.
            f"style-src 'self' {' '.join(_CONVERSE_STYLE_HASHES)}",
            # Converse.js's templates set style attributes (avatar colours, widths, progress
            # bars); style attributes can restyle the page but run nothing.
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self'",
            "media-src 'self'",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _page_settings(request: web.Request, websocket_url: str) -> dict[str, object]:
    """What the page's script needs before log-in, handed over as JSON data in the page.
    Anyone may load the page, so it names nothing of the directory (no queue, group or
    operator): the script learns the operator's queues over XMPP once they have logged
    in, from what the queue JIDs send them."""
    service = request.app[SERVICE]
    return {
        "websocket_url": websocket_url,
        "assets_path": f"{PREFIX}/converse/",
        "component_domain": service.domain,
        "xmpp_domain": urlsplit(websocket_url).hostname or "",
    }


async def operator_page(request: web.Request) -> web.Response:
    """GET /operator/: the browser client, or a page saying it is switched off."""
    websocket_url = request.app[CONFIG].operator_web.websocket_url
    if not websocket_url:
        response = aiohttp_jinja2.render_template(
            "operator_off.html", request, {"prefix": PREFIX}, status=404
        )
    else:
        # Rendered with Jinja's tojson, which escapes <, >, & and quotes: the data cannot
        # close its script element.
        settings = _page_settings(request, websocket_url)
        response = aiohttp_jinja2.render_template(
            "operator.html", request, {"prefix": PREFIX, "settings": settings}
        )
    response.headers["Content-Security-Policy"] = operator_csp(websocket_url)
    response.headers["X-Frame-Options"] = "DENY"
    # The page holds nothing secret, but a shared computer's cache should not keep it.
    response.headers["Cache-Control"] = "no-store"
    return response


async def operator_redirect(request: web.Request) -> web.Response:
    """GET /operator: to /operator/ (the relative asset paths need the slash)."""
    raise web.HTTPPermanentRedirect(f"{PREFIX}/")


async def converse_file(request: web.Request) -> web.FileResponse:
    """GET /operator/converse/{path}: a file of the vendored client, by exact name."""
    path = request.app[OPERATOR_FILES].get(request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    response = web.FileResponse(path)
    response.headers["Content-Type"] = _TYPES[path.suffix]
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


async def plugin_file(request: web.Request) -> web.FileResponse:
    """GET /operator/{name}: refdesk's own script and style for the page."""
    name = request.match_info["name"]
    if name not in ("operator.js", "operator.css"):
        raise web.HTTPNotFound()
    path = package_dir("web", "static") / name
    response = web.FileResponse(path)
    response.headers["Content-Type"] = _TYPES[path.suffix] + "; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"
    return response


def add_routes(app: web.Application) -> None:
    """Called once by the app factory."""
    app[OPERATOR_FILES] = converse_files()
    routes = guarded_router(app)
    routes.add_get(PREFIX, operator_redirect)
    routes.add_get(f"{PREFIX}/", operator_page)
    routes.add_get(PREFIX + "/converse/{path:.+}", converse_file)
    routes.add_get(PREFIX + "/{name}", plugin_file)
