"""Admin pages: canned messages at every scope. The global ones have their own page
(admins only); a group's and a queue's are edited on that group's or queue's page, whose
modules register their routes with `add_scoped_routes`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from component.directory import CannedChange, DirectoryError, Scope
from component.store.canned import CannedRow
from web.admin import auth
from web.admin.forms import Form, directory_of, done, id_of, posted, store_of
from web.admin.layout import render
from web.guarded import guarded_router

# Re-renders the page a canned message lives on, with these forms, as a 400.
Rerender = Callable[[Mapping[str, Form]], Awaitable[web.Response]]
# The scope, the page to go back to and how to re-render it, for one request.
Place = Callable[[web.Request], Awaitable[tuple[Scope, str, Rerender]]]


def canned_forms(rows: list[CannedRow], forms: Mapping[str, Form]) -> list[tuple[CannedRow, Form]]:
    """Each stored message with its edit form (the failed one keeps what was typed)."""
    return [
        (
            row,
            forms.get(f"canned-{row.id}")
            or Form(f"canned-{row.id}", {"name": row.name, "text": row.text}),
        )
        for row in rows
    ]


async def _add(request: web.Request, scope: Scope, back: str, rerender: Rerender) -> web.Response:
    form = await posted(request, "canned", ("name", "text"))
    try:
        name = await directory_of(request).save_canned(
            scope, CannedChange(form["name"], form["text"])
        )
    except DirectoryError as exc:
        form.refused(exc)
        return await rerender({"canned": form})
    raise done(back, f"Canned message {name} added.")


async def _change(
    request: web.Request, scope: Scope, back: str, rerender: Rerender, *, delete: bool
) -> web.Response:
    row = await store_of(request).canned.row(id_of(request))
    if row is None or (row.group_id, row.queue_id) != (scope.group_id, scope.queue_id):
        raise web.HTTPNotFound(text="Not found.")
    directory = directory_of(request)
    if delete:
        await directory.delete_canned(scope, canned_id=row.id)
        raise done(back, f"Canned message {row.name} deleted.")
    form = await posted(request, f"canned-{row.id}", ("name", "text"))
    try:
        name = await directory.save_canned(
            scope, CannedChange(form["name"], form["text"]), canned_id=row.id
        )
    except DirectoryError as exc:
        form.refused(exc)
        return await rerender({f"canned-{row.id}": form})
    raise done(back, f"Canned message {name} saved.")


def add_scoped_routes(app: web.Application, base: str, place: Place) -> None:
    """Register adding (POST `base`), changing (`base/{id}`) and deleting
    (`base/{id}/delete`) the canned messages at one kind of place (global, a group, a
    queue): `place` finds the scope for a request (and raises the 404 or 403 for one the
    admin may not see)."""

    async def add(request: web.Request) -> web.Response:
        scope, back, rerender = await place(request)
        return await _add(request, scope, back, rerender)

    async def change(request: web.Request) -> web.Response:
        scope, back, rerender = await place(request)
        return await _change(request, scope, back, rerender, delete=False)

    async def delete(request: web.Request) -> web.Response:
        scope, back, rerender = await place(request)
        return await _change(request, scope, back, rerender, delete=True)

    routes = guarded_router(app)
    routes.add_post(base, add)
    routes.add_post(f"{base}/{{id}}", change)
    routes.add_post(f"{base}/{{id}}/delete", delete)


async def global_canned_page(request: web.Request) -> web.Response:
    """GET /admin/canned (admins only): messages every queue can use."""
    auth.require_admin(request)
    return await _global_canned_view(request, {})


async def _global_canned_view(
    request: web.Request, forms: Mapping[str, Form], status: int = 200
) -> web.Response:
    rows = await store_of(request).canned.rows()
    return render(
        request,
        "admin/canned.html",
        {
            "title": "Canned messages",
            "canned": canned_forms(rows, forms),
            "canned_form": forms.get("canned") or Form("canned"),
            "canned_base": "/admin/canned",
        },
        status=status,
    )


async def _global_place(request: web.Request) -> tuple[Scope, str, Rerender]:
    auth.require_admin(request)

    async def rerender(forms: Mapping[str, Form]) -> web.Response:
        return await _global_canned_view(request, forms, status=400)

    return Scope(), "/admin/canned", rerender


def add_routes(app: web.Application) -> None:
    """Register the global canned messages' page (the group and queue modules register
    theirs)."""
    guarded_router(app).add_get("/admin/canned", global_canned_page)
    add_scoped_routes(app, "/admin/canned", _global_place)
