"""Admin pages: moderation — bans (list, create, lift, the audit log, the ladder position
of an address) and incidents (list, view, resolve, related chats and incidents).

Who may do what. Bans are service-wide: a ban blocks an address on every queue of every
group. So only admins create and lift them; group coordinators see the bans, the audit
log and the ladder look-up, and *ask* for a ban, which files a 'ban-request' incident on
one of their queues for an admin to review (the form says so). Incidents are per queue:
coordinators see and resolve those of their group's queues only. What bans say about
other groups stays theirs: a coordinator sees "an operator of another group" rather than
that operator's address, and no link to a chat of another group.

Every ban goes through `service.moderation`, so it bites at once: open chats from the
network end with the ban message, the widget refuses it; a lift lets it in at once.

Explicit content: an incident flagged explicit refers to its chat without quoting it;
only an admin can open the verbatim text, by an explicit action.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from component.core import validators
from component.core.bans import (
    YEAR,
    Ban,
    BanError,
    canonical_address,
    format_duration,
    ladder_duration,
    next_offence,
    normalize_target,
    overlapping,
    refusal,
)
from component.core.models import Incident
from component.core.outcomes import OUTCOMES, parse_outcome
from component.core.outcomes import shown as shown_outcome
from component.moderation import BanRefused
from component.store_records import BAN_FILTERS, BanRow, ChatSummary
from web.admin import auth
from web.admin.layout import render
from web.admin.records import (
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
from web.keys import SERVICE

Network = IPv4Network | IPv6Network

MAX_REASON = validators.MAX_BAN_REASON
MAX_RESOLUTION = 2000
MAX_CUSTOM_DAYS = 3650
RELATED_LIMIT = 200

# The length choices of the ban form: None is the ladder's step for the offence.
LENGTHS: dict[str, tuple[str, timedelta | None]] = {
    "ladder": ("The ladder decides (default)", None),
    "30d": ("30 days", timedelta(days=30)),
    "90d": ("90 days", timedelta(days=90)),
    "1y": ("1 year", YEAR),
    "custom": ("Another number of days", None),
}

ROLE_NOTE = (
    "Bans are service-wide: a ban blocks the address or network on every queue of every "
    "group. Admins create and lift bans. Group coordinators can see them and ask for one: "
    "the request is filed as an incident for an admin to review."
)


def actor(request: web.Request) -> str:
    admin = auth.current(request).admin
    return f"{admin.username} (admin page)"


OTHER_GROUPS_OPERATOR = "an operator of another group"


def actor_shown(request: web.Request) -> Callable[[str | None], str | None]:
    """How this admin sees who did something to a ban. Bans are service-wide, so a
    coordinator sees them all; but an operator's address (operators ban with `!ban`) is
    their own group's to know: another group's operator, or an address that is nobody's
    operator any more, is shown as OTHER_GROUPS_OPERATOR. Admins see every actor; actors
    that are not addresses ("name (admin page)", "system") are shown as they are."""
    service = request.app[SERVICE]
    visible = visible_queue_ids(request)
    if visible is None:
        return lambda actor: actor
    names = {service.queue_by_id(i).name for i in visible}

    def shown(actor: str | None) -> str | None:
        if actor is None or "@" not in actor or " " in actor.strip():
            return actor
        return actor if names & set(service.queues_of(actor)) else OTHER_GROUPS_OPERATOR

    return shown


def ban_view(
    ban: Ban,
    now: datetime,
    *,
    lifted_by: str | None = None,
    shown: Callable[[str | None], str | None] = lambda actor: actor,
) -> dict[str, Any]:
    if ban.lifted_at is not None:
        status = "lifted"
    elif ban.active(now):
        status = "active"
    elif ban.starts_at > now:
        status = "future"
    else:
        status = "ended"
    return {
        "id": ban.id,
        "network": str(ban.network),
        "offence": ban.offence,
        "reason": ban.reason,
        "start": when(ban.starts_at),
        "end": "never (permanent)" if ban.ends_at is None else when(ban.ends_at),
        "lifted": when(ban.lifted_at),
        "lifted_by": shown(lifted_by),
        "by": shown(ban.created_by),
        "status": status,
        "permanent": ban.ends_at is None,
    }


def _ban_id(request: web.Request) -> int:
    number = int_param(request.match_info["ban_id"])
    if number is None:
        raise web.HTTPNotFound(text="Not found.")
    return number


# Ban list, detail, audit ------------------------------------------------------------------


async def bans(request: web.Request) -> web.Response:
    """GET /admin/bans?show=active|ended|lifted|all"""
    show = request.query.get("show", "active")
    if show not in BAN_FILTERS:
        show = "active"
    page = page_number(request)
    service = request.app[SERVICE]
    now = service.clock()
    rows, total = await service.store.ban_rows(
        show, now, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        request,
        "admin/ban_list.html",
        {
            "title": "Bans",
            "show": show,
            "bans": [
                ban_view(r.ban, now, lifted_by=r.lifted_by, shown=actor_shown(request))
                for r in rows
            ],
            "pager": page_links(request, page, total),
            "is_admin": auth.current(request).admin.role == "admin",
            "role_note": ROLE_NOTE,
            "ladder": str(service.moderation.policy.ladder),
        },
    )


async def _ban_page(
    request: web.Request,
    row: BanRow,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    service = request.app[SERVICE]
    now = service.clock()
    audit, _ = await service.store.audit_log(row.ban.id, limit=500)
    others = [
        b
        for b in await service.store.bans_that_may_bar(now)
        if b.id != row.ban.id and b.network == row.ban.network and b.active(now)
    ]
    # Bans are service-wide, the chat a ban came from is not: link it only for those who
    # may open it.
    chat = await service.store.chat_summary(row.chat_id) if row.chat_id else None
    shown = actor_shown(request)
    return render(
        request,
        "admin/ban_detail.html",
        {
            "title": f"Ban #{row.ban.id}",
            "ban": ban_view(row.ban, now, lifted_by=row.lifted_by, shown=shown),
            "chat_id": chat.id if chat is not None and may_see_chat(request, chat) else None,
            "audit": [
                {"action": a.action, "actor": shown(a.actor), "detail": a.detail, "at": when(a.at)}
                for a in audit
            ],
            "trail": [
                {"when": when(n.created_at), "n": n}
                for n in await service.store.notices.for_ban(row.ban.id)
            ],
            "is_admin": auth.current(request).admin.role == "admin",
            "errors": errors or {},
            "values": values or {},
            "others": len(others),
        },
        status=status,
    )


async def ban_detail(request: web.Request) -> web.Response:
    """GET /admin/bans/{id}: the ban, its audit trail, the lift form (admins)."""
    row = await request.app[SERVICE].store.ban_row(_ban_id(request))
    if row is None:
        raise web.HTTPNotFound(text="Not found.")
    return await _ban_page(request, row)


async def lift(request: web.Request) -> web.Response:
    """POST /admin/bans/{id}/lift: lift every active ban on exactly this network, with
    the reason recorded in the audit trail."""
    auth.require_admin(request)
    service = request.app[SERVICE]
    row = await service.store.ban_row(_ban_id(request))
    if row is None:
        raise web.HTTPNotFound(text="Not found.")
    form = await request.post()
    reason = str(form.get("reason", "")).strip()
    values = {"reason": reason}
    errors: dict[str, str] = {}
    if not reason:
        errors["reason"] = (
            "Say why the ban is lifted (e.g. an upheld appeal): it goes in the audit log."
        )
    elif (problem := _reason_problem(reason)) is not None:
        errors["reason"] = problem
    elif not row.ban.active(service.clock()):
        errors["reason"] = "This ban is no longer in force: there is nothing to lift."
    if errors:
        return await _ban_page(request, row, errors=errors, values=values, status=400)
    try:
        lifted = await service.moderation.lift(
            str(row.ban.network), actor=actor(request), detail=reason
        )
    except BanRefused as exc:
        return await _ban_page(request, row, errors={"reason": exc.text}, values=values, status=400)
    done = f"Lifted the ban on {row.ban.network}: the address can use the service again now."
    if len(lifted) > 1:
        done += f" ({len(lifted)} bans on this network were lifted.)"
    raise web.HTTPSeeOther(f"/admin/bans/{row.ban.id}?" + urlencode({"done": done}))


async def audit(request: web.Request) -> web.Response:
    """GET /admin/bans/audit: every create, change, lift and expiry, newest first."""
    page = page_number(request)
    service = request.app[SERVICE]
    rows, total = await service.store.audit_log(
        limit=PAGE_SIZE * 2, offset=(page - 1) * PAGE_SIZE * 2
    )
    shown = actor_shown(request)
    return render(
        request,
        "admin/ban_audit.html",
        {
            "title": "Ban audit log",
            "audit": [
                {
                    "ban_id": a.ban_id,
                    "network": a.network,
                    "action": a.action,
                    "actor": shown(a.actor),
                    "detail": a.detail,
                    "at": when(a.at),
                }
                for a in rows
            ],
            "pager": page_links(request, page, total, PAGE_SIZE * 2),
        },
    )


# Creating (admins) and asking for (coordinators) a ban -------------------------------------


FIELDS = ("target", "reason", "length", "days", "ipv6_prefix", "queue", "permanent")


def _form_values(data: Any) -> dict[str, str]:
    values = {k: str(data.get(k, "")).strip() for k in FIELDS}
    values["length"] = values["length"] or "ladder"
    values["ipv6_prefix"] = values["ipv6_prefix"] or "64"
    return values


async def ban_form(request: web.Request) -> web.Response:
    """GET /admin/bans/new (?target=&reason= prefill, e.g. from an incident)."""
    values = _form_values(request.query)
    values["permanent"] = ""
    return _render_form(request, values, {})


def _render_form(
    request: web.Request, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> web.Response:
    service = request.app[SERVICE]
    is_admin = auth.current(request).admin.role == "admin"
    visible = visible_queue_ids(request)
    queues = [service.queue(n) for n in service.queue_names()]
    queues = [q for q in queues if visible is None or q.id in visible]
    return render(
        request,
        "admin/ban_form.html",
        {
            "title": "New ban" if is_admin else "Ask for a ban",
            "is_admin": is_admin,
            "values": values,
            "errors": errors,
            "lengths": [(k, label) for k, label in ((k, v[0]) for k, v in LENGTHS.items())],
            "request_lengths": [(k, v[0]) for k, v in LENGTHS.items() if k != "custom"],
            "ladder": str(service.moderation.policy.ladder),
            "queues": queues,
            "role_note": ROLE_NOTE,
        },
        status=status,
    )


def _check_common(values: dict[str, str], errors: dict[str, str]) -> None:
    if not values["target"]:
        errors["target"] = (
            "Enter the address or network to ban, e.g. 203.0.113.7, 203.0.113.0/24 or 2001:db8::1."
        )
    elif len(values["target"]) > 100:
        errors["target"] = "That is too long for an address or network."
    if (problem := _reason_problem(values["reason"])) is not None:
        errors["reason"] = problem
    if values["length"] not in LENGTHS:
        errors["length"] = "Choose one of the lengths."


def _reason_problem(reason: str) -> str | None:
    """What is wrong with a ban's (or a lifting's) reason, by the rule every way of
    banning shares; None when it is fine."""
    try:
        validators.ban_reason(reason)
    except ValueError as exc:
        return str(exc)
    return None


def _ipv6_prefix(values: dict[str, str], errors: dict[str, str]) -> int:
    prefix = int_param(values["ipv6_prefix"])
    if prefix is None or not 32 <= prefix <= 128:
        errors["ipv6_prefix"] = "Write a prefix length from 32 to 128 (64 is one home network)."
        return 64
    return prefix


def _network(
    request: web.Request, values: dict[str, str], errors: dict[str, str], prefix: int
) -> Network | None:
    if "target" in errors:
        return None
    try:
        return normalize_target(values["target"], ipv6_prefix=prefix)
    except BanError as exc:
        text = str(exc)
        errors["target"] = text[0].upper() + text[1:] + "."
        return None


async def create(request: web.Request) -> web.Response:
    """POST /admin/bans/new: an admin's ban, or a coordinator's request for one."""
    values = _form_values(await request.post())
    if auth.current(request).admin.role != "admin":
        return await _request_ban(request, values)
    errors: dict[str, str] = {}
    _check_common(values, errors)
    prefix = _ipv6_prefix(values, errors)
    duration = LENGTHS.get(values["length"], ("", None))[1]
    if values["length"] == "custom":
        days = int_param(values["days"])
        if days is None or days > MAX_CUSTOM_DAYS:
            errors["days"] = f"Write a whole number of days from 1 to {MAX_CUSTOM_DAYS}."
        else:
            duration = timedelta(days=days)
    permanent = values["permanent"] == "yes"
    if permanent and values["length"] != "ladder":
        errors["permanent"] = (
            "A permanent ban has no length: set the length back to 'The ladder decides' or "
            "untick this box."
        )
    _network(request, values, errors, prefix)
    if errors:
        return _render_form(request, values, errors, status=400)
    service = request.app[SERVICE]
    try:
        ban = await service.moderation.ban(
            values["target"],
            reason=values["reason"],
            actor=actor(request),
            duration=duration,
            permanent=permanent,
            ipv6_prefix=prefix,
        )
    except BanRefused as exc:
        field = "reason" if "reason" in exc.text.lower() else "target"
        return _render_form(request, values, {field: exc.text}, status=400)
    until = "permanently" if ban.ends_at is None else f"until {when(ban.ends_at)}"
    done = f"Banned {ban.network} {until} (offence {ban.offence}). It is in force now."
    raise web.HTTPSeeOther(f"/admin/bans/{ban.id}?" + urlencode({"done": done}))


async def _request_ban(request: web.Request, values: dict[str, str]) -> web.Response:
    """A coordinator's request: checked like a ban, filed as an incident."""
    errors: dict[str, str] = {}
    _check_common(values, errors)
    if values["length"] == "custom":
        errors["length"] = "Choose one of the lengths."
    service = request.app[SERVICE]
    visible = visible_queue_ids(request) or set()
    queue = next((service.queue(n) for n in service.queue_names() if n == values["queue"]), None)
    if queue is None or queue.id not in visible:
        errors["queue"] = "Choose the queue the trouble came through."
    network = _network(request, values, errors, service.moderation.policy.ipv6_prefix)
    if network is not None:
        why = refusal(
            network,
            protected=service.moderation.policy.protected,
            exempt=(),
            by_operator=False,
        )
        if why:
            errors["target"] = why[0].upper() + why[1:] + "."
    if errors or network is None or queue is None:
        return _render_form(request, values, errors, status=400)
    address = values["target"]
    if "/" not in address:
        address = str(canonical_address(address))
    length = LENGTHS[values["length"]][0]
    incident_id = await service.store.add_incident(
        kind="ban-request",
        reporter=actor(request),
        now=service.clock(),
        address=address,
        queue_id=queue.id,
        tags=("ban-request",),
        notes=f"Ban of {network} asked for ({length}): {values['reason']}",
    )
    done = f"Your request is filed as incident #{incident_id} for an admin to review."
    raise web.HTTPSeeOther(f"/admin/incidents/{incident_id}?" + urlencode({"done": done}))


