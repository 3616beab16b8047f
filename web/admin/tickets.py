"""Admin pages: tickets with the status of their emails, and the mail outbox.

Scope: an admin sees every queue; a group coordinator only their group's queues. Another
group's ticket or email answers 404 whatever the URL (see `auth.check_group`).
"""

from __future__ import annotations

from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from component.core.events import MailQueued
from component.core.models import OutboxMail
from web.admin.layout import render
from web.admin.views import (
    PAGE_SIZE,
    check_queue,
    int_param,
    page_links,
    page_number,
    path_id,
    visible_queue_ids,
    when,
)
from web.guarded import guarded_router
from web.keys import SERVICE


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
    rows, total = await service.store.tickets.rows(
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


async def ticket(request: web.Request) -> web.Response:
    """GET /admin/tickets/{id}"""
    service = request.app[SERVICE]
    row = await service.store.tickets.row(path_id(request, "ticket_id"))
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
    row = await service.store.tickets.row(path_id(request, "ticket_id"))
    if row is None:
        raise web.HTTPNotFound(text="Not found.")
    check_queue(request, row.queue_id)
    status = (await request.post()).get("status")
    if status not in ("open", "closed"):
        raise web.HTTPBadRequest(text="Unknown ticket status.")
    await service.store.tickets.set_status(row.id, str(status))
    done = f"Ticket #{row.id} {'closed' if status == 'closed' else 'reopened'}."
    raise web.HTTPSeeOther(f"/admin/tickets/{row.id}?" + urlencode({"done": done}))


async def mail(request: web.Request) -> web.Response:
    """GET /admin/mail: the outbox, failed emails first."""
    service = request.app[SERVICE]
    page = page_number(request)
    rows, total = await service.store.mail.page(
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
    found = await service.store.mail.status(mail_id) if mail_id else None
    if found is None:
        raise web.HTTPNotFound(text="Not found.")
    check_queue(request, found.queue_id)
    if await service.store.mail.retry(found.mail.id, service.clock()):
        service.bus.publish(MailQueued())
        done = f"Email #{found.mail.id} is queued again and will be sent now."
    else:
        done = f"Email #{found.mail.id} had not failed: nothing to retry."
    raise web.HTTPSeeOther("/admin/mail?" + urlencode({"done": done}))


def add_routes(app: web.Application) -> None:
    """Register this module's pages."""
    r = guarded_router(app)
    r.add_get("/admin/tickets", tickets)
    r.add_get(r"/admin/tickets/{ticket_id:\d+}", ticket)
    r.add_post(r"/admin/tickets/{ticket_id:\d+}/status", ticket_status)
    r.add_get("/admin/mail", mail)
    r.add_post(r"/admin/mail/{mail_id:\d+}/retry", retry_mail)
