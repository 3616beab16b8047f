"""The status endpoint's answer, encoded once per change instead of once per request.

`GET /api/queues/{queue}/status` is loaded by every page view of every partner site. Its
answer changes only when the queue's status does, so `StatusBodies` keeps, per queue, the
encoded body with its ETag and headers; the handler hands them out as they are, and answers
`If-None-Match` with 304 so browsers and proxies (`Cache-Control` lets them keep it five
seconds) need not fetch the same bytes again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from multidict import CIMultiDict

from component.live import QueueInfo
from web.security import STRICT_HEADERS

MAX_AGE = 5
# Every answer of the status endpoint, errors included, carries STRICT_HEADERS itself: the
# app's answer hook (web.app), run for every answer, then finds them there and adds nothing.


@dataclass(frozen=True, slots=True)
class StatusBody:
    """One queue's encoded answer."""

    info: QueueInfo
    email: bool
    body: bytes
    etag: str
    # Every header the answer needs, those the app's middleware would otherwise add
    # included, as the mapping type aiohttp keeps (copied per response, in C).
    headers: CIMultiDict[str]


class StatusBodies:
    """Created once per web application (`web.keys.STATUS_BODIES`); asked by the status
    handler on every request."""

    def __init__(self) -> None:
        self._bodies: dict[str, StatusBody] = {}

    def get(self, info: QueueInfo, email: bool) -> StatusBody:
        """The encoded answer for the queue's status as `info` says; encoded again only
        when the status, the title or whether the queue takes email changed (the counts in
        `info` are not part of the answer)."""
        cached = self._bodies.get(info.queue)
        # The status is reused for a second, so mostly the very same object comes back:
        # the identity test spares comparing its fields on every request.
        if (
            cached is not None
            and cached.email is email
            and (
                cached.info is info
                or (cached.info.status is info.status and cached.info.title == info.title)
            )
        ):
            return cached
        # What the widget shows, and no more: the endpoint is open to anyone, and how
        # many operators are on or patrons waiting is the desk's business (the admin
        # live page and /metrics show it to staff).
        body = json.dumps(
            {
                "queue": info.queue,
                "title": info.title,
                "status": info.status.value,
                "email": email,
            }
        ).encode()
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        made = StatusBody(
            info,
            email,
            body,
            etag,
            CIMultiDict(
                {
                    "Content-Type": "application/json; charset=utf-8",
                    "Access-Control-Allow-Origin": "*",
                    "Cache-Control": f"public, max-age={MAX_AGE}",
                    "ETag": etag,
                    **STRICT_HEADERS,
                }
            ),
        )
        self._bodies[info.queue] = made
        return made


def error_headers() -> dict[str, str]:
    """Headers for the status endpoint's error answers (an unknown queue), which the app's
    route wrapper does not see either. Called by the handler per error answer."""
    return {
        "Access-Control-Allow-Origin": "*",
        "Cache-Control": f"public, max-age={MAX_AGE}",
        **STRICT_HEADERS,
    }


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (or is "*"); weak tags compare equal
    (RFC 9110 13.1.2: If-None-Match uses the weak comparison)."""
    if not if_none_match:
        return False
    if len(if_none_match) > 1024:  # no ETag of ours is that long: not worth splitting
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


__all__ = ["MAX_AGE", "StatusBodies", "StatusBody", "error_headers", "etag_matches"]
