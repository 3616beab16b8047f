"""Registers the admin pages' routes (called once by the app factory)."""

from __future__ import annotations

from aiohttp import web

from web.admin import (
    auth,
    directory,
    incidents,
    live,
    moderation,
    records,
    stats,
    sticky,
    tickets,
)
from web.assets import file_response, package_dir, served_files
from web.guarded import guarded_router


def setup_admin(app: web.Application) -> None:
    """Called by the app factory: the guard middleware is added there."""
    auth.setup_password_workers(app)
    routes = guarded_router(app)
    routes.add_get("/admin/login", auth.login_page)
    routes.add_post("/admin/login", auth.login)
    routes.add_post("/admin/logout", auth.logout)
    # A route of its own rather than aiohttp's static resource, so that the guard (and
    # its headers) applies to these files too.
    files = served_files(package_dir("web", "static"))

    async def static_file(request: web.Request) -> web.FileResponse:
        """GET /admin/static/{name}: the admin and operator pages' styles and scripts."""
        path = files.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return file_response(path)

    routes.add_get("/admin/static/{name}", static_file)
    for module in (live, directory, moderation, sticky, incidents, records, tickets, stats):
        module.add_routes(app)
