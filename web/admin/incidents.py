"""Admin pages: incidents (list, view, resolve) and the chats and incidents related to
an address, which the ban look-up shows too.

Incidents are per queue: coordinators see and resolve those of their group's queues
only. Explicit content: an incident flagged explicit refers to its chat without quoting
it; only an admin can open the verbatim text, by an explicit action.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from component.core import validators
from component.core.bans import overlapping
from component.core.models import Incident
from component.core.outcomes import OUTCOMES, parse_outcome
from component.core.outcomes import shown as shown_outcome
from component.store.transcripts import ChatSummary
from web.admin import auth
from web.admin.layout import render
from web.admin.views import (
    PAGE_SIZE,
    chat_address,
    check_queue,
    entries,
    int_param,
    may_see_chat,
    page_links,
    page_number,
    queue_privacy,
    sealed,
    shown_address,
    visible_queue_ids,
    when,
)
from web.guarded import guarded_router
from web.keys import SERVICE

Network = IPv4Network | IPv6Network

MAX_RESOLUTION = 2000
MAX_REASON = validators.MAX_BAN_REASON
RELATED_LIMIT = 200


# Related chats and incidents --------------------------------------------------------------


def neighbourhood(network: Network) -> Network:
    """The /24 (IPv4) or /48 (IPv6) around a narrower network; the network itself if it
    is that wide or wider. `network` mode keeps exactly these."""
    wide = 24 if network.version == 4 else 48
    return network.supernet(new_prefix=wide) if network.prefixlen > wide else network


def _parse(stored: str) -> Network | None:
    try:
        return ip_network(stored.strip(), strict=False)
    except ValueError:
        return None


async def related(
    request: web.Request,
    network: Network,
    *,
    exclude_chat: int | None = None,
    exclude_incident: int | None = None,
) -> dict[str, Any]:
    """Chats and incidents whose stored address is the same address (or a stored network
    containing it), or lies in the same /24 or /48 — within this admin's queues."""
    store = request.app[SERVICE].store
    near = neighbourhood(network)
    visible = visible_queue_ids(request)

    def closeness(stored: str) -> str | None:
        other = _parse(stored)
        if other is None:
            return None
        if overlapping(network, [other]):
            return "same address" if other.prefixlen >= network.prefixlen else "same network"
        if overlapping(near, [other]):
            return f"same /{near.prefixlen}"
        return None

    chat_marks: dict[int, str] = {}
    for chat_id, stored in await store.chats.stored_origins():
        mark = closeness(stored)
        if mark and chat_id != exclude_chat:
            chat_marks[chat_id] = mark
    chats = [
        c
        for c in await store.transcripts.summaries(chat_marks)
        if visible is None or c.queue_id in visible
    ][:RELATED_LIMIT]
    incident_marks: dict[int, str] = {}
    for incident_id, stored in await store.incidents.addresses():
        mark = closeness(stored)
        if mark and incident_id != exclude_incident:
            incident_marks[incident_id] = mark
    incidents = [
        i
        for i in await store.incidents.by_ids(incident_marks)
        if visible is None or (i.queue_id is not None and i.queue_id in visible)
    ][:RELATED_LIMIT]
    return {
        "near": str(near),
        "related_chats": [_related_chat(c, chat_marks[c.id]) for c in chats],
        "related_incidents": [
            {**incident_row(request, i), "match": incident_marks[i.id]} for i in incidents
        ],
    }


def _related_chat(chat: ChatSummary, mark: str) -> dict[str, Any]:
    return {
        "id": chat.id,
        "queue": chat.queue_name,
        "started": when(chat.created_at),
        "state": chat.state.value,
        "address": chat_address(chat),
        "tags": chat.tags,
        "match": mark,
    }


# Incidents --------------------------------------------------------------------------------


_INCIDENT_FILTERS = {"open": "open", "resolved": "resolved", "all": None}


def _queue_name(request: web.Request, queue_id: int | None) -> str | None:
    if queue_id is None:
        return None
    service = request.app[SERVICE]
    try:
        return service.queue_by_id(queue_id).name
    except Exception:
        return None


def incident_row(request: web.Request, incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "kind": incident.kind,
        "created": when(incident.created_at),
        "queue": _queue_name(request, incident.queue_id),
        "chat_id": incident.chat_id,
        "address": shown_address(incident.address, queue_privacy(request, incident.queue_id)),
        "tags": incident.tags,
        "reporter": incident.reporter,
        "status": incident.status,
        "explicit": incident.explicit,
    }


