"""Admin pages: records — transcripts (search, view, download as text or CSV, delete).
Tickets and the mail outbox have their pages in `web.admin.tickets`; what these pages
share with the moderation pages is in `web.admin.views`.

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

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from component.core.feedback import MAX_RATING
from component.core.models import ChatEvent, EventKind, Incident
from component.core.stats import MAX_YEAR, MIN_YEAR
from component.store.transcripts import ChatSummary
from web.admin import auth
from web.admin.layout import render
from web.admin.views import (
    CHAT_COLUMNS,
    MESSAGE_COLUMNS,
    PAGE_SIZE,
    chat_address,
    chat_facts,
    csv_text,
    download,
    entries,
    page_links,
    page_number,
    path_id,
    sealed,
    visible_incidents,
    visible_queue_ids,
    when,
)
from web.guarded import guarded_router
from web.keys import SERVICE

CSV_MAX_ROWS = 10_000
MAX_SEARCH_TEXT = 200


async def load_chat(request: web.Request, chat_id: int) -> ChatSummary:
    """The chat, or 404 if it does not exist or belongs to another group."""
    chat = await request.app[SERVICE].store.transcripts.summary(chat_id)
    if chat is None:
        raise web.HTTPNotFound(text="Not found.")
    auth.check_group(request, chat.group_id)
    return chat


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
    """A search's date, or None for one not written YYYY-MM-DD or outside the years a
    search may name (the day after 9999-12-31 does not exist)."""
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if MIN_YEAR <= day.year <= MAX_YEAR else None


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
    page = await request.app[SERVICE].store.transcripts.search(
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
    tags = await request.app[SERVICE].store.transcripts.tag_names(visible_queue_ids(request))
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
    # The patron's rating too (not the comment: this file holds no chat text).
    scores = await request.app[SERVICE].store.ratings.scores([c.id for c in chats])
    rows: list[Sequence[object]] = [(*CHAT_COLUMNS, "rating")]
    rows += [[*(chat_facts(c)[k] for k in CHAT_COLUMNS), scores.get(c.id, "")] for c in chats]
    stamp = request.app[SERVICE].clock().astimezone(UTC)
    return download(csv_text(rows), f"transcripts-{stamp:%Y%m%d-%H%M}.csv", "text/csv")


# One transcript -------------------------------------------------------------------------------


async def transcript(request: web.Request) -> web.Response:
    """GET /admin/transcripts/{id} (add ?verbatim=1 to open a sealed chat, admins only)."""
    chat = await load_chat(request, path_id(request, "chat_id"))
    store = request.app[SERVICE].store
    incidents = await store.incidents.for_chat(chat.id)
    is_sealed = sealed(chat, incidents)
    verbatim = request.query.get("verbatim") == "1"
    if verbatim and is_sealed:
        auth.require_admin(request)
    events = await store.chats.events_after(chat.id, 0)
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
            "rating": await store.ratings.comment(chat.id),
            "max_rating": MAX_RATING,
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
    chat = await load_chat(request, path_id(request, "chat_id"))
    store = request.app[SERVICE].store
    if sealed(chat, await store.incidents.for_chat(chat.id)) and (
        request.query.get("verbatim") != "1" or auth.current(request).admin.role != "admin"
    ):
        raise web.HTTPForbidden(
            text="This chat was flagged explicit: only an admin can download its text, "
            "from the chat's page after choosing 'Show verbatim text'."
        )
    return chat, await store.chats.events_after(chat.id, 0)


# The patron's end-of-chat rating, in the one-chat CSV between the chat's facts and its
# entries (filled on the chat's row only).
RATING_COLUMNS = ("rating", "rating_comment")


async def _rating(request: web.Request, chat_id: int) -> tuple[int, str | None] | None:
    """The chat's rating and comment, for the downloads (whose callers have checked that
    the admin may see the chat)."""
    return await request.app[SERVICE].store.ratings.comment(chat_id)


def _rating_line(rating: tuple[int, str | None] | None) -> str:
    """The text download's rating line: "4/5: comment", "4/5", or "-" when not rated."""
    if rating is None:
        return "-"
    score, comment = rating
    if not comment:
        return f"{score}/{MAX_RATING}"
    # A comment of several lines stays under its heading: indented, a continuation line
    # cannot pass for a transcript entry ("[time] name: ...") of its own.
    return f"{score}/{MAX_RATING}: " + comment.replace("\n", "\n          ")


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
        f"Rating:   {_rating_line(await _rating(request, chat.id))}",
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
    rating = await _rating(request, chat.id)
    rows: list[Sequence[object]] = [CHAT_COLUMNS + RATING_COLUMNS + MESSAGE_COLUMNS]
    rows.append(
        [facts[k] for k in CHAT_COLUMNS]
        + ([rating[0], rating[1] or ""] if rating else ["", ""])
        + [""] * len(MESSAGE_COLUMNS)
    )
    blank = [""] * (len(CHAT_COLUMNS) + len(RATING_COLUMNS) - 1)
    for entry in entries(events):
        rows.append(
            [str(chat.id), *blank, entry.seq, entry.at, entry.kind, entry.sender, entry.who,
             entry.text]
        )  # fmt: skip
    return download(csv_text(rows), f"chat-{chat.id}.csv", "text/csv")


async def delete_page(request: web.Request) -> web.Response:
    """GET /admin/transcripts/{id}/delete: the confirmation page."""
    chat = await load_chat(request, path_id(request, "chat_id"))
    return await _delete_form(request, chat, error=None)


async def _delete_form(
    request: web.Request, chat: ChatSummary, *, error: str | None, status: int = 200
) -> web.Response:
    store = request.app[SERVICE].store
    incidents = await store.incidents.for_chat(chat.id)
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
    chat = await load_chat(request, path_id(request, "chat_id"))
    form = await request.post()
    store = request.app[SERVICE].store
    blocker = _delete_blocker(request, chat, await store.incidents.for_chat(chat.id))
    if blocker:
        return await _delete_form(request, chat, error=blocker, status=409)
    if form.get("confirm") != "yes":
        return await _delete_form(
            request, chat, error="Tick the box to confirm the deletion.", status=400
        )
    if not await store.transcripts.delete(chat.id):
        return await _delete_form(
            request, chat, error="The chat could not be deleted (is it open again?).", status=409
        )
    raise web.HTTPSeeOther(
        "/admin/transcripts?" + urlencode({"done": f"Chat #{chat.id} and its transcript deleted."})
    )


def add_routes(app: web.Application) -> None:
    """Register this module's pages."""
    r = guarded_router(app)
    r.add_get("/admin/transcripts", transcripts)
    r.add_get("/admin/transcripts.csv", transcripts_csv)
    r.add_get(r"/admin/transcripts/{chat_id:\d+}", transcript)
    r.add_get(r"/admin/transcripts/{chat_id:\d+}.txt", transcript_text)
    r.add_get(r"/admin/transcripts/{chat_id:\d+}.csv", transcript_csv)
    r.add_get(r"/admin/transcripts/{chat_id:\d+}/delete", delete_page)
    r.add_post(r"/admin/transcripts/{chat_id:\d+}/delete", delete)
