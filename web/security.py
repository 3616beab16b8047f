"""HTTP security headers for the pages refdesk serves."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from aiohttp import web

# The headers every answer of the app carries (web.app adds them), in their strictest form,
# for answers that show nothing a browser would run or frame (JSON, plain text): the status
# endpoint's answers (which bring their own, see web.status_body), the standby's 503 and
# the connection door's refusals (written before the app sees the connection).
STRICT_HEADERS: Mapping[str, str] = MappingProxyType(
    {
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
    }
)

# A source expression CSP accepts for frame-ancestors: a scheme+host(+port) or '*'.
_ORIGIN = re.compile(r"^(\*|https?://(\*\.)?[a-z0-9.-]+(:[0-9]{1,5})?)$", re.IGNORECASE)


def frame_ancestors(allowed: str) -> str:
    """The `frame-ancestors` value for a queue's allowed partner sites (space-separated
    origins, or '*'). Anything that is not a plain origin is dropped, so a bad setting can
    never inject other directives."""
    sources = [s for s in allowed.split() if _ORIGIN.match(s)]
    if not sources:
        return "'none'"
    if "*" in sources:
        return "*"
    return " ".join(["'self'", *sources])


def content_security_policy(request: web.Request, ancestors: str = "*") -> str:
    """Patron pages may be framed by the partner sites in `ancestors` (a queue's allowed
    origins); admin pages pass "" so they cannot be framed at all. Nothing may run that
    we did not serve."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: https:",
            f"connect-src 'self' ws://{request.host} wss://{request.host}",
            "base-uri 'none'",
            "form-action 'self'",
            f"frame-ancestors {frame_ancestors(ancestors)}",
        ]
    )
