"""Admin pages: records — transcripts (search, view, download as text or CSV, delete),
tickets with the status of their emails, and the mail outbox.

Scope: an admin sees every queue; a group coordinator only their group's queues. Another
group's chat, ticket or email answers 404 whatever the URL (see `auth.check_group`).

Addresses are shown as the chat's queue's privacy mode allows *now*: what the store kept
(which followed the mode when the chat was made), narrowed further if the mode has become
stricter since ('network' shows only the /24 or /48, 'none' nothing).

A chat tagged `explicit`, or referred to by an incident flagged explicit, is sealed: its
pages describe it without quoting it, and only an admin can open the verbatim text (an
explicit "show verbatim text" action) or download it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from component.core.events import MailQueued
from component.core.models import ChatEvent, EventKind, Incident, OutboxMail, Sender
from component.core.privacy import stored_address
from component.store_records import ChatSummary
from web.admin import auth
from web.admin.layout import render
from web.keys import SERVICE

PAGE_SIZE = 50
CSV_MAX_ROWS = 10_000
MAX_SEARCH_TEXT = 200

# Cells a spreadsheet would take for a formula (and tab/CR, which some read as one).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# Shared helpers (moderation pages use them too) ---------------------------------------


def when(value: datetime | None, *, seconds: bool = False) -> str:
    """A time as the admin pages and exports show it: ISO 8601 in UTC, `2026-12-22 14:05Z`."""
    if value is None:
        return ""
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M{':%S' if seconds else ''}}Z"


def visible_queue_ids(request: web.Request) -> set[int] | None:
    """The queues whose records this admin may see: None for all."""
    groups = auth.visible_groups(request)
    if groups is None:
        return None
    service = request.app[SERVICE]
    return {
        queue.id
        for queue in (service.queue(name) for name in service.queue_names())
        if queue.group_id in groups
    }


def check_queue(request: web.Request, queue_id: int | None) -> None:
    """404 unless this admin may see the records of `queue_id` (None: admins only)."""
    visible = visible_queue_ids(request)
    if visible is not None and (queue_id is None or queue_id not in visible):
        raise web.HTTPNotFound(text="Not found.")


def queue_privacy(request: web.Request, queue_id: int | None) -> str:
    """The queue's privacy mode now ('full' if the queue is unknown)."""
    if queue_id is None:
        return "full"
    service = request.app[SERVICE]
    for name in service.queue_names():
        queue = service.queue(name)
        if queue.id == queue_id:
            return queue.privacy
    return "full"


def shown_address(stored: str | None, mode: str) -> str | None:
    """What may be shown of a stored address under the privacy mode `mode` now."""
    if stored is None or mode == "none":
        return None
    if mode == "network" and "/" not in stored:
        return stored_address(stored, "network")
    return stored


def chat_address(chat: ChatSummary) -> str | None:
    return shown_address(chat.origin_ip, chat.privacy)


def int_param(value: str | None, default: int | None = None) -> int | None:
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        return None
    return number if 0 < number < 2**62 else None


def page_number(request: web.Request) -> int:
    return int_param(request.query.get("page"), 1) or 1


