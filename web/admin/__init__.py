"""The admin pages under /admin/ (server-rendered; every form has a CSRF token).

Each concept has its own module registering its routes: `live` (this package's
dashboard), `directory` (groups, queues, operators, canned messages), `moderation` (bans
and incidents), `records` (transcripts, tickets, the mail outbox), `stats`."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from web.admin import auth
from web.assets import package_dir

# (path, label, admins only)
NAV: list[tuple[str, str, bool]] = [
    ("/admin/", "Live", False),
    ("/admin/groups", "Groups", False),
    ("/admin/queues", "Queues", False),
    ("/admin/operators", "Operators", False),
    ("/admin/bans", "Bans", False),
    ("/admin/incidents", "Incidents", False),
    ("/admin/transcripts", "Transcripts", False),
    ("/admin/tickets", "Tickets & mail", False),
    ("/admin/stats", "Statistics", False),
    ("/admin/canned", "Canned messages", True),
]


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> web.Response:
    """Render an admin page with the layout's variables (admin, csrf, nav, flash)."""
    session = auth.current(request)
    nav = [
        (href, label)
        for href, label, admins_only in NAV
        if not admins_only or session.admin.role == "admin"
    ]
    full = {
        "admin": session.admin,
        "csrf": session.csrf,
        "nav": nav,
        "flash": request.query.get("done"),
        "request": request,
        **context,
    }
    return aiohttp_jinja2.render_template(template, request, full, status=status)


def setup_admin(app: web.Application) -> None:
    """Called by the app factory: the guard middleware is added there."""
    from web.admin import directory, live, moderation, records, stats

    auth.setup_password_workers(app)
    app.router.add_get("/admin/login", auth.login_page)
    app.router.add_post("/admin/login", auth.login)
    app.router.add_post("/admin/logout", auth.logout)
    app.router.add_static("/admin/static", package_dir("web", "static"), append_version=False)
    for module in (live, directory, moderation, records, stats):
        module.add_routes(app)
