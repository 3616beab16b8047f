"""Admin pages: groups, queues, operators, canned messages and each queue's embed code.

Plain server-rendered forms (they work without JavaScript). Every change goes through the
store, then `service.reload_directory()` (and `moderation.load()` for exempt networks) so
the running component uses it at once: a new queue takes patrons, a new operator gets the
presence subscription request. A successful POST redirects (303) back with `?done=...`;
bad input re-renders the page with status 400, the values as typed, and the error next to
the field.

Coordinators see and change only their own group: another group's group, queue or
operator is a 404 whether asked for by GET or POST, and the admin-only actions (creating
and deleting groups, global canned messages) are a 403.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit
from zoneinfo import available_timezones

from aiohttp import web
from slixmpp.jid import JID, InvalidJID

from component.cli import UsageError, slug
from component.core.emails import validate_address
from component.core.escalation import RuleError, parse_rule
from component.core.escalation import describe as describe_rule
from component.core.hours import HoursError, describe, format_hours, parse_hours
from component.core.models import Group, Operator, Queue, RoutingMode
from component.core.text import TextRejected, clean_title, find_xml_illegal
from component.service import DeskService
from component.store import Store, StoreError
from component.store_directory import CannedRow
from web.admin import auth, render
from web.keys import CONFIG, SERVICE
from web.security import frame_ancestors

T = TypeVar("T")

PRIVACY_MODES = (
    ("full", "Full: keep patrons' addresses"),
    ("network", "Network: keep only the /24 (IPv4) or /48 (IPv6)"),
    ("none", "None: keep no addresses"),
)
ROUTING_MODES = (
    (RoutingMode.RING_ALL.value, "Ring all: offer to every free operator at once"),
    (RoutingMode.ROUND_ROBIN.value, "Round robin: one operator at a time"),
)
MAX_CHATS_LIMIT = 50
# The backup choice that keeps another group's queue a coordinator cannot see (never a
# valid queue name).
KEEP_BACKUP = "(keep)"
_CANNED_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_ORIGIN = re.compile(r"https?://(\*\.)?[a-z0-9.-]+(:[0-9]{1,5})?")
_TIMEZONES = sorted(available_timezones())


# Forms ------------------------------------------------------------------------------------


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

    @property
    def ok(self) -> bool:
        return not self.errors

    def take(self, name: str, parse: Callable[[str], T]) -> T | None:
        """Parse one field; a ValueError becomes that field's error (and None)."""
        try:
            return parse(str(self.values.get(name, "")))
        except ValueError as exc:
            self.fail(name, _sentence(str(exc)))
            return None


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return "This value is not valid."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


async def _posted(request: web.Request, prefix: str, names: Iterable[str]) -> Form:
    data = await request.post()
    values: dict[str, Any] = {}
    for name in names:
        value = data.get(name)
        values[name] = value if isinstance(value, str) else ""
    return Form(prefix, values)


async def _posted_list(request: web.Request, name: str) -> list[str]:
    data = await request.post()
    return [v for v in data.getall(name, []) if isinstance(v, str)]