def page_links(
    request: web.Request, page: int, total: int, size: int = PAGE_SIZE
) -> dict[str, Any]:
    """Previous/next links keeping the request's other query parameters."""
    pages = max(1, -(-total // size))
    query = {k: v for k, v in request.query.items() if k not in ("page", "done")}

    def link(number: int) -> str:
        return f"{request.path}?{urlencode({**query, 'page': str(number)})}"

    return {
        "page": page,
        "pages": pages,
        "total": total,
        "prev": link(page - 1) if page > 1 else None,
        "next": link(page + 1) if page < pages else None,
    }


def visible_incidents(request: web.Request, incidents: Iterable[Incident]) -> list[Incident]:
    """The incidents this admin may see: a coordinator, those filed in their group's
    queues. A chat transferred between groups keeps the incidents filed before the move,
    which belong to the queue they were filed in."""
    visible = visible_queue_ids(request)
    return [i for i in incidents if visible is None or i.queue_id in visible]


def may_see_chat(request: web.Request, chat: ChatSummary) -> bool:
    """Whether this admin may open `chat` (its queue's group is theirs, or they are an
    admin); for pages that mention a chat they reached by another way."""
    return auth.may_see_group(request, chat.group_id)


def sealed(chat: ChatSummary, incidents: Iterable[Incident]) -> bool:
    """Whether the chat's text must not be quoted (flagged explicit)."""
    return "explicit" in chat.tags or any(i.explicit for i in incidents)


def who(event: ChatEvent) -> str:
    if event.sender is Sender.PATRON:
        return "Patron"
    if event.sender is Sender.SYSTEM:
        return "System"
    return event.name or "Operator"


@dataclass(frozen=True, slots=True)
class Entry:
    """One transcript line as the pages show it."""

    seq: int
    at: str
    who: str
    kind: str  # 'message' | 'note' | 'ended'
    sender: str
    text: str
    operator_jid: str | None


def entries(events: Sequence[ChatEvent]) -> list[Entry]:
    out = []
    for e in events:
        text = e.text
        if e.kind is EventKind.ENDED:
            by = e.name or "system"
            text = f"Chat ended (by {by})" + (f": {e.text}" if e.text else ".")
        elif e.corrected:
            text = f"{e.text} (corrected by the operator after sending)"
        out.append(
            Entry(
                e.seq,
                when(e.ts, seconds=True),
                who(e),
                e.kind.value,
                e.sender.value,
                text,
                e.operator_jid,
            )
        )
    return out


def chat_facts(chat: ChatSummary) -> dict[str, str]:
    """The chat's columns as the exports write them."""
    return {
        "chat": str(chat.id),
        "queue": chat.queue_name,
        "started": when(chat.created_at, seconds=True),
        "asked": when(chat.asked_at, seconds=True),
        "accepted": when(chat.accepted_at, seconds=True),
        "ended": when(chat.ended_at, seconds=True),
        "state": chat.state.value,
        "operator": chat.operator_name or "",
        "address": chat_address(chat) or "",
        "tags": " ".join(chat.tags),
    }


CHAT_COLUMNS = (
    "chat",
    "queue",
    "started",
    "asked",
    "accepted",
    "ended",
    "state",
    "operator",
    "address",
    "tags",
)
MESSAGE_COLUMNS = ("seq", "time", "kind", "sender", "name", "text")


def csv_cell(value: object) -> str:
    """A cell that a spreadsheet shows as text: values that would start a formula get a
    leading single quote (CSV injection)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return buffer.getvalue()


def download(body: str, filename: str, content_type: str) -> web.Response:
    response = web.Response(text=body, content_type=content_type, charset="utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def load_chat(request: web.Request, chat_id: int) -> ChatSummary:
    """The chat, or 404 if it does not exist or belongs to another group."""
    chat = await request.app[SERVICE].store.chat_summary(chat_id)
    if chat is None:
        raise web.HTTPNotFound(text="Not found.")
    auth.check_group(request, chat.group_id)
    return chat


def _chat_id(request: web.Request) -> int:
    number = int_param(request.match_info["chat_id"])
    if number is None:
        raise web.HTTPNotFound(text="Not found.")
    return number


# Transcript search -------------------------------------------------------------------------


@dataclass
class Search:
    """The search form's values, checked."""

    values: dict[str, str]
    errors: dict[str, str]
    queue_id: int | None = None
    operator_id: int | None = None
    tag: str | None = None
    text: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _queues_for(request: web.Request) -> list[Any]:
    service = request.app[SERVICE]
    visible = visible_queue_ids(request)
    queues = [service.queue(n) for n in service.queue_names()]
    return [q for q in queues if visible is None or q.id in visible]


def _operators_for(request: web.Request) -> list[Any]:
    service = request.app[SERVICE]
    visible = visible_queue_ids(request)
    names = {q.name for q in _queues_for(request)}
    ops = service.operators()
    if visible is not None:
        ops = [op for op in ops if names & set(service.queues_of(op.jid))]
    return sorted(ops, key=lambda op: op.name.lower())


def _search(request: web.Request) -> Search:
    q = request.query
    values = {k: q.get(k, "").strip() for k in ("queue", "operator", "tag", "text", "from", "to")}
    search = Search(values, {})
    errors = search.errors
    if values["queue"]:
        match = next((x for x in _queues_for(request) if x.name == values["queue"]), None)
        if match is None:
            errors["queue"] = "Choose one of the queues in the list."
        else:
            search.queue_id = match.id
    if values["operator"]:
        # Only the operators the form offers: an id from another group must get the
        # answer an unknown id gets, or the filter tells which ids exist elsewhere.
        ops = {str(op.id): op for op in _operators_for(request)}
        if values["operator"] not in ops:
            errors["operator"] = "Choose one of the operators in the list."
        else:
            search.operator_id = ops[values["operator"]].id
    if values["tag"]:
        tag = values["tag"].lower()
        if len(tag) > 32:
            errors["tag"] = "Tags are at most 32 characters."
        search.tag = tag
    if values["text"]:
        if len(values["text"]) > MAX_SEARCH_TEXT:
            errors["text"] = f"Search for at most {MAX_SEARCH_TEXT} characters."
        search.text = values["text"]
    start = end = None
    if values["from"]:
        start = _date(values["from"])
        if start is None:
            errors["from"] = "Write the date as YYYY-MM-DD, e.g. 2026-03-31."
        else:
            search.since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    if values["to"]:
        end = _date(values["to"])
        if end is None:
            errors["to"] = "Write the date as YYYY-MM-DD, e.g. 2026-03-31."
        elif start is not None and end < start:
            errors["to"] = "The end date is before the start date."
        else:
            search.until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return search


async def _run_search(
    request: web.Request, search: Search, *, limit: int, offset: int
) -> tuple[list[ChatSummary], int]:
    page = await request.app[SERVICE].store.search_chats(
        queue_ids=visible_queue_ids(request),
        queue_id=search.queue_id,
        operator_id=search.operator_id,
        tag=search.tag,
        text=search.text,
        since=search.since,
        until=search.until,
        limit=limit,
        offset=offset,
    )
    return page.chats, page.total


async def transcripts(request: web.Request) -> web.Response:
    """GET /admin/transcripts: search form and results."""
    search = _search(request)
    page = page_number(request)
    chats: list[ChatSummary] = []
    total = 0
    if not search.errors:
        chats, total = await _run_search(
            request, search, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
    csv_query = urlencode({k: v for k, v in search.values.items() if v})
    tags = await request.app[SERVICE].store.chat_tag_names(visible_queue_ids(request))
    return render(
        request,
        "admin/transcript_list.html",
        {
            "title": "Transcripts",
            "search": search.values,
            "errors": search.errors,
            "queues": _queues_for(request),
            "operators": _operators_for(request),
            "tags": tags,
            "chats": [_row(c) for c in chats],
            "pager": page_links(request, page, total),
            "csv_url": "/admin/transcripts.csv" + (f"?{csv_query}" if csv_query else ""),
            "searched": any(search.values.values()),
        },
        status=400 if search.errors else 200,
    )


def _row(chat: ChatSummary) -> dict[str, Any]:
    return {
        "id": chat.id,
        "queue": chat.queue_name,
        "queue_title": chat.queue_title,
        "started": when(chat.created_at),
        "state": chat.state.value,
        "operator": chat.operator_name,
        "address": chat_address(chat),
        "tags": chat.tags,
        "messages": chat.messages,
    }


async def transcripts_csv(request: web.Request) -> web.Response:
    """GET /admin/transcripts.csv: the search's chats, one row each (no text)."""
    search = _search(request)
    if search.errors:
        raise web.HTTPBadRequest(text="; ".join(search.errors.values()))
    chats, _ = await _run_search(request, search, limit=CSV_MAX_ROWS, offset=0)
    rows: list[Sequence[object]] = [CHAT_COLUMNS]
    rows += [[chat_facts(c)[k] for k in CHAT_COLUMNS] for c in chats]
    stamp = request.app[SERVICE].clock().astimezone(UTC)
    return download(csv_text(rows), f"transcripts-{stamp:%Y%m%d-%H%M}.csv", "text/csv")


# One transcript -------------------------------------------------------------------------------


async def transcript(request: web.Request) -> web.Response:
    """GET /admin/transcripts/{id} (add ?verbatim=1 to open a sealed chat, admins only)."""
    chat = await load_chat(request, _chat_id(request))
    store = request.app[SERVICE].store
    incidents = await store.incidents_for_chat(chat.id)
    is_sealed = sealed(chat, incidents)
    verbatim = request.query.get("verbatim") == "1"
    if verbatim and is_sealed:
        auth.require_admin(request)
    events = await store.events_after(chat.id, 0)
    show_text = not is_sealed or verbatim
    service = request.app[SERVICE]
    return render(
        request,
        "admin/transcript_detail.html",
        {
            "title": f"Chat #{chat.id}",
            "chat": chat,
            "facts": chat_facts(chat),
            "referrer": chat.referrer,
            "entries": entries(events) if show_text else [],
            "counts": _counts(events),
            "sealed": is_sealed,
            "verbatim": verbatim and is_sealed,
            "incidents": visible_incidents(request, incidents),
            "is_open": chat.id in service.open_chat_ids(),
            "when": when,
        },
    )


def _counts(events: Sequence[ChatEvent]) -> dict[str, Any]:
    return {
        "messages": sum(1 for e in events if e.kind is EventKind.MESSAGE),
        "notes": sum(1 for e in events if e.kind is EventKind.NOTE),
        "first": when(events[0].ts) if events else "",
        "last": when(events[-1].ts) if events else "",
    }


async def _exportable(request: web.Request) -> tuple[ChatSummary, list[ChatEvent]]:
    chat = await load_chat(request, _chat_id(request))
    store = request.app[SERVICE].store
    if sealed(chat, await store.incidents_for_chat(chat.id)) and (
        request.query.get("verbatim") != "1" or auth.current(request).admin.role != "admin"
    ):
        raise web.HTTPForbidden(
            text="This chat was flagged explicit: only an admin can download its text, "
            "from the chat's page after choosing 'Show verbatim text'."
        )
    return chat, await store.events_after(chat.id, 0)


async def transcript_text(request: web.Request) -> web.Response:
    """GET /admin/transcripts/{id}.txt"""
    chat, events = await _exportable(request)
    facts = chat_facts(chat)
    lines = [
        f"Chat #{chat.id} in {chat.queue_title} ({chat.queue_name})",
        f"Started:  {facts['started']}",
        f"Asked:    {facts['asked'] or '-'}",
        f"Accepted: {facts['accepted'] or '-'}",
        f"Ended:    {facts['ended'] or '-'}",
        f"State:    {facts['state']}",
        f"Operator: {facts['operator'] or '-'}",
        f"Address:  {facts['address'] or 'not kept'} (privacy mode: {chat.privacy})",
        f"Tags:     {facts['tags'] or '-'}",
        "",
    ]
    for entry in entries(events):
        if entry.kind == "note":
            lines.append(f"[{entry.at}] STAFF NOTE ({entry.who}): {entry.text}")
        elif entry.kind == "ended":
            lines.append(f"[{entry.at}] -- {entry.text}")
        else:
            lines.append(f"[{entry.at}] {entry.who}: {entry.text}")
    return download("\n".join(lines) + "\n", f"chat-{chat.id}.txt", "text/plain")


async def transcript_csv(request: web.Request) -> web.Response:
    """GET /admin/transcripts/{id}.csv: one row for the chat, then one row per entry."""
    chat, events = await _exportable(request)
    facts = chat_facts(chat)
    rows: list[Sequence[object]] = [CHAT_COLUMNS + MESSAGE_COLUMNS]
    rows.append([facts[k] for k in CHAT_COLUMNS] + [""] * len(MESSAGE_COLUMNS))
    blank = [""] * (len(CHAT_COLUMNS) - 1)
    for entry in entries(events):
        rows.append(
            [str(chat.id), *blank, entry.seq, entry.at, entry.kind, entry.sender, entry.who,
             entry.text]
        )  # fmt: skip
    return download(csv_text(rows), f"chat-{chat.id}.csv", "text/csv")


async def delete_page(request: web.Request) -> web.Response:
    """GET /admin/transcripts/{id}/delete: the confirmation page."""
    chat = await load_chat(request, _chat_id(request))
    return await _delete_form(request, chat, error=None)


async def _delete_form(
    request: web.Request, chat: ChatSummary, *, error: str | None, status: int = 200
) -> web.Response:
    store = request.app[SERVICE].store
    incidents = await store.incidents_for_chat(chat.id)
    blocker = _delete_blocker(request, chat, incidents)
    return render(
        request,
        "admin/transcript_delete.html",
        {
            "title": f"Delete chat #{chat.id}",
            "chat": chat,
            "facts": chat_facts(chat),
            "incidents": visible_incidents(request, incidents),
            "blocker": blocker,
            "error": error,
        },
        status=status,
    )


def _delete_blocker(
    request: web.Request, chat: ChatSummary, incidents: Sequence[Incident]
) -> str | None:
    if chat.id in request.app[SERVICE].open_chat_ids() or chat.state.open:
        return "This chat is still open: it can be deleted once it has ended."
    still_open = [i for i in incidents if i.status == "open"]
    if still_open:
        shown = visible_incidents(request, still_open)
        if not shown:
            # Another group's open incident blocks the deletion as well, unnamed.
            return "An open incident about this chat must be resolved first: ask an admin."
        numbers = ", ".join(f"#{i.id}" for i in shown)
        return (
            f"Incident {numbers} about this chat is still open: resolve it first, so that "
            "nobody deletes what an open report refers to."
        )
    return None


async def delete(request: web.Request) -> web.Response:
    """POST /admin/transcripts/{id}/delete"""
    chat = await load_chat(request, _chat_id(request))
    form = await request.post()
    store = request.app[SERVICE].store
    blocker = _delete_blocker(request, chat, await store.incidents_for_chat(chat.id))
    if blocker:
        return await _delete_form(request, chat, error=blocker, status=409)
    if form.get("confirm") != "yes":
        return await _delete_form(
            request, chat, error="Tick the box to confirm the deletion.", status=400
        )
    if not await store.delete_chat(chat.id):
        return await _delete_form(
            request, chat, error="The chat could not be deleted (is it open again?).", status=409
        )
    raise web.HTTPSeeOther(
        "/admin/transcripts?" + urlencode({"done": f"Chat #{chat.id} and its transcript deleted."})
    )


# Tickets and the outbox --------------------------------------------------------------------


def subject_of(mail: OutboxMail) -> str:
    try:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(mail.message)
        return str(headers.get("subject", "") or "")
    except Exception:
        return ""


def mail_view(mail: OutboxMail, *, now: datetime) -> dict[str, Any]:
    if mail.status == "pending":
        due = mail.next_attempt_at
        detail = "due now" if due <= now else f"next attempt {when(due)}"
    elif mail.status == "sent":
        detail = f"sent {when(mail.sent_at)}"
    else:
        detail = "gave up"
    return {
        "id": mail.id,
        "purpose": mail.purpose,
        "recipients": ", ".join(mail.recipients),
        "subject": subject_of(mail),
        "status": mail.status,
        "attempts": mail.attempts,
        "last_error": mail.last_error,
        "detail": detail,
        "created": when(mail.created_at),
        "ticket_id": mail.ticket_id,
        "chat_id": mail.chat_id,
    }


_TICKET_FILTERS = {"open": "open", "closed": "closed", "all": None}


async def tickets(request: web.Request) -> web.Response:
    """GET /admin/tickets?status=open|closed|all"""
    show = request.query.get("status", "open")
    if show not in _TICKET_FILTERS:
        show = "open"
    page = page_number(request)
    service = request.app[SERVICE]
    rows, total = await service.store.ticket_rows(
        status=_TICKET_FILTERS[show],
        queue_ids=visible_queue_ids(request),
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    now = service.clock()
    return render(
        request,
        "admin/ticket_list.html",
        {
            "title": "Tickets",
            "show": show,
            "tickets": [_ticket_view(t, now) for t in rows],
            "pager": page_links(request, page, total),
        },
    )


def _ticket_view(t: Any, now: datetime) -> dict[str, Any]:
    question = t.question if len(t.question) <= 160 else t.question[:157] + "…"
    return {
        "id": t.id,
        "kind": t.kind,
        "queue": t.queue_name,
        "chat_id": t.chat_id,
        "name": t.name,
        "email": t.email,
        "question": question,
        "full_question": t.question,
        "status": t.status,
        "operator": t.operator_name,
        "created": when(t.created_at),
        "mails": [mail_view(m, now=now) for m in t.mails],
    }


def _ticket_id(request: web.Request) -> int:
    number = int_param(request.match_info["ticket_id"])
    if number is None:
        raise web.HTTPNotFound(text="Not found.")
    return number


async def ticket(request: web.Request) -> web.Response:
    """GET /admin/tickets/{id}"""
    service = request.app[SERVICE]
    row = await service.store.ticket_row(_ticket_id(request))
    if row is None:
        raise web.HTTPNotFound(text="Not found.")
    check_queue(request, row.queue_id)
    return render(
        request,
        "admin/ticket_detail.html",
        {"title": f"Ticket #{row.id}", "ticket": _ticket_view(row, service.clock())},
    )


async def ticket_status(request: web.Request) -> web.Response:
    """POST /admin/tickets/{id}/status: close or reopen."""
    service = request.app[SERVICE]
    row = await service.store.ticket_row(_ticket_id(request))
    if row is None:
        raise web.HTTPNotFound(text="Not found.")
    check_queue(request, row.queue_id)
    status = (await request.post()).get("status")
    if status not in ("open", "closed"):
        raise web.HTTPBadRequest(text="Unknown ticket status.")
    await service.store.set_ticket_status(row.id, str(status))
    done = f"Ticket #{row.id} {'closed' if status == 'closed' else 'reopened'}."
    raise web.HTTPSeeOther(f"/admin/tickets/{row.id}?" + urlencode({"done": done}))


async def mail(request: web.Request) -> web.Response:
    """GET /admin/mail: the outbox, failed emails first."""
    service = request.app[SERVICE]
    page = page_number(request)
    rows, total = await service.store.outbox(
        queue_ids=visible_queue_ids(request), limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    now = service.clock()
    return render(
        request,
        "admin/ticket_mail.html",
        {
            "title": "Mail outbox",
            "mails": [mail_view(m.mail, now=now) for m in rows],
            "pager": page_links(request, page, total),
        },
    )


async def retry_mail(request: web.Request) -> web.Response:
    """POST /admin/mail/{id}/retry: a failed email goes back to the queue, due now."""
    service = request.app[SERVICE]
    mail_id = int_param(request.match_info["mail_id"])
    found = await service.store.outbox_mail(mail_id) if mail_id else None
    if found is None:
        raise web.HTTPNotFound(text="Not found.")
    check_queue(request, found.queue_id)
    if await service.store.retry_mail(found.mail.id, service.clock()):
        service.bus.publish(MailQueued())
        done = f"Email #{found.mail.id} is queued again and will be sent now."
    else:
        done = f"Email #{found.mail.id} had not failed: nothing to retry."
    raise web.HTTPSeeOther("/admin/mail?" + urlencode({"done": done}))


def add_routes(app: web.Application) -> None:
    """Register this module's pages."""
    r = app.router
    r.add_get("/admin/transcripts", transcripts)
    r.add_get("/admin/transcripts.csv", transcripts_csv)
    r.add_get(r"/admin/transcripts/{chat_id:\d+}", transcript)
    r.add_get(r"/admin/transcripts/{chat_id:\d+}.txt", transcript_text)
    r.add_get(r"/admin/transcripts/{chat_id:\d+}.csv", transcript_csv)
    r.add_get(r"/admin/transcripts/{chat_id:\d+}/delete", delete_page)
    r.add_post(r"/admin/transcripts/{chat_id:\d+}/delete", delete)
    r.add_get("/admin/tickets", tickets)
    r.add_get(r"/admin/tickets/{ticket_id:\d+}", ticket)
    r.add_post(r"/admin/tickets/{ticket_id:\d+}/status", ticket_status)
    r.add_get("/admin/mail", mail)
    r.add_post(r"/admin/mail/{mail_id:\d+}/retry", retry_mail)
