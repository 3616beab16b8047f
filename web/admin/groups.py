"""Admin pages: partner groups, with their settings, local resource links, exempt
networks and canned messages. Creating and deleting groups is for admins; a coordinator
sees and changes only their own group (see `web.admin.forms`)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from component.core.errors import InvalidInput
from component.core.exempt_contact import INCIDENT_WINDOW
from component.core.models import Group
from component.directory import DirectoryError, GroupChange, NewExempt, NewGroup, NewLink, Scope
from component.moderation import RateLimited
from web.admin import auth, canned
from web.admin.forms import (
    Form,
    directory_of,
    done,
    group_of,
    id_of,
    posted,
    service_of,
    store_of,
    visible_groups,
)
from web.admin.layout import render
from web.guarded import guarded_router


async def groups_page(request: web.Request) -> web.Response:
    """GET /admin/groups."""
    return await _groups_list(request, Form("new-group"))


async def _groups_list(request: web.Request, form: Form, status: int = 200) -> web.Response:
    queues = await store_of(request).queues.all()
    rows = [
        {"group": g, "queues": [q for q in queues if q.group_id == g.id]}
        for g in await visible_groups(request)
    ]
    return render(
        request,
        "admin/groups.html",
        {"title": "Groups", "rows": rows, "form": form},
        status=status,
    )


async def create_group(request: web.Request) -> web.Response:
    """POST /admin/groups (admins only)."""
    auth.require_admin(request)
    form = await posted(request, "new-group", ("name", "title"))
    try:
        group = await directory_of(request).add_group(NewGroup(form["name"], form["title"]))
    except DirectoryError as exc:
        form.refused(exc)
        return await _groups_list(request, form, status=400)
    raise done(f"/admin/groups/{group.name}", f"Group {group.name} added.")


def _group_settings_form(group: Group) -> Form:
    return Form(
        "group",
        {
            "title": group.title,
            "operators_may_ban": group.operators_may_ban,
            "appeal_email": group.appeal_email or "",
            "coordinator_emails": ", ".join(group.coordinator_emails),
            "referral_domains": ", ".join(group.referral_domains),
        },
    )


async def group_page(request: web.Request) -> web.Response:
    """GET /admin/groups/{group}."""
    return await group_view(request, await group_of(request))


async def group_view(
    request: web.Request,
    group: Group,
    forms: Mapping[str, Form] | None = None,
    status: int = 200,
) -> web.Response:
    """The group's page; `forms` are the ones that failed (shown as typed)."""
    store = store_of(request)
    forms = dict(forms or {})
    queues = [q for q in await store.queues.all() if q.group_id == group.id]
    rows = await store.canned.rows(group_id=group.id)
    drafts = await store.exempt_contacts.drafts(group.id)
    draft_forms = {
        d.id: forms.get(f"draft-{d.id}") or Form(f"draft-{d.id}", {"body": d.body}) for d in drafts
    }
    return render(
        request,
        "admin/groups_edit.html",
        {
            "title": f"Group {group.title}",
            "group": group,
            "queues": queues,
            "links": await store.links.rows(group.id),
            "exempt": await store.exempt.rows(group.id),
            "settings": forms.get("group") or _group_settings_form(group),
            "link_form": forms.get("link") or Form("link"),
            "exempt_form": forms.get("exempt") or Form("exempt"),
            "delete_form": forms.get("delete") or Form("delete"),
            "canned": canned.canned_forms(rows, forms),
            "canned_form": forms.get("canned") or Form("canned"),
            "canned_base": f"/admin/groups/{group.name}/canned",
            "drafts": drafts,
            "draft_forms": draft_forms,
            "repeated": service_of(request).moderation.policy.repeated_incidents,
            "window_days": INCIDENT_WINDOW.days,
        },
        status=status,
    )