def _done(path: str, message: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?{urlencode({'done': message})}")


def _service(request: web.Request) -> DeskService:
    return request.app[SERVICE]


def _store(request: web.Request) -> Store:
    return request.app[SERVICE].store


def _is_admin(request: web.Request) -> bool:
    return auth.current(request).admin.role == "admin"


# Field parsers: each returns the value to store or raises ValueError with the reason ----


def _slug(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        text = text.strip()
        if not text:
            raise ValueError(f"Enter a {what} name.")
        try:
            return slug(text, what)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    return parse


def _title(text: str) -> str:
    try:
        return clean_title(text)
    except TextRejected as exc:
        raise ValueError(exc.text) from None


def _optional_title(text: str) -> str | None:
    return _title(text) if text.strip() else None


def _display_name(text: str) -> str:
    name = text.strip()
    if not name:
        raise ValueError("Enter the name patrons see for this operator.")
    if len(name) > 100 or find_xml_illegal(name):
        raise ValueError("The name must be at most 100 printable characters.")
    return name


def _optional_text(limit: int) -> Callable[[str], str | None]:
    def parse(text: str) -> str | None:
        value = text.strip()
        if not value:
            return None
        if len(value) > limit or find_xml_illegal(value):
            raise ValueError(f"Use at most {limit} printable characters.")
        return value

    return parse


def _optional_email(text: str) -> str | None:
    if not text.strip():
        return None
    try:
        return validate_address(text)
    except ValueError as exc:
        message = getattr(exc, "message", str(exc))
        raise ValueError(f"Not a usable email address. {message}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("Enter a number of seconds, e.g. 30.") from None
    if not 0 < value <= 7 * 24 * 3600:
        raise ValueError("Enter a number of seconds greater than 0 (at most a week).")
    return value


def _optional_seconds(text: str) -> float | None:
    return _seconds(text) if text.strip() else None


def _whole(low: int, high: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"Enter a whole number of {what} from {low} to {high}.") from None
        if not low <= value <= high:
            raise ValueError(f"Enter a whole number of {what} from {low} to {high}.")
        return value

    return parse


def _optional_days(text: str) -> int | None:
    return _whole(1, 36500, "days")(text) if text.strip() else None


def _color(text: str) -> str:
    value = text.strip()
    if not _COLOR.fullmatch(value):
        raise ValueError("Write the colour as # and six hex digits, e.g. #0b57d0.")
    return value.lower()


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        parts = urlsplit(value)
        if (
            parts.scheme not in schemes
            or not parts.netloc
            or len(value) > 2000
            or re.search(r"[\s<>\"'\\]", value)
            or find_xml_illegal(value)
        ):
            example = f"{schemes[-1]}://example.org/page"
            raise ValueError(f"Enter a full {' or '.join(schemes)} address, e.g. {example}.")
        return value

    return parse


def _optional_logo(text: str) -> str | None:
    return _url("https")(text) if text.strip() else None


def _origins(text: str) -> str:
    """Partner sites allowed to frame the widget: '*', nothing, or origins."""
    words = text.split()
    if words == ["*"]:
        return "*"
    out = []
    for word in words:
        origin = word.lower().rstrip("/")
        if origin == "*":
            raise ValueError("Use * alone (any site), or list the sites without it.")
        if not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"{word[:100]!r} is not a site origin: write the scheme and host only, "
                "e.g. https://library.example.org (no path)"
            )
        if origin not in out:
            out.append(origin)
    return " ".join(out)


def _canned_name(text: str) -> str:
    name = text.strip().lower()
    if not _CANNED_NAME.fullmatch(name):
        raise ValueError(
            "Use 1-40 lower-case letters, digits, '-' or '_', starting with a letter or "
            "digit (operators type it after !c)."
        )
    return name


def _canned_text(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("Enter the text operators will send.")
    if len(value) > 2000 or find_xml_illegal(value):
        raise ValueError("Use at most 2000 printable characters.")
    return value


def _network(text: str) -> str:
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        raise ValueError(
            f"{text.strip()[:100]!r} is not an IP address or network: write e.g. "
            "192.0.2.15, 192.0.2.0/24 or 2001:db8::/48"
        ) from None


def _operator_jid(domain: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip()
        if not value:
            raise ValueError("Enter the operator's XMPP address, like name@example.org.")
        try:
            jid = JID(value)
        except InvalidJID:
            raise ValueError(
                f"{value[:100]!r} is not a valid XMPP address: write it like name@example.org"
            ) from None
        if not jid.user or jid.resource:
            raise ValueError(
                f"{value[:100]!r} must be a bare XMPP address like name@example.org "
                "(with a name before the @, and no /resource)"
            )
        if jid.domain == domain or jid.domain.endswith("." + domain):
            raise ValueError("That is an address of this service, not an operator's account.")
        return str(jid.bare)

    return parse


# Lookups with the coordinator check ---------------------------------------------------------


async def _group_of(request: web.Request) -> Group:
    group = await _store(request).group_by_name(request.match_info["group"])
    if group is None:
        raise web.HTTPNotFound(text="Not found.")
    auth.check_group(request, group.id)
    return group


async def _queue_of(request: web.Request) -> Queue:
    queue = await _store(request).queue_by_name(request.match_info["queue"])
    if queue is None:
        raise web.HTTPNotFound(text="Not found.")
    auth.check_group(request, queue.group_id)
    return queue


async def _visible_queues(request: web.Request) -> list[Queue]:
    groups = auth.visible_groups(request)
    return [
        q for q in await _store(request).list_queues() if groups is None or q.group_id in groups
    ]


async def _visible_groups(request: web.Request) -> list[Group]:
    groups = auth.visible_groups(request)
    return [g for g in await _store(request).list_groups() if groups is None or g.id in groups]


async def _operator_of(request: web.Request) -> tuple[Operator, list[Queue]]:
    """The operator of the URL and the queues this admin may manage; 404 for an operator
    who is in none of a coordinator's queues."""
    try:
        op_id = int(request.match_info["operator"])
    except ValueError:
        raise web.HTTPNotFound(text="Not found.") from None
    store = _store(request)
    op = await store.operator_by_id(op_id)
    if op is None:
        raise web.HTTPNotFound(text="Not found.")
    queues = await _visible_queues(request)
    if not await _manages(request, op.id, queues):
        raise web.HTTPNotFound(text="Not found.")
    return op, queues


async def _reload(request: web.Request, *, moderation: bool = False) -> None:
    service = _service(request)
    await service.reload_directory()
    if moderation:
        await service.moderation.load()


# Groups -------------------------------------------------------------------------------------


async def groups_page(request: web.Request) -> web.Response:
    """GET /admin/groups."""
    return await _groups_list(request, Form("new-group"))


async def _groups_list(request: web.Request, form: Form, status: int = 200) -> web.Response:
    store = _store(request)
    queues = await store.list_queues()
    rows = [
        {
            "group": g,
            "queues": [q for q in queues if q.group_id == g.id],
        }
        for g in await _visible_groups(request)
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
    store = _store(request)
    form = await _posted(request, "new-group", ("name", "title"))
    name = form.take("name", _slug("group"))
    title = form.take("title", _optional_title)
    if name is not None and await store.group_by_name(name) is not None:
        form.fail("name", f"There is already a group called {name!r}.")
    if not form.ok or name is None:
        return await _groups_list(request, form, status=400)
    try:
        await store.add_group(name, title or name, _service(request).clock())
    except StoreError:
        form.fail("name", f"There is already a group called {name!r}.")
        return await _groups_list(request, form, status=400)
    await _reload(request)
    raise _done(f"/admin/groups/{name}", f"Group {name} added.")


def _group_settings_form(group: Group) -> Form:
    return Form(
        "group",
        {
            "title": group.title,
            "operators_may_ban": group.operators_may_ban,
            "appeal_email": group.appeal_email or "",
        },
    )


async def group_page(request: web.Request) -> web.Response:
    """GET /admin/groups/{group}."""
    return await _group_view(request, await _group_of(request))


async def _group_view(
    request: web.Request,
    group: Group,
    forms: Mapping[str, Form] | None = None,
    status: int = 200,
) -> web.Response:
    store = _store(request)
    forms = dict(forms or {})
    queues = [q for q in await store.list_queues() if q.group_id == group.id]
    canned = await store.canned_rows(group_id=group.id)
    return render(
        request,
        "admin/groups_edit.html",
        {
            "title": f"Group {group.title}",
            "group": group,
            "queues": queues,
            "links": await store.link_rows(group.id),
            "exempt": await store.exempt_rows(group.id),
            "settings": forms.get("group") or _group_settings_form(group),
            "link_form": forms.get("link") or Form("link"),
            "exempt_form": forms.get("exempt") or Form("exempt"),
            "delete_form": forms.get("delete") or Form("delete"),
            "canned": _canned_forms(canned, forms),
            "canned_form": forms.get("canned") or Form("canned"),
            "canned_base": f"/admin/groups/{group.name}/canned",
        },
        status=status,
    )


async def update_group(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}: title, operators may ban, appeal address."""
    group = await _group_of(request)
    form = await _posted(request, "group", ("title", "operators_may_ban", "appeal_email"))
    form.values["operators_may_ban"] = bool(form["operators_may_ban"])
    title = form.take("title", _title)
    appeal = form.take("appeal_email", _optional_email)
    if not form.ok or title is None:
        return await _group_view(request, group, {"group": form}, status=400)
    await _store(request).update_group(
        group.id,
        title=title,
        operators_may_ban=bool(form["operators_may_ban"]),
        appeal_email=appeal,
    )
    await _reload(request)
    raise _done(f"/admin/groups/{group.name}", "Group settings saved.")


async def delete_group(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/delete (admins only)."""
    auth.require_admin(request)
    group = await _group_of(request)
    form = await _posted(request, "delete", ("confirm",))
    if not form["confirm"]:
        form.fail("confirm", "Tick the box to confirm that the group should be deleted.")
        return await _group_view(request, group, {"delete": form}, status=400)
    try:
        await _store(request).delete_group(group.id)
    except StoreError as exc:
        form.fail("confirm", _sentence(f"The group cannot be deleted: {exc}"))
        return await _group_view(request, group, {"delete": form}, status=400)
    await _reload(request, moderation=True)
    raise _done("/admin/groups", f"Group {group.name} deleted.")


async def add_link(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/links: a local resource link (`!links`)."""
    group = await _group_of(request)
    form = await _posted(request, "link", ("title", "url"))
    title = form.take("title", _title)
    url = form.take("url", _url("http", "https"))
    if not form.ok or title is None or url is None:
        return await _group_view(request, group, {"link": form}, status=400)
    await _store(request).add_link(group.id, title, url)
    await _reload(request)
    raise _done(f"/admin/groups/{group.name}", f"Link {title} added.")


async def delete_link(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/links/{id}/delete."""
    group = await _group_of(request)
    if not await _store(request).delete_link(group.id, _id(request)):
        raise web.HTTPNotFound(text="Not found.")
    await _reload(request)
    raise _done(f"/admin/groups/{group.name}", "Link removed.")


async def add_exempt(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/exempt: a network operators cannot ban."""
    group = await _group_of(request)
    form = await _posted(request, "exempt", ("network", "note"))
    network = form.take("network", _network)
    note = form.take("note", _optional_text(200))
    if not form.ok or network is None:
        return await _group_view(request, group, {"exempt": form}, status=400)
    await _store(request).add_exempt_network(group.id, network, note or "")
    await _reload(request, moderation=True)
    raise _done(f"/admin/groups/{group.name}", f"{network} is exempt from bans.")


async def delete_exempt(request: web.Request) -> web.Response:
    """POST /admin/groups/{group}/exempt/{id}/delete."""
    group = await _group_of(request)
    if not await _store(request).delete_exempt(group.id, _id(request)):
        raise web.HTTPNotFound(text="Not found.")
    await _reload(request, moderation=True)
    raise _done(f"/admin/groups/{group.name}", "Exemption removed.")


def _id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise web.HTTPNotFound(text="Not found.") from None


# Canned messages (global, group and queue scope) --------------------------------------------


def _canned_forms(rows: list[CannedRow], forms: Mapping[str, Form]) -> list[tuple[CannedRow, Form]]:
    """Each stored message with its edit form (the failed one keeps what was typed)."""
    return [
        (
            row,
            forms.get(f"canned-{row.id}")
            or Form(f"canned-{row.id}", {"name": row.name, "text": row.text}),
        )
        for row in rows
    ]


Rerender = Callable[[Mapping[str, Form]], Awaitable[web.Response]]


async def _canned_add(
    request: web.Request,
    *,
    group_id: int | None,
    queue_id: int | None,
    back: str,
    rerender: Rerender,
) -> web.Response:
    form = await _posted(request, "canned", ("name", "text"))
    name = form.take("name", _canned_name)
    text = form.take("text", _canned_text)
    if form.ok and name is not None and text is not None:
        try:
            await _store(request).add_canned(name, text, group_id=group_id, queue_id=queue_id)
        except StoreError as exc:
            form.fail("name", _sentence(str(exc)))
    if not form.ok or name is None:
        return await rerender({"canned": form})
    await _reload(request)
    raise _done(back, f"Canned message {name} added.")


async def _canned_change(
    request: web.Request,
    *,
    group_id: int | None,
    queue_id: int | None,
    back: str,
    rerender: Rerender,
    delete: bool,
) -> web.Response:
    store = _store(request)
    row = await store.canned_row(_id(request))
    if row is None or (row.group_id, row.queue_id) != (group_id, queue_id):
        raise web.HTTPNotFound(text="Not found.")
    if delete:
        await store.delete_canned_row(row.id)
        await _reload(request)
        raise _done(back, f"Canned message {row.name} deleted.")
    form = await _posted(request, f"canned-{row.id}", ("name", "text"))
    name = form.take("name", _canned_name)
    text = form.take("text", _canned_text)
    if form.ok and name is not None and text is not None:
        try:
            await store.update_canned(row.id, name, text)
        except StoreError as exc:
            form.fail("name", _sentence(str(exc)))
    if not form.ok or name is None:
        return await rerender({f"canned-{row.id}": form})
    await _reload(request)
    raise _done(back, f"Canned message {name} saved.")


def _group_canned(delete: bool | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        group = await _group_of(request)
        back = f"/admin/groups/{group.name}"

        async def rerender(forms: Mapping[str, Form]) -> web.Response:
            return await _group_view(request, group, forms, status=400)

        if delete is None:
            return await _canned_add(
                request, group_id=group.id, queue_id=None, back=back, rerender=rerender
            )
        return await _canned_change(
            request, group_id=group.id, queue_id=None, back=back, rerender=rerender, delete=delete
        )

    return handler


def _queue_canned(delete: bool | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        queue = await _queue_of(request)
        back = f"/admin/queues/{queue.name}"

        async def rerender(forms: Mapping[str, Form]) -> web.Response:
            return await _queue_view(request, queue, forms, status=400)

        if delete is None:
            return await _canned_add(
                request, group_id=None, queue_id=queue.id, back=back, rerender=rerender
            )
        return await _canned_change(
            request, group_id=None, queue_id=queue.id, back=back, rerender=rerender, delete=delete
        )

    return handler


async def global_canned_page(request: web.Request) -> web.Response:
    """GET /admin/canned (admins only): messages every queue can use."""
    auth.require_admin(request)
    return await _global_canned_view(request, {})


async def _global_canned_view(
    request: web.Request, forms: Mapping[str, Form], status: int = 200
) -> web.Response:
    rows = await _store(request).canned_rows()
    return render(
        request,
        "admin/canned.html",
        {
            "title": "Canned messages",
            "canned": _canned_forms(rows, forms),
            "canned_form": forms.get("canned") or Form("canned"),
            "canned_base": "/admin/canned",
        },
        status=status,
    )


def _global_canned(delete: bool | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        auth.require_admin(request)

        async def rerender(forms: Mapping[str, Form]) -> web.Response:
            return await _global_canned_view(request, forms, status=400)

        if delete is None:
            return await _canned_add(
                request, group_id=None, queue_id=None, back="/admin/canned", rerender=rerender
            )
        return await _canned_change(
            request,
            group_id=None,
            queue_id=None,
            back="/admin/canned",
            rerender=rerender,
            delete=delete,
        )

    return handler


# Queues -------------------------------------------------------------------------------------


def _hours_text(queue: Queue) -> str:
    try:
        return describe(parse_hours(queue.hours, queue.timezone, queue.closed_days))
    except HoursError as exc:
        return f"Unreadable hours ({exc}): treated as always open"


async def queues_page(request: web.Request) -> web.Response:
    """GET /admin/queues."""
    return await _queues_list(request, Form("new-queue"))


async def _queues_list(request: web.Request, form: Form, status: int = 200) -> web.Response:
    service = _service(request)
    groups = await _visible_groups(request)
    names = {g.id: g for g in await _store(request).list_groups()}
    rows = []
    for q in await _visible_queues(request):
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
    store = _store(request)
    form = await _posted(request, "new-queue", ("name", "group", "title"))
    name = form.take("name", _slug("queue"))
    title = form.take("title", _optional_title)
    group = await store.group_by_name(form["group"]) if form["group"] else None
    if group is None:
        form.fail("group", "Choose the group the queue belongs to.")
    else:
        auth.check_group(request, group.id)
    if name is not None and await store.queue_by_name(name) is not None:
        form.fail("name", f"There is already a queue called {name!r}.")
    if not form.ok or name is None or group is None:
        return await _queues_list(request, form, status=400)
    title = title or name.replace("-", " ").capitalize()
    try:
        await store.add_queue(name, group.id, title, None, _service(request).clock())
    except StoreError:
        form.fail("name", f"There is already a queue called {name!r}.")
        return await _queues_list(request, form, status=400)
    await _reload(request)
    raise _done(f"/admin/queues/{name}", f"Queue {name} added.")


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
    return await _queue_view(request, await _queue_of(request))


async def _queue_view(
    request: web.Request,
    queue: Queue,
    forms: Mapping[str, Form] | None = None,
    status: int = 200,
) -> web.Response:
    service = _service(request)
    store = _store(request)
    forms = dict(forms or {})
    all_queues = await store.list_queues()
    names = {q.id: q.name for q in all_queues}
    visible = await _visible_queues(request)
    visible_ids = {q.id for q in visible}
    group = await store.group_by_id(queue.group_id)
    settings = forms.get("queue") or _queue_settings_form(queue, names, visible_ids)
    backups = [("", "None")]
    if settings["backup"] == KEEP_BACKUP:
        backups.append((KEEP_BACKUP, "(unchanged: another group's queue, set by an admin)"))
    backups += [(q.name, f"{q.title} ({q.name})") for q in visible if q.id != queue.id]
    operators = []
    on_call = {(a.queue_id, a.operator_id) for a in await store.list_assignments() if a.on_call}
    members = {a.operator_id for a in await store.list_assignments() if a.queue_id == queue.id}
    for op in await store.list_operators():
        if op.id in members:
            operators.append(
                {
                    "op": op,
                    "presence": service.presence_of(op.jid).value,
                    "on_call": (queue.id, op.id) in on_call,
                }
            )
    public_url = request.app[CONFIG].web.public_url.rstrip("/")
    embed = f'<script src="{public_url}/embed.js" data-queue="{queue.name}" async></script>'
    rule = None
    if queue.escalation:
        try:
            rule = describe_rule(parse_rule(queue.escalation))
        except RuleError:
            rule = None
    info = service.queue_info(queue.name) if service.is_queue(queue.name) else None
    effective = await store.canned_for_queue(queue.id, queue.group_id)
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
            "canned": _canned_forms(await store.canned_rows(queue_id=queue.id), forms),
            "canned_form": forms.get("canned") or Form("canned"),
            "canned_base": f"/admin/queues/{queue.name}/canned",
            "embed": embed,
            "direct_link": f"{public_url}/chat/{queue.name}",
            "preview": request.query.get("preview") == "1",
            "preview_allowed": frame_ancestors(queue.allowed_origins) != "'none'",
            "delete_form": forms.get("delete") or Form("delete"),
        },
        status=status,
    )


async def update_queue(request: web.Request) -> web.Response:
    """POST /admin/queues/{queue}: every setting at once."""
    queue = await _queue_of(request)
    store = _store(request)
    form = await _posted(request, "queue", QUEUE_FIELDS)
    form.values["purge_transcripts"] = bool(form["purge_transcripts"])
    changes: dict[str, object] = {}
    changes["title"] = form.take("title", _title)
    routing = form["routing"]
    if routing not in {m for m, _ in ROUTING_MODES}:
        form.fail("routing", "Choose how chats are offered to operators.")
    changes["routing"] = routing
    changes["offer_timeout"] = form.take("offer_timeout", _seconds)
    changes["rollover_after"] = form.take("rollover_after", _optional_seconds)
    backup = form["backup"]
    if backup == KEEP_BACKUP:
        if queue.backup_queue_id is None:
            form.fail("backup", "Choose a backup queue from the list.")
    elif backup:
        target = await store.queue_by_name(backup)
        if target is None or not auth.may_see_group(request, target.group_id):
            form.fail("backup", "Choose a backup queue from the list.")
        elif target.id == queue.id:
            form.fail("backup", "A queue cannot be its own backup.")
        else:
            changes["backup_queue_id"] = target.id
    else:
        changes["backup_queue_id"] = None
    if form["rollover_after"].strip() and not backup and "rollover_after" not in form.errors:
        form.fail("backup", "Choose the backup queue that unanswered chats move to.")
    if backup and not form["rollover_after"].strip() and "backup" not in form.errors:
        form.fail("rollover_after", "Say after how many seconds chats move to the backup.")
    _hours(form, changes)
    escalation = form["escalation"].strip()
    if escalation:
        try:
            changes["escalation"] = describe_rule(parse_rule(escalation))
        except RuleError as exc:
            form.fail("escalation", _sentence(str(exc)))
    else:
        changes["escalation"] = None
    changes["followup_email"] = form.take("followup_email", _optional_email)
    changes["referral_email"] = form.take("referral_email", _optional_email)
    changes["max_wait"] = form.take("max_wait", _optional_seconds)
    if form["privacy"] not in {m for m, _ in PRIVACY_MODES}:
        form.fail("privacy", "Choose what is kept of patrons' addresses.")
    changes["privacy"] = form["privacy"]
    changes["retention_days"] = form.take("retention_days", _optional_days)
    changes["purge_transcripts"] = bool(form["purge_transcripts"])
    if changes["purge_transcripts"] and changes["retention_days"] is None:
        form.fail("retention_days", "Say after how many days transcripts are purged.")
    changes["widget_color"] = form.take("widget_color", _color)
    changes["widget_logo"] = form.take("widget_logo", _optional_logo)
    changes["greeting"] = form.take("greeting", _optional_text(500))
    for key in ("text_available", "text_away", "text_offline"):
        changes[key] = form.take(key, _optional_text(300))
    changes["allowed_origins"] = form.take("allowed_origins", _origins)
    if not form.ok:
        return await _queue_view(request, queue, {"queue": form}, status=400)
    await store.update_queue(queue.id, **changes)
    await _reload(request)
    raise _done(f"/admin/queues/{queue.name}", "Queue settings saved.")


def _hours(form: Form, changes: dict[str, object]) -> None:
    """Hours, time zone and closed days, each error on its own field."""
    tz = form["timezone"].strip()
    ok = True
    try:
        parse_hours("always", tz)
    except HoursError as exc:
        form.fail("timezone", _sentence(f"{exc}: use a name like Europe/Paris or UTC"))
        ok = False
    words = [d for d in re.split(r"[,\s]+", form["closed_days"].strip()) if d]
    closed: tuple[str, ...] = ()
    try:
        closed = tuple(d.isoformat() for d in sorted(parse_hours("always", "UTC", words).closed))
    except HoursError as exc:
        form.fail("closed_days", _sentence(str(exc)))
        ok = False
    try:
        parsed = parse_hours(form["hours"], tz if ok else "UTC")
    except HoursError as exc:
        form.fail("hours", _sentence(str(exc)))
        return
    if ok:
        changes.update(hours=format_hours(parsed), timezone=tz, closed_days=closed)


async def delete_queue(request: web.Request) -> web.Response:
    """POST /admin/queues/{queue}/delete: only a queue nobody has used."""
    queue = await _queue_of(request)
    form = await _posted(request, "delete", ("confirm",))
    if not form["confirm"]:
        form.fail("confirm", "Tick the box to confirm that the queue should be deleted.")
        return await _queue_view(request, queue, {"delete": form}, status=400)
    try:
        await _store(request).delete_queue(queue.id)
    except StoreError as exc:
        form.fail("confirm", _sentence(f"The queue cannot be deleted: {exc}"))
        return await _queue_view(request, queue, {"delete": form}, status=400)
    await _reload(request)
    raise _done("/admin/queues", f"Queue {queue.name} deleted.")


async def remove_from_queue(request: web.Request) -> web.Response:
    """POST /admin/queues/{queue}/operators/{operator}/remove: the operator leaves this
    queue (and keeps their others)."""
    queue = await _queue_of(request)
    try:
        op_id = int(request.match_info["operator"])
    except ValueError:
        raise web.HTTPNotFound(text="Not found.") from None
    store = _store(request)
    op = await store.operator_by_id(op_id)
    if op is None or not await store.remove_assignment(queue.id, op.id):
        raise web.HTTPNotFound(text="Not found.")
    await _reload(request)
    raise _done(f"/admin/queues/{queue.name}", f"{op.name} no longer answers {queue.name}.")


# Operators ----------------------------------------------------------------------------------


async def operators_page(request: web.Request) -> web.Response:
    """GET /admin/operators."""
    return await _operators_list(request, Form("new-operator", {"max_chats": "3"}))


async def _operators_list(request: web.Request, form: Form, status: int = 200) -> web.Response:
    service = _service(request)
    store = _store(request)
    queues = await _visible_queues(request)
    by_id = {q.id: q for q in queues}
    assignments = await store.list_assignments()
    rows = []
    for op in await store.list_operators():
        mine = [a for a in assignments if a.operator_id == op.id and a.queue_id in by_id]
        if not mine and not _is_admin(request):
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


_OPERATOR_FIELDS = ("jid", "name", "max_chats")


async def _memberships(request: web.Request, form: Form, queues: list[Queue]) -> dict[int, bool]:
    """The queue checkboxes (`queue`) and on-call ticks (`on_call`) as queue id -> on
    call. A queue this admin may not manage is a 404, as if asked for by URL."""
    by_name = {q.name: q for q in queues}
    chosen = await _posted_list(request, "queue")
    on_call = set(await _posted_list(request, "on_call"))
    form.values["queue"] = chosen
    form.values["on_call"] = sorted(on_call)
    for name in [*chosen, *on_call]:
        if name not in by_name:
            raise web.HTTPNotFound(text="Not found.")
    if not chosen:
        form.fail("queue", "Choose at least one queue for this operator.")
    if on_call - set(chosen):
        form.fail("on_call", "An operator can only be on call for their own queues.")
    return {by_name[n].id: n in on_call for n in chosen}


async def add_operator(request: web.Request) -> web.Response:
    """POST /admin/operators: JID, display name, max chats, queues and on-call."""
    service = _service(request)
    store = _store(request)
    queues = await _visible_queues(request)
    form = await _posted(request, "new-operator", _OPERATOR_FIELDS)
    jid = form.take("jid", _operator_jid(service.domain))
    name = form.take("name", _optional_text(100))
    max_chats = form.take("max_chats", _whole(1, MAX_CHATS_LIMIT, "chats"))
    wanted = await _memberships(request, form, queues)
    if jid is not None:
        existing = await store.operator_by_jid(jid)
        if existing is not None:
            form.fail(
                "jid",
                f"{jid} is already an operator: change their queues on their page."
                if await _manages(request, existing.id, queues)
                else f"{jid} is already an operator of another group; ask an admin to add "
                "them to your queues.",
            )
    if not form.ok or jid is None or max_chats is None:
        return await _operators_list(request, form, status=400)
    display = name or jid.split("@")[0].capitalize()
    try:
        op = await store.add_operator(jid, display, max_chats, service.clock())
    except StoreError as exc:
        form.fail("jid", _sentence(str(exc)))
        return await _operators_list(request, form, status=400)
    await store.set_memberships(op.id, wanted, [q.id for q in queues])
    await _reload(request)
    raise _done(f"/admin/operators/{op.id}", f"Operator {jid} added.")


async def _manages(request: web.Request, operator_id: int, queues: list[Queue]) -> bool:
    if _is_admin(request):
        return True
    ids = {q.id for q in queues}
    return any(
        a.operator_id == operator_id and a.queue_id in ids
        for a in await _store(request).list_assignments()
    )


async def operator_page(request: web.Request) -> web.Response:
    """GET /admin/operators/{operator}."""
    op, queues = await _operator_of(request)
    return await _operator_view(request, op, queues)


async def _operator_view(
    request: web.Request,
    op: Operator,
    queues: list[Queue],
    forms: Mapping[str, Form] | None = None,
    status: int = 200,
) -> web.Response:
    service = _service(request)
    forms = dict(forms or {})
    ids = {q.id for q in queues}
    mine = [a for a in await _store(request).list_assignments() if a.operator_id == op.id]
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


SHARED_OPERATOR_NOTE = (
    "They also serve another group: only an admin can change their name and max chats."
)


def _locked(request: web.Request, other_queues: int) -> bool:
    """Whether this admin may not change the operator's own settings (name, max chats):
    a coordinator, for an operator who is also in `other_queues` queues of other groups."""
    return other_queues > 0 and not _is_admin(request)


async def update_operator(request: web.Request) -> web.Response:
    """POST /admin/operators/{operator}: name, max chats, queues, on-call. A coordinator's
    changes leave the operator's other groups' queues as they are, and may not touch the
    name or max chats of an operator whom another group shares (those are that group's
    too); only the coordinator's own queues' memberships are theirs to change then."""
    op, queues = await _operator_of(request)
    store = _store(request)
    form = await _posted(request, "operator", ("name", "max_chats"))
    name = form.take("name", _display_name)
    max_chats = form.take("max_chats", _whole(1, MAX_CHATS_LIMIT, "chats"))
    wanted = await _memberships(request, form, queues)
    ids = {q.id for q in queues}
    others = sum(
        1
        for a in await store.list_assignments()
        if a.operator_id == op.id and a.queue_id not in ids
    )
    if _locked(request, others):
        if name is not None and name != op.name.strip():
            form.fail("name", SHARED_OPERATOR_NOTE)
        if max_chats is not None and max_chats != op.max_chats:
            form.fail("max_chats", SHARED_OPERATOR_NOTE)
    if not form.ok or name is None or max_chats is None:
        return await _operator_view(request, op, queues, {"operator": form}, status=400)
    await store.update_operator(op.id, name, max_chats)
    await store.set_memberships(op.id, wanted, [q.id for q in queues])
    await _reload(request)
    raise _done(f"/admin/operators/{op.id}", "Operator saved.")


async def delete_operator(request: web.Request) -> web.Response:
    """POST /admin/operators/{operator}/delete. An admin removes the operator; a
    coordinator removes them from their group's queues (other groups keep them)."""
    op, queues = await _operator_of(request)
    store = _store(request)
    form = await _posted(request, "delete", ("confirm",))
    if not form["confirm"]:
        form.fail("confirm", "Tick the box to confirm that the operator should be removed.")
        return await _operator_view(request, op, queues, {"delete": form}, status=400)
    if _is_admin(request):
        await store.delete_operator(op.id)
    else:
        ids = {q.id for q in queues}
        await store.set_memberships(op.id, {}, ids)
        if not any(a.operator_id == op.id for a in await store.list_assignments()):
            await store.delete_operator(op.id)
    await _reload(request)
    raise _done("/admin/operators", f"Operator {op.jid} removed.")


# Routes -------------------------------------------------------------------------------------


def add_routes(app: web.Application) -> None:
    """Register this module's pages."""
    r = app.router
    r.add_get("/admin/groups", groups_page)
    r.add_post("/admin/groups", create_group)
    r.add_get("/admin/groups/{group}", group_page)
    r.add_post("/admin/groups/{group}", update_group)
    r.add_post("/admin/groups/{group}/delete", delete_group)
    r.add_post("/admin/groups/{group}/links", add_link)
    r.add_post("/admin/groups/{group}/links/{id}/delete", delete_link)
    r.add_post("/admin/groups/{group}/exempt", add_exempt)
    r.add_post("/admin/groups/{group}/exempt/{id}/delete", delete_exempt)
    r.add_post("/admin/groups/{group}/canned", _group_canned(None))
    r.add_post("/admin/groups/{group}/canned/{id}", _group_canned(False))
    r.add_post("/admin/groups/{group}/canned/{id}/delete", _group_canned(True))
    r.add_get("/admin/queues", queues_page)
    r.add_post("/admin/queues", create_queue)
    r.add_get("/admin/queues/{queue}", queue_page)
    r.add_post("/admin/queues/{queue}", update_queue)
    r.add_post("/admin/queues/{queue}/delete", delete_queue)
    r.add_post("/admin/queues/{queue}/operators/{operator}/remove", remove_from_queue)
    r.add_post("/admin/queues/{queue}/canned", _queue_canned(None))
    r.add_post("/admin/queues/{queue}/canned/{id}", _queue_canned(False))
    r.add_post("/admin/queues/{queue}/canned/{id}/delete", _queue_canned(True))
    r.add_get("/admin/canned", global_canned_page)
    r.add_post("/admin/canned", _global_canned(None))
    r.add_post("/admin/canned/{id}", _global_canned(False))
    r.add_post("/admin/canned/{id}/delete", _global_canned(True))
    r.add_get("/admin/operators", operators_page)
    r.add_post("/admin/operators", add_operator)
    r.add_get("/admin/operators/{operator}", operator_page)
    r.add_post("/admin/operators/{operator}", update_operator)
    r.add_post("/admin/operators/{operator}/delete", delete_operator)
