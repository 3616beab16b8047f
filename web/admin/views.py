"""What the records and moderation pages share: who may see which queue's records,
addresses as the queue's privacy mode allows now, paging, times, transcript entries,
and CSV and text downloads."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from component.core.models import ChatEvent, EventKind, Incident, Sender
from component.core.privacy import stored_address
from component.store.transcripts import ChatSummary
from web.admin import auth
from web.keys import SERVICE

PAGE_SIZE = 50

# Cells a spreadsheet would take for a formula (and tab/CR, which some read as one).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


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


def path_id(request: web.Request, name: str) -> int:
    """The record number in the URL's `{name}` part; 404 when it is not one (a record
    page's handler calls it first, before any look-up)."""
    number = int_param(request.match_info[name])
    if number is None:
        raise web.HTTPNotFound(text="Not found.")
    return number


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
