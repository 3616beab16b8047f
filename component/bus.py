"""A tiny synchronous publish/subscribe bus for domain events.

The service publishes; the XMPP adapter and the web hub subscribe at start-up. Handlers
must be quick and must not await: they queue work (a stanza, a WebSocket frame) and
return, so the order of events is the order of publication for every subscriber.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from component.core.events import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._handlers: list[Handler] = []

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Register `handler`; returns a function that unregisters it."""
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def publish(self, event: Event) -> None:
        for handler in list(self._handlers):
            try:
                handler(event)
            except Exception:
                # One broken subscriber must not stop the others from hearing the event.
                log.exception("event handler %r failed on %r", handler, event)
