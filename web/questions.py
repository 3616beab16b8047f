"""POST /api/queues/{queue}/questions: the offline / email follow-up form.

JSON `{"email", "name", "question", "resume"?}` (or the same fields form-encoded) →
201 `{"ticket": id}`; 400 `{"error": text, "field": name}` for a field the patron must
fix; 404 for an unknown queue or one that takes no email.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from component.core.errors import UnknownQueue
from component.followup import FormError, NoEmailFollowUp
from component.moderation import RateLimited
from web.frames import FrameError, decode_object
from web.keys import SERVICE
from web.patron import request_origin

_FIELDS = ("email", "name", "question", "resume")
# A question of the longest allowed length in 4-byte characters, plus the other fields.
MAX_BODY = 32 * 1024


def _error(
    status: int, text: str, field: str | None = None, code: str | None = None
) -> web.Response:
    """The form's refusal; `code` (as in error frames) lets the widget say it in the
    patron's language."""
    return web.json_response({"error": text, "field": field, "code": code}, status=status)


async def _fields(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        try:
            body = decode_object(await request.read(), max_bytes=MAX_BODY)
        except FrameError as exc:
            raise FormError(None, f"The form could not be read: {exc.text}") from None
        return {k: body.get(k) for k in _FIELDS}
    try:
        form = await request.post()
    except (ValueError, UnicodeDecodeError):  # a body that is not form data in UTF-8
        raise FormError(None, "The form could not be read.") from None
    return {k: form.get(k) for k in _FIELDS}


async def submit_question(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    queue = request.match_info["queue"]
    origin = request_origin(request)
    if request.content_length is None:
        return _error(411, "The form must be sent with a Content-Length.")
    if request.content_length > MAX_BODY:
        return _error(413, "The form is too large.")
    if service.moderation.banned(origin.ip) is not None:
        notice = service.ban_notice(queue, origin.ip)
        body = {"error": notice.text, "field": None, "address": notice.address}
        return web.json_response({**body, "appeal": notice.appeal}, status=403)
    try:
        fields = await _fields(request)
        ticket = await service.followup.submit_question(
            queue,
            email=fields["email"],
            name=fields["name"],
            question=fields["question"],
            resume=fields["resume"],
            origin_ip=origin.ip,
            page=origin.referrer,
        )
    except FormError as exc:
        return _error(400, exc.text, exc.field)
    except (UnknownQueue, NoEmailFollowUp) as exc:
        return _error(404, exc.text, code=exc.code)
    except RateLimited as exc:
        return _error(429, exc.text, code=exc.code)
    return web.json_response({"ticket": ticket}, status=201)
