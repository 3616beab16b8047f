"""A real SMTP server for the tests (aiosmtpd), collecting what refdesk sends."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session

from component.core.emails import parse_bytes
from component.prosody import free_port


@dataclass
class Delivered:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    # The bytes exactly as they came over SMTP, for tests that inspect the raw headers.
    raw: bytes = b""

    def text(self) -> str:
        """The plain-text part."""
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())


class MailSink:
    """Start with `start()`, stop with `stop()` (and start again on the same port, to play
    an SMTP server that was down). `received` holds every accepted message."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Delivered] = []
        self._controller: Controller | None = None
        self._arrived = asyncio.Event()
        # Seconds to wait, once a message is taken, before answering its DATA: a server
        # slow to say it has it (the message counts as received at once).
        self.reply_delay = 0.0

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert envelope.mail_from is not None and isinstance(envelope.content, bytes)
        self.received.append(
            Delivered(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                parse_bytes(envelope.content),
                envelope.content,
            )
        )
        self._arrived.set()
        if self.reply_delay:
            await asyncio.sleep(self.reply_delay)
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Delivered]:
        """Wait until at least `count` messages arrived; returns them all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.received) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"expected {count} emails, got {len(self.received)}: "
                    f"{[m.message['Subject'] for m in self.received]}"
                )
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(remaining, 0.5))
        return list(self.received)

    def to(self, address: str) -> list[Delivered]:
        return [m for m in self.received if address in m.rcpt_tos]
