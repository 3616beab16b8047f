"""Admin pages: operators, their queues and on-call duty. An admin manages everyone; a
coordinator manages the operators of their group's queues, and only those memberships:
an operator whom another group shares keeps their name and max chats (see
`SHARED_OPERATOR_NOTE`)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from component.core.models import Operator, Queue
from component.directory import DirectoryError, OperatorChange
from web.admin.forms import (
    Form,
    directory_of,
    done,
    is_admin,
    manages,
    operator_of,
    posted,
    posted_list,
    service_of,
    store_of,
    visible_queues,
)
from web.admin.layout import render
from web.guarded import guarded_router

SHARED_OPERATOR_NOTE = (
    "They also serve another group: only an admin can change their name and max chats."
)
_OPERATOR_FIELDS = ("jid", "name", "max_chats")


async def operators_page(request: web.Request) -> web.Response:
    """GET /admin/operators."""
    return await _operators_list(request, Form("new-operator", {"max_chats": "3"}))


async def _operators_list(request: web.Request, form: Form, status: int = 200) -> web.Response:
    service = service_of(request)
    store = store_of(request)
    queues = await visible_queues(request)
    by_id = {q.id: q for q in queues}
    assignments = await store.operators.assignments()
    rows = []
    for op in await store.operators.all():
        mine = [a for a in assignments if a.operator_id == op.id and a.queue_id in by_id]
        if not mine and not is_admin(request):
            continue
        rows.append(
            {
                "op": op,
                "queues": [(by_id[a.queue_id], a.on_call, a.subscription) for a in mine],
                "presence": service.presence_of(op.jid).value,
                "active": service.active_chats(op.jid),
            }
        )
    return render(
        request,
        "admin/operators.html",
        {"title": "Operators", "rows": rows, "queues": queues, "form": form},
        status=status,
    )


async def _memberships(
    request: web.Request, form: Form, queues: list[Queue]
) -> tuple[tuple[str, ...], frozenset[str]]:
    """The queue checkboxes (`queue`) and on-call ticks (`on_call`). A queue this admin
    may not manage is a 404, as if asked for by URL."""
    names = {q.name for q in queues}
    chosen = await posted_list(request, "queue")
    on_call = set(await posted_list(request, "on_call"))
    form.values["queue"] = chosen
    form.values["on_call"] = sorted(on_call)
    if any(name not in names for name in [*chosen, *on_call]):
        raise web.HTTPNotFound(text="Not found.")
    return tuple(chosen), frozenset(on_call)


async def add_operator(request: web.Request) -> web.Response:
    """POST /admin/operators: JID, display name, max chats, queues and on-call."""
    store = store_of(request)
    directory = directory_of(request)
    queues = await visible_queues(request)
    form = await posted(request, "new-operator", _OPERATOR_FIELDS)
    chosen, on_call = await _memberships(request, form, queues)
    change = OperatorChange(
        jid=form["jid"],
        queues=chosen,
        name=form["name"] if form["name"].strip() else None,
        max_chats=form["max_chats"],
        on_call=on_call,
        exclusive=True,
        new=True,
    )
    try:
        op = await directory.save_operator(change, queues)
    except DirectoryError as exc:
        form.refused(exc)
        # Say where the existing operator can be changed, as far as this admin may know.
        if "jid" in form.errors and "already an operator" in form.errors["jid"]:
            existing = await store.operators.by_jid(directory.operator_jid(form["jid"]))
            mine = existing is not None and await manages(request, existing.id, queues)
            form.errors["jid"] = (
                f"{existing.jid} is already an operator: change their queues on their page."
                if existing is not None and mine
                else f"{form['jid'].strip()} is already an operator of another group; ask an"
                " admin to add them to your queues."
            )
        return await _operators_list(request, form, status=400)
    raise done(f"/admin/operators/{op.id}", f"Operator {op.jid} added.")


async def operator_page(request: web.Request) -> web.Response:
    """GET /admin/operators/{operator}."""
    op, queues = await operator_of(request)
    return await _operator_view(request, op, queues)


async def _operator_view(
    request: web.Request,
    op: Operator,
    queues: list[Queue],
    forms: Mapping[str, Form] | None = None,
    status: int = 200,
) -> web.Response:
    service = service_of(request)
    forms = dict(forms or {})
    ids = {q.id for q in queues}
    mine = [a for a in await store_of(request).operators.assignments() if a.operator_id == op.id]
    form = forms.get("operator") or Form(
        "operator",
        {
            "name": op.name,
            "max_chats": str(op.max_chats),
            "queue": [q.name for q in queues if any(a.queue_id == q.id for a in mine)],
            "on_call": [
                q.name for q in queues if any(a.queue_id == q.id and a.on_call for a in mine)
            ],
        },
    )
    subscriptions = {q.name: a.subscription for q in queues for a in mine if a.queue_id == q.id}
    others = sum(1 for a in mine if a.queue_id not in ids)
    return render(
        request,
        "admin/operator_edit.html",
        {
            "title": f"Operator {op.name}",
            "op": op,
            "presence": service.presence_of(op.jid).value,
            "active": service.active_chats(op.jid),
            "queues": queues,
            "subscriptions": subscriptions,
            "others": others,
            "locked": _locked(request, others),
            "locked_note": SHARED_OPERATOR_NOTE,
            "form": form,
            "delete_form": forms.get("delete") or Form("delete"),
        },
        status=status,
    )


def _locked(request: web.Request, other_queues: int) -> bool:
    """Whether this admin may not change the operator's own settings (name, max chats):
    a coordinator, for an operator who is also in `other_queues` queues of other groups."""
    return other_queues > 0 and not is_admin(request)


async def update_operator(request: web.Request) -> web.Response:
    """POST /admin/operators/{operator}: name, max chats, queues, on-call. A coordinator's
    changes leave the operator's other groups' queues as they are, and may not touch the
    name or max chats of an operator whom another group shares (those are that group's
    too); only the coordinator's own queues' memberships are theirs to change then."""
    op, queues = await operator_of(request)
    form = await posted(request, "operator", ("name", "max_chats"))
    chosen, on_call = await _memberships(request, form, queues)
    ids = {q.id for q in queues}
    others = sum(
        1
        for a in await store_of(request).operators.assignments()
        if a.operator_id == op.id and a.queue_id not in ids
    )
    if _locked(request, others):
        if form["name"].strip() != op.name.strip():
            form.fail("name", SHARED_OPERATOR_NOTE)
        if form["max_chats"].strip() != str(op.max_chats):
            form.fail("max_chats", SHARED_OPERATOR_NOTE)
    change = OperatorChange(
        jid=op.jid,
        queues=chosen,
        name=form["name"],
        max_chats=form["max_chats"],
        on_call=on_call,
        exclusive=True,
    )
    if form.ok:
        try:
            await directory_of(request).save_operator(change, queues)
        except DirectoryError as exc:
            form.refused(exc)
    if not form.ok:
        return await _operator_view(request, op, queues, {"operator": form}, status=400)
    raise done(f"/admin/operators/{op.id}", "Operator saved.")


async def delete_operator(request: web.Request) -> web.Response:
    """POST /admin/operators/{operator}/delete. An admin removes the operator; a
    coordinator removes them from their group's queues (other groups keep them)."""
    op, queues = await operator_of(request)
    form = await posted(request, "delete", ("confirm",))
    if not form["confirm"]:
        form.fail("confirm", "Tick the box to confirm that the operator should be removed.")
        return await _operator_view(request, op, queues, {"delete": form}, status=400)
    await directory_of(request).remove_operator(op, None if is_admin(request) else queues)
    raise done("/admin/operators", f"Operator {op.jid} removed.")


def add_routes(app: web.Application) -> None:
    """Register the operator pages."""
    r = guarded_router(app)
    r.add_get("/admin/operators", operators_page)
    r.add_post("/admin/operators", add_operator)
    r.add_get("/admin/operators/{operator}", operator_page)
    r.add_post("/admin/operators/{operator}", update_operator)
    r.add_post("/admin/operators/{operator}/delete", delete_operator)