# Ladder position of an address ----------------------------------------------------------


async def lookup(request: web.Request) -> web.Response:
    """GET /admin/bans/lookup?address=: earlier bans, the next offence and its length,
    and the chats and incidents from the same address or network."""
    service = request.app[SERVICE]
    policy = service.moderation.policy
    text = request.query.get("address", "").strip()
    context: dict[str, Any] = {
        "title": "Ladder position of an address",
        "address": text,
        "errors": {},
        "result": None,
        "ladder": str(policy.ladder),
    }
    if not text:
        return render(request, "admin/ban_lookup.html", context)
    try:
        if len(text) > 100:
            raise BanError("that is too long for an address or network")
        network = normalize_target(text, ipv6_prefix=policy.ipv6_prefix)
    except BanError as exc:
        message = str(exc)
        context["errors"] = {"address": message[0].upper() + message[1:] + "."}
        return render(request, "admin/ban_lookup.html", context, status=400)
    now = service.clock()
    previous = [b for b in await service.store.list_bans() if overlapping(network, [b.network])]
    shown = actor_shown(request)
    offence = next_offence(previous, network)
    in_force = [b for b in previous if b.active(now)]
    context["result"] = {
        "network": str(network),
        "offence": offence,
        "length": format_duration(ladder_duration(policy.ladder, offence)),
        "previous": [
            {**ban_view(b, now, shown=shown), "counts": b.lifted_at is None}
            for b in sorted(previous, key=lambda b: b.starts_at, reverse=True)
        ],
        "in_force": [ban_view(b, now, shown=shown) for b in in_force],
        **(await related(request, network)),
    }
    return render(request, "admin/ban_lookup.html", context)


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
    for chat_id, stored in await store.stored_origins():
        mark = closeness(stored)
        if mark and chat_id != exclude_chat:
            chat_marks[chat_id] = mark
    chats = [
        c
        for c in await store.chat_summaries(chat_marks)
        if visible is None or c.queue_id in visible
    ][:RELATED_LIMIT]
    incident_marks: dict[int, str] = {}
    for incident_id, stored in await store.incident_addresses():
        mark = closeness(stored)
        if mark and incident_id != exclude_incident:
            incident_marks[incident_id] = mark
    incidents = [
        i
        for i in await store.incidents_by_ids(incident_marks)
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
    rows, total = await request.app[SERVICE].store.incidents_page(
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
    found = await request.app[SERVICE].store.incident(number) if number else None
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
    chat = await store.chat_summary(incident.chat_id) if incident.chat_id else None
    # A transfer may have moved the chat into another group's queue since the incident
    # was filed: then it is that group's, and not shown here.
    hidden = chat is not None and not may_see_chat(request, chat)
    if hidden:
        chat = None
    is_sealed = incident.explicit
    events: list[Any] = []
    if chat is not None:
        is_sealed = is_sealed or sealed(chat, await store.incidents_for_chat(chat.id))
        events = await store.events_after(chat.id, 0)
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
            + urlencode({"target": row["address"] or "", "reason": incident.notes[:MAX_REASON]}),
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
    r = app.router
    r.add_get("/admin/bans", bans)
    r.add_get("/admin/bans/new", ban_form)
    r.add_post("/admin/bans/new", create)
    r.add_get("/admin/bans/audit", audit)
    r.add_get("/admin/bans/lookup", lookup)
    r.add_get(r"/admin/bans/{ban_id:\d+}", ban_detail)
    r.add_post(r"/admin/bans/{ban_id:\d+}/lift", lift)
    r.add_get("/admin/incidents", incidents)
    r.add_get(r"/admin/incidents/{incident_id:\d+}", incident)
    r.add_get(r"/admin/incidents/{incident_id:\d+}/verbatim", incident_verbatim)
    r.add_post(r"/admin/incidents/{incident_id:\d+}/resolve", resolve)