async def update_group(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}: title, operators may ban, appeal address,
    coordinators, referral domains."""
    group = await group_of(request)
    fields = (
        "title",
        "operators_may_ban",
        "appeal_email",
        "coordinator_emails",
        "referral_domains",
    )
    form = await posted(request, "group", fields)
    form.values["operators_may_ban"] = bool(form["operators_may_ban"])
    change = GroupChange(
        title=form["title"],
        operators_may_ban=form["operators_may_ban"],
        appeal_email=form["appeal_email"],
        coordinator_emails=form["coordinator_emails"],
        referral_domains=form["referral_domains"],
    )
    try:
        await directory_of(request).change_group(group, change)
    except DirectoryError as exc:
        form.refused(exc)
        return await group_view(request, group, {"group": form}, status=400)
    raise done(f"/admin/groups/{group.name}", "Group settings saved.")


async def delete_group(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/delete (admins only)."""
    auth.require_admin(request)
    group = await group_of(request)
    form = await posted(request, "delete", ("confirm",))
    if not form["confirm"]:
        form.fail("confirm", "Tick the box to confirm that the group should be deleted.")
        return await group_view(request, group, {"delete": form}, status=400)
    try:
        await directory_of(request).delete_group(group)
    except DirectoryError as exc:
        form.refused(exc)
        return await group_view(request, group, {"delete": form}, status=400)
    raise done("/admin/groups", f"Group {group.name} deleted.")


async def add_link(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/links: a local resource link (`!links`)."""
    group = await group_of(request)
    form = await posted(request, "link", ("title", "url"))
    try:
        title = await directory_of(request).add_link(group, NewLink(form["title"], form["url"]))
    except DirectoryError as exc:
        form.refused(exc)
        return await group_view(request, group, {"link": form}, status=400)
    raise done(f"/admin/groups/{group.name}", f"Link {title} added.")


async def delete_link(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/links/{id}/delete."""
    group = await group_of(request)
    if not await directory_of(request).delete_link(group, id_of(request)):
        raise web.HTTPNotFound(text="Not found.")
    raise done(f"/admin/groups/{group.name}", "Link removed.")


async def add_exempt(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/exempt: a network operators cannot ban."""
    group = await group_of(request)
    form = await posted(request, "exempt", ("network", "note", "contact_email"))
    try:
        network = await directory_of(request).add_exempt(
            group, NewExempt(form["network"], form["note"], form["contact_email"])
        )
    except DirectoryError as exc:
        form.refused(exc)
        return await group_view(request, group, {"exempt": form}, status=400)
    raise done(f"/admin/groups/{group.name}", f"{network} is exempt from bans.")


async def send_contact_draft(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/contact-drafts/{id}/send: send the drafted message to
    an exempt network's contact (as edited in the form), through the mail outbox."""
    group = await group_of(request)
    draft_id = id_of(request)
    form = await posted(request, f"draft-{draft_id}", ("body",))
    actor = auth.current(request).admin.username
    try:
        sent = await service_of(request).followup.send_exempt_contact(
            group, draft_id, form["body"], actor
        )
    except InvalidInput as exc:
        if exc.code == "no_draft":
            raise web.HTTPNotFound(text="Not found.") from None
        form.fail("body", exc.text)
        return await group_view(request, group, {form.prefix: form}, status=400)
    except RateLimited as exc:
        form.fail("body", exc.text)
        return await group_view(request, group, {form.prefix: form}, status=429)
    raise done(f"/admin/groups/{group.name}", f"The message to {sent.contact_email} is on its way.")


async def delete_exempt(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/exempt/{id}/delete."""
    group = await group_of(request)
    if not await directory_of(request).delete_exempt(group, exempt_id=id_of(request)):
        raise web.HTTPNotFound(text="Not found.")
    raise done(f"/admin/groups/{group.name}", "Exemption removed.")


async def _canned_place(request: web.Request) -> tuple[Scope, str, canned.Rerender]:
    group = await group_of(request)

    async def rerender(forms: Mapping[str, Form]) -> web.Response:
        return await group_view(request, group, forms, status=400)

    return Scope(group_id=group.id), f"/admin/groups/{group.name}", rerender


def add_routes(app: web.Application) -> None:
    """Register the group pages."""
    r = guarded_router(app)
    r.add_get("/admin/groups", groups_page)
    r.add_post("/admin/groups", create_group)
    r.add_get("/admin/groups/{group}", group_page)
    r.add_post("/admin/groups/{group}", update_group)
    r.add_post("/admin/groups/{group}/delete", delete_group)
    r.add_post("/admin/groups/{group}/links", add_link)
    r.add_post("/admin/groups/{group}/links/{id}/delete", delete_link)
    r.add_post("/admin/groups/{group}/exempt", add_exempt)
    r.add_post("/admin/groups/{group}/exempt/{id}/delete", delete_exempt)
    r.add_post("/admin/groups/{group}/contact-drafts/{id}/send", send_contact_draft)
    canned.add_scoped_routes(app, "/admin/groups/{group}/canned", _canned_place)
