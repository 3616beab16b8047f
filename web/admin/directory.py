"""Admin pages of the directory: groups, queues, operators, canned messages and each
queue's embed code, one module each (forms they share: `web.admin.forms`). Every change
goes through `component.directory`, the same layer as the command line's."""

from __future__ import annotations

from aiohttp import web

from web.admin import canned, groups, operators, queues


def add_routes(app: web.Application) -> None:
    """Register the directory pages (called by `setup_admin`)."""
    for module in (groups, queues, operators, canned):
        module.add_routes(app)
