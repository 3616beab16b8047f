"""Admin pages: moderation — bans (list, create, lift, the audit log, the ladder position
of an address, with the chats and incidents related to it). Incidents have their pages
in `web.admin.incidents`.

Who may do what. Bans are service-wide: a ban blocks an address on every queue of every
group. So only admins create and lift them; group coordinators see the bans, the audit
log and the ladder look-up, and *ask* for a ban, which files a 'ban-request' incident on
one of their queues for an admin to review (the form says so). Incidents are per queue:
coordinators see and resolve those of their group's queues only. What bans say about
other groups stays theirs: a coordinator sees "an operator of another group" rather than
that operator's address, and no link to a chat of another group.

Every ban goes through `service.moderation`, so it bites at once: open chats from the
network end with the ban message, the widget refuses it; a lift lets it in at once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
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
from component.moderation import BanRefused
from component.store.bans import BAN_FILTERS, BanRow
from web.admin import auth
from web.admin.incidents import Network, related
from web.admin.layout import render
from web.admin.views import (
    PAGE_SIZE,
    int_param,
    may_see_chat,
    page_links,
    page_number,
    path_id,
    visible_queue_ids,
    when,
)
from web.guarded import guarded_router
from web.keys import SERVICE

MAX_REASON = validators.MAX_BAN_REASON
MAX_CUSTOM_DAYS = 3650

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


# Ban list, detail, audit ------------------------------------------------------------------


async def bans(request: web.Request) -> web.Response:
    """GET /admin/bans?show=active|ended|lifted|all"""
    show = request.query.get("show", "active")
    if show not in BAN_FILTERS:
        show = "active"
    page = page_number(request)
    service = request.app[SERVICE]
    now = service.clock()
    rows, total = await service.store.bans.rows(
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
    audit, _ = await service.store.bans.audit_log(row.ban.id, limit=500)
    others = [
        b
        for b in await service.store.bans.that_may_bar(now)
        if b.id != row.ban.id and b.network == row.ban.network and b.active(now)
    ]
    # Bans are service-wide, the chat a ban came from is not: link it only for those who
    # may open it.
    chat = await service.store.transcripts.summary(row.chat_id) if row.chat_id else None
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
    row = await request.app[SERVICE].store.bans.row(path_id(request, "ban_id"))
    if row is None:
        raise web.HTTPNotFound(text="Not found.")
    return await _ban_page(request, row)


async def lift(request: web.Request) -> web.Response:
    """POST /admin/bans/{id}/lift: lift every active ban on exactly this network, with
    the reason recorded in the audit trail."""
    auth.require_admin(request)
    service = request.app[SERVICE]
    row = await service.store.bans.row(path_id(request, "ban_id"))
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
    rows, total = await service.store.bans.audit_log(
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
    incident_id = await service.store.incidents.add(
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
    previous = [b for b in await service.store.bans.all() if overlapping(network, [b.network])]
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


def add_routes(app: web.Application) -> None:
    """Register this module's pages."""
    r = guarded_router(app)
    r.add_get("/admin/bans", bans)
    r.add_get("/admin/bans/new", ban_form)
    r.add_post("/admin/bans/new", create)
    r.add_get("/admin/bans/audit", audit)
    r.add_get("/admin/bans/lookup", lookup)
    r.add_get(r"/admin/bans/{ban_id:\d+}", ban_detail)
    r.add_post(r"/admin/bans/{ban_id:\d+}/lift", lift)