async def incidents(request: web.Request) -> web.Response:
    """GET /admin/incidents?status=open|resolved|all"""
    show = request.query.get("status", "open")
    if show not in _INCIDENT_FILTERS:
        show = "open"
    page = page_number(request)
    rows, total = await request.app[SERVICE].store.incidents.page(
        status=_INCIDENT_FILTERS[show],
        queue_ids=visible_queue_ids(request),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    return render(
        request,
        "admin/incident_list.html",
        {
            "title": "Incidents",
            "show": show,
            "incidents": [incident_row(request, i) for i in rows],
            "pager": page_links(request, page, total),
        },
    )


async def _incident(request: web.Request) -> Incident:
    number = int_param(request.match_info["incident_id"])
    found = await request.app[SERVICE].store.incidents.get(number) if number else None
    if found is None:
        raise web.HTTPNotFound(text="Not found.")
    check_queue(request, found.queue_id)
    return found


async def _incident_page(
    request: web.Request,
    incident: Incident,
    *,
    verbatim: bool = False,
    errors: dict[str, str] | None = None,
    resolution: str = "",
    outcome: tuple[str, str] = ("", ""),
    status: int = 200,
) -> web.Response:
    service = request.app[SERVICE]
    store = service.store
    chat = await store.transcripts.summary(incident.chat_id) if incident.chat_id else None
    # A transfer may have moved the chat into another group's queue since the incident
    # was filed: then it is that group's, and not shown here.
    hidden = chat is not None and not may_see_chat(request, chat)
    if hidden:
        chat = None
    is_sealed = incident.explicit
    events: list[Any] = []
    if chat is not None:
        is_sealed = is_sealed or sealed(chat, await store.incidents.for_chat(chat.id))
        events = await store.chats.events_after(chat.id, 0)
    row = incident_row(request, incident)
    rel: dict[str, Any] = {"related_chats": [], "related_incidents": []}
    network = _parse(row["address"]) if row["address"] else None
    if network is not None:
        rel = await related(
            request, network, exclude_chat=incident.chat_id, exclude_incident=incident.id
        )
    show_text = chat is not None and (not is_sealed or verbatim)
    return render(
        request,
        "admin/incident_detail.html",
        {
            "title": f"Incident #{incident.id}",
            "incident": row,
            "notes": incident.notes,
            "resolution": incident.resolution,
            "resolved": when(incident.resolved_at),
            "chat": chat,
            "chat_hidden": hidden,
            "chat_started": when(chat.created_at) if chat else "",
            "chat_count": sum(1 for e in events if e.kind.value == "message"),
            "chat_first": when(events[0].ts) if events else "",
            "chat_last": when(events[-1].ts) if events else "",
            "sealed": is_sealed,
            "verbatim": verbatim,
            "entries": entries(events) if show_text else [],
            "is_admin": auth.current(request).admin.role == "admin",
            "errors": errors or {},
            "resolution_value": resolution,
            "outcome_value": outcome[0],
            "days_value": outcome[1],
            "outcomes": list(OUTCOMES.items()),
            "outcome": shown_outcome(incident.outcome),
            "trail": [
                {"when": when(n.created_at), "n": n}
                for n in await store.notices.for_incident(incident.id)
            ],
            "may_ban": row["address"] is not None,
            "ban_link": "/admin/bans/new?"
            + urlencode(
                {
                    "target": row["address"] or "",
                    "reason": incident.notes[: validators.MAX_BAN_REASON],
                }
            ),
            **rel,
        },
        status=status,
    )


async def incident(request: web.Request) -> web.Response:
    """GET /admin/incidents/{id}"""
    return await _incident_page(request, await _incident(request))


async def incident_verbatim(request: web.Request) -> web.Response:
    """GET /admin/incidents/{id}/verbatim: the chat's text, for an admin who asked."""
    found = await _incident(request)
    auth.require_admin(request)
    return await _incident_page(request, found, verbatim=True)


async def resolve(request: web.Request) -> web.Response:
    """POST /admin/incidents/{id}/resolve"""
    found = await _incident(request)
    form = await request.post()
    text = str(form.get("resolution", "")).strip()
    code = str(form.get("outcome", "")).strip()[:40]
    days = str(form.get("days", "")).strip()[:40]
    errors: dict[str, str] = {}
    if found.status == "resolved":
        errors["resolution"] = "This incident is already resolved."
    elif not text:
        errors["resolution"] = (
            "Write what was done (or why nothing was): it is kept with the report."
        )
    elif len(text) > MAX_RESOLUTION:
        errors["resolution"] = f"Keep the resolution under {MAX_RESOLUTION} characters."
    try:
        parse_outcome(code, days)
    except ValueError as exc:
        errors["days" if code == "banned" else "outcome"] = str(exc)
    if errors:
        return await _incident_page(
            request,
            found,
            errors=errors,
            resolution=text,
            outcome=(code, days),
            status=400,
        )
    service = request.app[SERVICE]
    actor = auth.current(request).admin.username
    # The outcome goes to the reporting operator and the group's coordinators.
    await service.notices.close_incident(found, code, days, text, actor)
    raise web.HTTPSeeOther(
        f"/admin/incidents/{found.id}?" + urlencode({"done": f"Incident #{found.id} resolved."})
    )


def add_routes(app: web.Application) -> None:
    """Register this module's pages."""
    r = guarded_router(app)
    r.add_get("/admin/incidents", incidents)
    r.add_get(r"/admin/incidents/{incident_id:\d+}", incident)
    r.add_get(r"/admin/incidents/{incident_id:\d+}/verbatim", incident_verbatim)
    r.add_post(r"/admin/incidents/{incident_id:\d+}/resolve", resolve)
