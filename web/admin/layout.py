"""The admin pages' layout: the navigation and `render`, which every page module calls
to fill the layout's variables (admin, CSRF token, navigation, flash message)."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from web.admin import auth

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
