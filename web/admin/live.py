"""The live view: queues, operators and open chats right now."""

from __future__ import annotations

from aiohttp import web

from web.admin import auth
from web.admin.layout import render
from web.guarded import guarded_router
from web.keys import SERVICE


async def live(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    groups = auth.visible_groups(request)
    queues = [service.queue(n) for n in service.queue_names()]
    queues = [q for q in queues if groups is None or q.group_id in groups]
    queue_ids = {q.id for q in queues}
    rows = []
    for q in queues:
        info = service.queue_info(q.name)
        rows.append(
            {
                "name": q.name,
                "title": q.title,
                "status": info.status.value,
                "open_now": info.open_now,
                "waiting": info.waiting,
                "active": sum(1 for c in service.open_chats(q) if c.operator is not None),
                "available": info.operators_available,
            }
        )
    operators = []
    for op in service.operators():
        op_queues = [q for q in service.queues_of(op.jid) if service.queue(q).id in queue_ids]
        if not op_queues and groups is not None:
            continue
        operators.append(
            {
                "name": op.name,
                "jid": op.jid,
                "presence": service.presence_of(op.jid).value,
                "active": service.active_chats(op.jid),
                "max_chats": op.max_chats,
                "queues": op_queues,
            }
        )
    chats = [
        {
            "id": c.id,
            "guest": c.guest,
            "queue": c.queue.name,
            "state": c.state.value,
            "operator": c.operator.name if c.operator else None,
            "asked": f"{c.asked_at:%H:%M:%S} UTC" if c.asked_at else None,
        }
        for c in service.open_chats()
        if c.queue.id in queue_ids and c.last_seq > 0
    ]
    now = f"{service.clock():%Y-%m-%d %H:%M:%S} UTC"
    return render(
        request,
        "admin/live.html",
        {
            "title": "Live",
            "queues": rows,
            "operators": operators,
            "chats": chats,
            "now": now,
        },
    )


def add_routes(app: web.Application) -> None:
    routes = guarded_router(app)
    routes.add_get("/admin/", live)
    routes.add_get("/admin", to_dashboard)


async def to_dashboard(request: web.Request) -> web.Response:
    raise web.HTTPFound("/admin/")
