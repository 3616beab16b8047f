"""Admin page: sticky pickup marks. After an operator ends a patron's chat as
inappropriate, that patron's next chats go first to the same operator for a while
(`[bans] sticky_pickup`); this page lists the marks in force, who set them and when, and
clears one (the operator has left, the mark was a mistake).

Scope: an admin sees every mark; a group coordinator only the marks made in their
group's chats, and clearing another group's mark answers 404. Clearing goes through
`component.sticky_pickup.clear_mark`, as `refdesk sticky clear` does.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from component.sticky_pickup import clear_mark
from component.store.sticky import StickyRow
from web.admin import auth
from web.admin.forms import done
from web.admin.layout import render
from web.admin.moderation import actor
from web.admin.views import path_id, queue_privacy, shown_address, when
from web.guarded import guarded_router
from web.keys import SERVICE


def _row(request: web.Request, row: StickyRow, groups: dict[int, str]) -> dict[str, Any]:
    mark = row.mark
    return {
        "id": row.id,
        # As the chat's queue's privacy mode allows now (it may have become stricter).
        "address": shown_address(mark.key, queue_privacy(request, row.queue_id)),
        "operator": row.operator_name,
        "operator_jid": mark.operator_jid,
        "why": mark.why,
        "set": when(mark.created_at),
        "expires": when(mark.expires_at),
        "chat_id": mark.chat_id if row.queue_id is not None else None,
        "group": groups.get(row.group_id) if row.group_id is not None else None,
    }


async def sticky_marks(request: web.Request) -> web.Response:
    """GET /admin/bans/sticky: the marks in force this admin may see, newest first."""
    service = request.app[SERVICE]
    rows = await service.store.sticky.rows(service.clock(), auth.visible_groups(request))
    groups = {g.id: g.title for g in await service.store.groups.all()}
    return render(
        request,
        "admin/sticky_list.html",
        {
            "title": "Sticky pickup",
            "marks": [_row(request, r, groups) for r in rows],
            "seconds": service.moderation.policy.sticky_pickup,
            "is_admin": auth.current(request).admin.role == "admin",
        },
    )


async def clear(request: web.Request) -> web.Response:
    """POST /admin/bans/sticky/{mark_id}/clear: forget one mark (404 for a mark that is
    gone, has expired or belongs to another group)."""
    service = request.app[SERVICE]
    mark_id = path_id(request, "mark_id")
    row = await clear_mark(
        service.store,
        mark_id,
        now=service.clock(),
        group_ids=auth.visible_groups(request),
        actor=actor(request),
    )
    if row is None:
        raise web.HTTPNotFound(text="Not found.")
    who = row.operator_name or row.mark.operator_jid
    message = f"Cleared: the patron's next chats are no longer offered to {who} first."
    raise done("/admin/bans/sticky", message)


def add_routes(app: web.Application) -> None:
    """Register this module's pages."""
    r = guarded_router(app)
    r.add_get("/admin/bans/sticky", sticky_marks)
    r.add_post(r"/admin/bans/sticky/{mark_id:\d+}/clear", clear)
