"""The embed code and direct link the queue page shows for a queue: what a partner site
pastes to get the widget, and the page patrons can be sent to instead."""

from __future__ import annotations

from component.core.models import Queue


def embed_snippet(public_url: str, queue: Queue) -> str:
    """The `<script>` tag a partner site pastes (the template escapes it for display).
    Queue names are plain (lower-case letters, digits, '.', '-', '_'), so it needs no
    quoting of its own."""
    return (
        f'<script src="{public_url.rstrip("/")}/embed.js" data-queue="{queue.name}" async></script>'
    )


def direct_link(public_url: str, queue: Queue) -> str:
    """The full-page chat of the queue (for an email signature or a QR code)."""
    return f"{public_url.rstrip('/')}/chat/{queue.name}"
