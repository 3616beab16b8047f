"""What the directory pages (groups, queues, operators, canned messages) share: the form
object that keeps typed values and errors by field, reading a POST, the redirect after a
change, the directory layer of the running service, and lookups with the coordinator
check.

Plain server-rendered forms (they work without JavaScript). Every change goes through
`component.directory.Directory`, which validates it, writes it and refreshes the running
service. A successful POST redirects (303) back with `?done=...`; bad input re-renders
the page with status 400, the values as typed, and the error next to the field.

Coordinators see and change only their own group: another group's group, queue or
operator is a 404 whether asked for by GET or POST, and the admin-only actions (creating
and deleting groups, global canned messages) are a 403.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from component.core.models import Group, Operator, Queue
from component.directory import Directory, DirectoryError
from component.service import DeskService
from component.store import Store
from web.admin import auth
from web.keys import SERVICE


class Form:
    """One form's values (as typed, for redisplay) and its errors by field name. `prefix`
    makes the ids of its fields unique on a page with several forms."""

    def __init__(self, prefix: str, values: Mapping[str, Any] | None = None) -> None:
        self.prefix = prefix
        self.values: dict[str, Any] = dict(values or {})
        self.errors: dict[str, str] = {}

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name, "")

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    def refused(self, error: DirectoryError, fields: Mapping[str, str] | None = None) -> None:
        """Show each field the directory refused next to that field; `fields` renames
        the directory's field names to this form's where they differ."""
        rename = dict(fields or {})
        for name, message in error.problems:
            self.fail(rename.get(name, name), message)

    @property
    def ok(self) -> bool:
        return not self.errors


async def posted(request: web.Request, prefix: str, names: Iterable[str]) -> Form:
    """The POSTed values of `names` (missing or non-text: empty) as a form."""
    data = await request.post()
    values: dict[str, Any] = {}
    for name in names:
        value = data.get(name)
        values[name] = value if isinstance(value, str) else ""
    return Form(prefix, values)


async def posted_list(request: web.Request, name: str) -> list[str]:
    data = await request.post()
    return [v for v in data.getall(name, []) if isinstance(v, str)]


def done(path: str, message: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?{urlencode({'done': message})}")


def service_of(request: web.Request) -> DeskService:
    return request.app[SERVICE]


def store_of(request: web.Request) -> Store:
    return request.app[SERVICE].store


def directory_of(request: web.Request) -> Directory:
    """The directory of the running service: every change of these pages goes here."""
    return Directory.for_service(request.app[SERVICE])


def is_admin(request: web.Request) -> bool:
    return auth.current(request).admin.role == "admin"


def id_of(request: web.Request, key: str = "id") -> int:
    """The numeric id in the URL; anything else is a 404. Called by the handlers of
    /admin/.../{id} routes. Only plain digits, well within SQLite's integer range: a longer
    number used to reach the database and fail there (a 500 for the request)."""
    text = request.match_info[key]
    if not (0 < len(text) <= 18 and text.isascii() and text.isdigit() and int(text) > 0):
        raise web.HTTPNotFound(text="Not found.")
    return int(text)


# Lookups with the coordinator check ---------------------------------------------------------


async def group_of(request: web.Request) -> Group:
    group = await store_of(request).groups.by_name(request.match_info["group"])
    if group is None:
        raise web.HTTPNotFound(text="Not found.")
    auth.check_group(request, group.id)
    return group


async def queue_of(request: web.Request) -> Queue:
    queue = await store_of(request).queues.by_name(request.match_info["queue"])
    if queue is None:
        raise web.HTTPNotFound(text="Not found.")
    auth.check_group(request, queue.group_id)
    return queue


async def visible_queues(request: web.Request) -> list[Queue]:
    groups = auth.visible_groups(request)
    return [
        q for q in await store_of(request).queues.all() if groups is None or q.group_id in groups
    ]


async def visible_groups(request: web.Request) -> list[Group]:
    groups = auth.visible_groups(request)
    return [g for g in await store_of(request).groups.all() if groups is None or g.id in groups]


async def manages(request: web.Request, operator_id: int, queues: list[Queue]) -> bool:
    """Whether this admin manages the operator: an admin always, a coordinator when the
    operator is in one of `queues` (theirs)."""
    if is_admin(request):
        return True
    ids = {q.id for q in queues}
    return any(
        a.operator_id == operator_id and a.queue_id in ids
        for a in await store_of(request).operators.assignments()
    )


async def operator_of(request: web.Request) -> tuple[Operator, list[Queue]]:
    """The operator of the URL and the queues this admin may manage; 404 for an operator
    who is in none of a coordinator's queues."""
    op = await store_of(request).operators.by_id(id_of(request, "operator"))
    if op is None:
        raise web.HTTPNotFound(text="Not found.")
    queues = await visible_queues(request)
    if not await manages(request, op.id, queues):
        raise web.HTTPNotFound(text="Not found.")
    return op, queues
