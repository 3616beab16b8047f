"""The mail outbox worker: sends what the store's outbox holds, retrying with back-off.

Emails are committed to the database first (with the ticket they belong to); this worker
sends them afterwards, marks each one sent, or schedules a retry when the SMTP server is
down or answers 4xx, or gives up on a permanent (5xx) refusal so admins can see it.
One worker per process and each row is marked right after its SMTP transaction, so an
email is never sent twice while the process lives; only a crash between the server's
"250 OK" and the mark could repeat one, which is the safe side of that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from component.clock import Clock
from component.core.models import OutboxMail
from component.mailer import PermanentMailError, TemporaryMailError, retry_delay
from component.store import Store

log = logging.getLogger(__name__)

# Longest sleep between checks even when nothing is due (the store may get mail from
# another process, e.g. a CLI command).
MAX_IDLE = 30.0
# Seconds `stop` lets an email being handed over finish (a local relay answers in
# milliseconds; a remote one under load in a few seconds); well inside systemd's default
# stop timeout of 90 s.
STOP_GRACE = 10.0


class Sender(Protocol):
    """What sends one email (component.mailer.SmtpSender in production)."""

    async def send_bytes(self, data: bytes, sender: str, recipients: Sequence[str]) -> None: ...


class MailOutbox:
    """Created by the composition root; `start()` runs the worker, `wake()` after
    enqueueing makes it look at once, `stop()` at shutdown."""

    def __init__(
        self,
        store: Store,
        sender: Sender,
        envelope_from: str,
        clock: Clock,
    ) -> None:
        self.store = store
        self.sender = sender
        self.envelope_from = envelope_from
        self.scheduler = clock
        self.clock = clock.now
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Set by stop(): the worker also checks it, because a cancel can be lost on Python
        # 3.11 (asyncio.wait_for, used inside aiosmtplib too, swallows one that arrives as
        # the awaited thing completes), which left stop() waiting for the next idle period.
        self._stopping = False
        # Two passes at once could both pick a message before either marks it sent.
        self._pass = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mail-outbox")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop the worker; called by the composition root at shutdown, before the store
        closes. An email being handed to the SMTP server is let finish and be marked sent,
        for at most STOP_GRACE seconds: cut off after the server took it but before it was
        marked, it would be sent again after the restart. Then the worker is cancelled."""
        self._stopping = True
        self._wake.set()
        task = self._task
        if task is None:
            return
        with contextlib.suppress(TimeoutError):
            # The worker returns by itself once `_stopping` is seen between two emails.
            await asyncio.wait_for(asyncio.shield(task), STOP_GRACE)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.send_due()
                delay = await self._idle_time()
            except Exception:
                log.exception("mail outbox pass failed")
                delay = MAX_IDLE
            if self._stopping:
                return
            # Woken by new mail (`wake`) or, on the injected clock, when the next is due.
            timer = self.scheduler.call_later(delay, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()

    async def _idle_time(self) -> float:
        due = await self.store.mail.next_due()
        if due is None:
            return MAX_IDLE
        return min(MAX_IDLE, max(0.0, (due - self.clock()).total_seconds()))

    async def send_due(self) -> int:
        """Send every email that is due now; returns how many were sent. Also called
        directly by tests and the CLI."""
        sent = 0
        async with self._pass:
            while True:
                batch = await self.store.mail.due(self.clock())
                if not batch:
                    return sent
                for mail in batch:
                    if self._stopping:
                        return sent
                    if await self._send_one(mail):
                        sent += 1

    async def _send_one(self, mail: OutboxMail) -> bool:
        try:
            # The stored bytes, exactly: what was committed is what goes out.
            await self.sender.send_bytes(mail.message, self.envelope_from, mail.recipients)
        except TemporaryMailError as exc:
            delay = retry_delay(mail.attempts + 1)
            log.warning("mail %s (%s): %s; retrying in %.0f s", mail.id, mail.purpose, exc, delay)
            await self.store.mail.mark_retry(
                mail.id, self.clock() + timedelta(seconds=delay), str(exc)
            )
            return False
        except PermanentMailError as exc:
            log.error("mail %s (%s) refused for good: %s", mail.id, mail.purpose, exc)
            await self.store.mail.mark_failed(mail.id, str(exc))
            return False
        await self.store.mail.mark_sent(mail.id, self.clock())
        # Not the recipients: they may be patrons' addresses (the admin page shows them).
        log.info("mail %s (%s) sent", mail.id, mail.purpose)
        return True
