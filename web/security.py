"""HTTP security headers for the pages refdesk serves."""

from __future__ import annotations

import re

from aiohttp import web

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
