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
from web.assets import package_dir


def setup_admin(app: web.Application) -> None:
    """Called by the app factory: the guard middleware is added there."""
    auth.setup_password_workers(app)
    app.router.add_get("/admin/login", auth.login_page)
    app.router.add_post("/admin/login", auth.login)
    app.router.add_post("/admin/logout", auth.logout)
    app.router.add_static("/admin/static", package_dir("web", "static"), append_version=False)
    for module in (live, directory, moderation, sticky, incidents, records, tickets, stats):
        module.add_routes(app)
