"""Admin pages: queues, with their settings, operators, canned messages and embed code.
A coordinator adds and changes queues of their own group only (see `web.admin.forms`)."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import available_timezones

from aiohttp import web

from component.core.escalation import RuleError, parse_rule
from component.core.escalation import describe as describe_rule
from component.core.hours import HoursError, describe, parse_hours
from component.core.models import Queue, RoutingMode
from component.directory import DirectoryError, NewQueue, QueueChange, Scope
from web.admin import auth, canned
from web.admin.embed import direct_link, embed_snippet
from web.admin.forms import (
    Form,
    directory_of,
    done,
    id_of,
    posted,
    queue_of,
    service_of,
    store_of,
    visible_groups,
    visible_queues,
)
from web.admin.layout import render
from web.guarded import guarded_router
from web.keys import CONFIG
from web.security import frame_ancestors

PRIVACY_MODES = (
    ("full", "Full: keep patrons' addresses"),
    ("network", "Network: keep only the /24 (IPv4) or /48 (IPv6)"),
    ("none", "None: keep no addresses"),
)
ROUTING_MODES = (
    (RoutingMode.RING_ALL.value, "Ring all: offer to every free operator at once"),
    (RoutingMode.ROUND_ROBIN.value, "Round robin: one operator at a time"),
)
# The backup choice that keeps another group's queue a coordinator cannot see (never a
# valid queue name).
KEEP_BACKUP = "(keep)"
_TIMEZONES = sorted(available_timezones())


def _hours_text(queue: Queue) -> str:
    try:
        return describe(parse_hours(queue.hours, queue.timezone, queue.closed_days))
    except HoursError as exc:
        return f"Unreadable hours ({exc}): treated as always open"


async def queues_page(request: web.Request) -> web.Response:
    """GET /admin/queues."""
    return await _queues_list(request, Form("new-queue"))


async def _queues_list(request: web.Request, form: Form, status: int = 200) -> web.Response:
    service = service_of(request)
    groups = await visible_groups(request)
    names = {g.id: g for g in await store_of(request).groups.all()}
    rows = []
    for q in await visible_queues(request):
        info = service.queue_info(q.name) if service.is_queue(q.name) else None
        rows.append(
            {
                "queue": q,
                "group": names.get(q.group_id),
                "hours": _hours_text(q),
                "status": info.status.value if info else "offline",
                "operators": len(service.loads(q)) if service.is_queue(q.name) else 0,
            }
        )
    if not form["group"] and len(groups) == 1:
        form.values["group"] = groups[0].name
    return render(
        request,
        "admin/queues.html",
        {
            "title": "Queues",
            "rows": rows,
            "groups": groups,
            "group_options": [("", "Choose a group")]
            + [(g.name, f"{g.title} ({g.name})") for g in groups],
            "domain": service.domain,
            "form": form,
        },
        status=status,
    )


async def create_queue(request: web.Request) -> web.Response:
    """POST /admin/queues: name, group and title. A coordinator adds to their own group."""
    form = await posted(request, "new-queue", ("name", "group", "title"))
    group = await store_of(request).groups.by_name(form["group"]) if form["group"] else None
    if group is not None:
        auth.check_group(request, group.id)
    try:
        queue = await directory_of(request).add_queue(
            NewQueue(form["name"], form["group"], form["title"]), auth.visible_groups(request)
        )
    except DirectoryError as exc:
        form.refused(exc)
        return await _queues_list(request, form, status=400)
    raise done(f"/admin/queues/{queue.name}", f"Queue {queue.name} added.")


def _queue_settings_form(queue: Queue, names: Mapping[int, str], visible: set[int]) -> Form:
    backup = ""
    if queue.backup_queue_id is not None:
        hidden = queue.backup_queue_id not in visible
        backup = KEEP_BACKUP if hidden else names.get(queue.backup_queue_id, "")
    return Form(
        "queue",
        {
            "title": queue.title,
            "routing": queue.routing.value,
            "offer_timeout": f"{queue.offer_timeout:g}",
            "rollover_after": f"{queue.rollover_after:g}" if queue.rollover_after else "",
            "backup": backup,
            "hours": queue.hours,
            "timezone": queue.timezone,
            "closed_days": ", ".join(queue.closed_days),
            "escalation": queue.escalation or "",
            "followup_email": queue.followup_email or "",
            "referral_email": queue.referral_email or "",
            "max_wait": f"{queue.max_wait:g}" if queue.max_wait else "",
            "privacy": queue.privacy,
            "retention_days": str(queue.retention_days or ""),
            "purge_transcripts": queue.purge_transcripts,
            "feedback": queue.feedback,
            "widget_color": queue.widget_color,
            "widget_logo": queue.widget_logo or "",
            "greeting": queue.greeting or "",
            "text_available": queue.text_available or "",
            "text_away": queue.text_away or "",
            "text_offline": queue.text_offline or "",
            "allowed_origins": queue.allowed_origins,
        },
    )


QUEUE_FIELDS = (
    "title",
    "routing",
    "offer_timeout",
    "rollover_after",
    "backup",
    "hours",
    "timezone",
    "closed_days",
    "escalation",
    "followup_email",
    "referral_email",
    "max_wait",
    "privacy",
    "retention_days",
    "purge_transcripts",
    "feedback",
    "widget_color",
    "widget_logo",
    "greeting",
    "text_available",
    "text_away",
    "text_offline",
    "allowed_origins",
)


async def queue_page(request: web.Request) -> web.Response:
    """GET /admin/queues/{queue}; `?preview=1` adds the live widget preview."""
    return await queue_view(request, await queue_of(request))


async def queue_view(
    request: web.Request,
    queue: Queue,
    forms: Mapping[str, Form] | None = None,
    status: int = 200,
) -> web.Response:
    service = service_of(request)
    store = store_of(request)
    forms = dict(forms or {})
    all_queues = await store.queues.all()
    names = {q.id: q.name for q in all_queues}
    visible = await visible_queues(request)
    visible_ids = {q.id for q in visible}
    group = await store.groups.by_id(queue.group_id)
    settings = forms.get("queue") or _queue_settings_form(queue, names, visible_ids)
    backups = [("", "None")]
    if settings["backup"] == KEEP_BACKUP:
        backups.append((KEEP_BACKUP, "(unchanged: another group's queue, set by an admin)"))
    backups += [(q.name, f"{q.title} ({q.name})") for q in visible if q.id != queue.id]
    operators = []
    on_call = {
        (a.queue_id, a.operator_id) for a in await store.operators.assignments() if a.on_call
    }
    members = {a.operator_id for a in await store.operators.assignments() if a.queue_id == queue.id}
    for op in await store.operators.all():
        if op.id in members:
            operators.append(
                {
                    "op": op,
                    "presence": service.presence_of(op.jid).value,
                    "on_call": (queue.id, op.id) in on_call,
                }
            )
    public_url = request.app[CONFIG].web.public_url
    rule = None
    if queue.escalation:
        try:
            rule = describe_rule(parse_rule(queue.escalation))
        except RuleError:
            rule = None
    info = service.queue_info(queue.name) if service.is_queue(queue.name) else None
    effective = await store.canned.for_queue(queue.id, queue.group_id)
    return render(
        request,
        "admin/queue_edit.html",
        {
            "title": f"Queue {queue.title}",
            "queue": queue,
            "group": group,
            "status": info.status.value if info else "offline",
            "settings": settings,
            "routing_modes": ROUTING_MODES,
            "privacy_modes": PRIVACY_MODES,
            "backups": backups,
            "timezones": _TIMEZONES,
            "hours_text": _hours_text(queue),
            "rule_text": rule,
            "operators": operators,
            "effective": effective,
            "canned": canned.canned_forms(await store.canned.rows(queue_id=queue.id), forms),
            "canned_form": forms.get("canned") or Form("canned"),
            "canned_base": f"/admin/queues/{queue.name}/canned",
            "embed": embed_snippet(public_url, queue),
            "direct_link": direct_link(public_url, queue),
            "preview": request.query.get("preview") == "1",
            "preview_allowed": frame_ancestors(queue.allowed_origins) != "'none'",
            "delete_form": forms.get("delete") or Form("delete"),
            "staffing_trail": [
                {"when": f"{n.created_at:%Y-%m-%d %H:%M} UTC", "n": n}
                for n in await store.notices.staffing_for_queue(queue.id)
            ],
        },
        status=status,
    )


async def update_queue(request: web.Request) -> web.Response:
    """POST /admin/queues/{queue}: every setting at once."""
    queue = await queue_of(request)
    form = await posted(request, "queue", QUEUE_FIELDS)
    form.values["purge_transcripts"] = bool(form["purge_transcripts"])
    form.values["feedback"] = bool(form["feedback"])
    backup: str | None = form["backup"]
    if backup == KEEP_BACKUP:
        if queue.backup_queue_id is None:
            form.fail("backup", "Choose a backup queue from the list.")
        backup = None
    change = QueueChange(
        backup=backup,
        purge_transcripts=form["purge_transcripts"],
        feedback=form["feedback"],
        title=form["title"],
        routing=form["routing"],
        offer_timeout=form["offer_timeout"],
        rollover_after=form["rollover_after"],
        hours=form["hours"],
        timezone=form["timezone"],
        closed_days=form["closed_days"],
        escalation=form["escalation"],
        followup_email=form["followup_email"],
        referral_email=form["referral_email"],
        max_wait=form["max_wait"],
        privacy=form["privacy"],
        retention_days=form["retention_days"],
        widget_color=form["widget_color"],
        widget_logo=form["widget_logo"],
        greeting=form["greeting"],
        text_available=form["text_available"],
        text_away=form["text_away"],
        text_offline=form["text_offline"],
        allowed_origins=form["allowed_origins"],
    )
    try:
        await directory_of(request).change_queue(queue, change, auth.visible_groups(request))
    except DirectoryError as exc:
        form.refused(exc)
    if not form.ok:
        return await queue_view(request, queue, {"queue": form}, status=400)
    raise done(f"/admin/queues/{queue.name}", "Queue settings saved.")


async def delete_queue(request: web.Request) -> web.Response:
    """POST /admin/queues/{queue}/delete: only a queue nobody has used."""
    queue = await queue_of(request)
    form = await posted(request, "delete", ("confirm",))
    if not form["confirm"]:
        form.fail("confirm", "Tick the box to confirm that the queue should be deleted.")
        return await queue_view(request, queue, {"delete": form}, status=400)
    try:
        await directory_of(request).delete_queue(queue)
    except DirectoryError as exc:
        form.refused(exc)
        return await queue_view(request, queue, {"delete": form}, status=400)
    raise done("/admin/queues", f"Queue {queue.name} deleted.")


async def remove_from_queue(request: web.Request) -> web.Response:
    """POST /admin/queues/{queue}/operators/{operator}/remove: the operator leaves this
    queue (and keeps their others)."""
    queue = await queue_of(request)
    op = await store_of(request).operators.by_id(id_of(request, "operator"))
    if op is None or not await directory_of(request).leave_queue(queue, op):
        raise web.HTTPNotFound(text="Not found.")
    raise done(f"/admin/queues/{queue.name}", f"{op.name} no longer answers {queue.name}.")


async def _canned_place(request: web.Request) -> tuple[Scope, str, canned.Rerender]:
    queue = await queue_of(request)

    async def rerender(forms: Mapping[str, Form]) -> web.Response:
        return await queue_view(request, queue, forms, status=400)

    return Scope(queue_id=queue.id), f"/admin/queues/{queue.name}", rerender


def add_routes(app: web.Application) -> None:
    """Register the queue pages."""
    r = guarded_router(app)
    r.add_get("/admin/queues", queues_page)
    r.add_post("/admin/queues", create_queue)
    r.add_get("/admin/queues/{queue}", queue_page)
    r.add_post("/admin/queues/{queue}", update_queue)
    r.add_post("/admin/queues/{queue}/delete", delete_queue)
    r.add_post("/admin/queues/{queue}/operators/{operator}/remove", remove_from_queue)
    canned.add_scoped_routes(app, "/admin/queues/{queue}/canned", _canned_place)
