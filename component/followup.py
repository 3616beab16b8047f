"""Email follow-up: offline questions, referrals and transcript copies.

Owned by the service (`service.followup`). Each action validates what the patron or
operator typed, builds the emails (component.core.emails), commits them to the outbox
with their ticket in one transaction, and announces `MailQueued` so the outbox worker
sends them at once.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Any, Protocol

from component.bus import EventBus
from component.core import emails, validators
from component.core.errors import BadCommand, DeskError, InvalidInput, UnknownQueue
from component.core.events import ChatEnded, Event, MailQueued
from component.core.exempt_contact import MAX_DRAFT_CHARS
from component.core.models import (
    ChatEvent,
    ChatState,
    EventKind,
    Group,
    NewMail,
    Queue,
    Sender,
)
from component.core.patron_text import TRANSCRIPT_MAIL, PatronText, language, line, rendered
from component.live import Held, LiveChat
from component.moderation import Banned, Moderation, RateLimited
from component.store import Store
from component.store.exempt_contacts import ContactDraft


class FollowUpHost(Protocol):
    """What `FollowUp` needs from the service that owns it (`DeskService` provides it;
    named here so this module never imports the service)."""

    store: Store
    bus: EventBus
    domain: str
    max_message_chars: int
    moderation: Moderation

    def clock(self) -> datetime: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def queue(self, name: str) -> Queue: ...

    def queue_by_id(self, queue_id: int) -> Queue: ...

    def chat_state(self, chat_id: int) -> ChatState: ...

    async def history(self, chat_id: int, after_seq: int) -> list[ChatEvent]: ...

    async def chat_for_token(self, resume: str) -> LiveChat | None: ...

    async def system_message(self, held: Held, text: str | PatronText) -> None: ...

    async def close_as_followed_up(self, live: LiveChat, ticket_id: int) -> None: ...

    def ban_text(self, queue_name: str | None, seen: str | None = None) -> str: ...

    def group_of(self, queue: Queue) -> Group | None: ...


log = logging.getLogger(__name__)


class FormError(DeskError):
    """A field of the email form is not acceptable; `field` names it for the widget."""

    code = "bad_field"

    def __init__(self, field: str | None, text: str) -> None:
        super().__init__(text)
        self.field = field


class NoEmailFollowUp(DeskError):
    code = "no_email"


def _mail(purpose: str, msg: EmailMessage) -> NewMail:
    return NewMail(purpose, tuple(emails.envelope_recipients(msg)), emails.render_bytes(msg))


def _already_sent() -> InvalidInput:
    return InvalidInput(
        "transcript_sent", "A copy of this chat has already been emailed; it is sent only once."
    )


def transcript_lines(events: Sequence[ChatEvent], lang: str = "en") -> list[emails.TranscriptLine]:
    """The patron-visible transcript (no staff notes) as email lines, for the patron's
    copy in their language `lang`: the service's own lines from the patron-line catalogue,
    "You" and "(corrected)" in that language; what operators and the patron wrote as
    written."""
    words = TRANSCRIPT_MAIL.get(lang, TRANSCRIPT_MAIL["en"])
    lines = []
    for e in events:
        if not e.kind.patron_sees:
            continue
        who = {Sender.PATRON: words["you"], Sender.OPERATOR: e.name}.get(e.sender, "—")
        if e.corrected:
            who = words["corrected"].format_map({"who": who})
        text = rendered(e.code, e.params, lang, e.text)
        lines.append(emails.TranscriptLine(e.ts, who, text))
    return lines


def staff_transcript(events: Sequence[ChatEvent]) -> list[emails.TranscriptLine]:
    """The transcript for staff: the patron is "Patron", notes included and marked."""
    lines = []
    for e in events:
        if e.kind is EventKind.NOTE:
            lines.append(emails.TranscriptLine(e.ts, f"{e.name} (note)", e.text))
        else:
            who = {Sender.PATRON: "Patron", Sender.OPERATOR: e.name}.get(e.sender, "—")
            lines.append(emails.TranscriptLine(e.ts, _corrected(who, e), e.text))
    return lines


def _corrected(who: str, event: ChatEvent) -> str:
    """A line its operator corrected after sending (XEP-0308) keeps its final text and
    says so after the name."""
    return f"{who} (corrected)" if event.corrected else who


class FollowUp:
    def __init__(self, service: FollowUpHost, from_address: str) -> None:
        self.service = service
        self.from_address = from_address
        self._msgid_domain = service.domain
        service.bus.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ChatEnded):
            self.service.spawn(self._transcript_at_end(event.chat_id))

    async def _transcript_at_end(self, chat_id: int) -> None:
        """In a task when a chat ends: send the copy asked for, if any."""
        await self.send_transcript_if_asked(chat_id)

    def takes_email(self, queue: Queue) -> bool:
        return bool(queue.followup_email)

    async def submit_question(
        self,
        queue_name: str,
        *,
        email: object,
        name: object,
        question: object,
        origin_ip: str | None,
        resume: object = None,
        page: str | None = None,
    ) -> int:
        """The offline / email follow-up form (POST /api/queues/{queue}/questions).
        Returns the ticket id once the ticket and its emails are committed. With a valid
        `resume` token the patron's chat so far is attached and the chat is closed as
        followed up by email."""
        service = self.service
        queue = service.queue(queue_name)
        if not queue.followup_email:
            raise NoEmailFollowUp("This service does not take questions by email.")
        try:
            address = emails.validate_address(email)
            patron_name = emails.validate_name(name)
            text = emails.validate_question(question, service.max_message_chars)
        except emails.FieldError as exc:
            raise FormError(exc.field, str(exc)) from None
        # A flood of emailed questions is as much abuse as a flood of chats, and each one
        # mails a receipt to the address typed: the mail limits apply too.
        await service.moderation.admit_new_chat(origin_ip, queue.id)
        await service.moderation.admit_mail(origin_ip, address, queue.id)
        live = await service.chat_for_token(resume) if isinstance(resume, str) else None
        history = await service.history(live.id, 0) if live else []
        lines = transcript_lines(history)
        now = service.clock()
        to_addr = queue.followup_email

        def build(ticket_id: int) -> list[NewMail]:
            return [
                _mail(
                    "ticket",
                    emails.offline_ticket(
                        self.from_address,
                        to_addr,
                        ticket_id,
                        queue.title,
                        address,
                        patron_name,
                        text,
                        lines,
                        page,
                        msgid_domain=self._msgid_domain,
                        now=now,
                    ),
                ),
                _mail(
                    "confirmation",
                    emails.ticket_confirmation(
                        self.from_address,
                        address,
                        ticket_id,
                        queue.title,
                        text,
                        msgid_domain=self._msgid_domain,
                        now=now,
                    ),
                ),
            ]

        ticket_id = await service.store.tickets.create(
            kind="offline",
            queue_id=queue.id,
            question=text,
            now=now,
            mails=build,
            chat_id=live.id if live else None,
            name=patron_name,
            email=address,
            origin_ip=origin_ip,
        )
        service.bus.publish(MailQueued())
        if live is not None:
            await service.close_as_followed_up(live, ticket_id)
        return ticket_id

    async def refer(self, held: Held, op_name: str, op_id: int, argument: str) -> str:
        """`!refer [email]`: file the chat by email to the queue's referral address (or the
        one given), with the transcript. Called by the `!refer` command, inside the hold."""
        service = self.service
        live = held.live
        queue = live.queue
        target = argument.strip()
        if target:
            try:
                to_addr = emails.validate_address(target)
            except emails.FieldError as exc:
                raise BadCommand(f"{target[:80]!r}: {exc}") from None
            group = service.group_of(queue)
            domains = group.referral_domains if group is not None else ()
            try:
                validators.referral_address(to_addr, domains)
            except ValueError as exc:
                raise BadCommand(str(exc)) from None
            # An address typed in a chat (perhaps as a patron asked) counts against the
            # mail limits of the patron's address and of the recipient, as a patron's would.
            try:
                await service.moderation.admit_mail(live.ip, to_addr, queue.id)
            except RateLimited as exc:
                raise BadCommand(f"Not referred: {exc.text}") from None
        elif queue.referral_email or queue.followup_email:
            to_addr = queue.referral_email or queue.followup_email or ""
        else:
            raise BadCommand(
                "This queue has no referral address: give one, as in !refer ill@library.org."
            )
        events = await service.store.chats.events_after(live.id, 0)
        question = next((e.text for e in events if e.sender is Sender.PATRON), "(no question)")
        patron_email = await service.store.chats.transcript_email(live.id)
        now = service.clock()

        def build(ticket_id: int) -> list[NewMail]:
            return [
                _mail(
                    "referral",
                    emails.referral(
                        self.from_address,
                        to_addr,
                        ticket_id,
                        queue.title,
                        op_name,
                        patron_email,
                        None,
                        staff_transcript(events),
                        msgid_domain=self._msgid_domain,
                        now=now,
                    ),
                )
            ]

        ticket_id = await service.store.tickets.create(
            kind="referral",
            queue_id=queue.id,
            question=question,
            now=now,
            mails=build,
            chat_id=live.id,
            email=patron_email,
            operator_id=op_id,
        )
        service.bus.publish(MailQueued())
        told = line("referred_to_email", email=patron_email) if patron_email else line("referred")
        await service.system_message(held, told)
        return f"Referred to {to_addr} (ticket #{ticket_id}). The patron was told."

    async def send_exempt_contact(
        self, group: Group, draft_id: int, text: str, actor: str
    ) -> ContactDraft:
        """An admin sends the drafted message to an exempt network's contact (perhaps
        edited): through the outbox, within the mail limits of the recipient. Called by
        the admin group page. Raises InvalidInput for an unusable text or a draft already
        sent, RateLimited when the contact has had too much mail lately."""
        contacts = self.service.store.exempt_contacts
        draft = await contacts.draft(group.id, draft_id)
        if draft is None:
            raise InvalidInput("no_draft", "There is no such draft.")
        if draft.status != "draft":
            raise InvalidInput("sent", "This message has been sent already.")
        try:
            body = validators.optional_text(text, MAX_DRAFT_CHARS)
        except ValueError as exc:
            raise InvalidInput("bad_text", str(exc)) from None
        if body is None:
            raise InvalidInput("bad_text", "Write the message before sending it.")
        self.service.moderation.admit_staff_mail(draft.contact_email)
        now = self.service.clock()
        msg = emails.facility_contact(
            self.from_address,
            draft.contact_email,
            group.title,
            body,
            msgid_domain=self._msgid_domain,
            now=now,
        )
        if not await contacts.send(
            draft.id, body=body, mail=_mail("exempt-contact", msg), actor=actor, now=now
        ):
            raise InvalidInput("sent", "This message has been sent already.")
        self.service.bus.publish(MailQueued())
        sent = await contacts.draft(group.id, draft.id)
        assert sent is not None
        return sent

    async def on_call_alert(self, queue: Queue, addresses: Sequence[str], text: str) -> None:
        """Email the on-call operators who gave an address (the XMPP message went too)."""
        now = self.service.clock()
        for address in addresses:
            msg = emails.on_call_alert(
                self.from_address,
                address,
                queue.title,
                text,
                msgid_domain=self._msgid_domain,
                now=now,
            )
            await self.service.store.mail.enqueue(_mail("on-call", msg), now)
        self.service.bus.publish(MailQueued())

    async def request_transcript(
        self, chat_id: int, email: object, origin_ip: str | None = None, lang: object = None
    ) -> str:
        """A patron asks for a copy of the chat (a `transcript` frame); returns the
        validated address. The copy is sent when the chat ends, or at once if it already
        has. One address per chat: a new one replaces the one given before, and once the
        copy has gone, later requests are refused rather than mailed. `lang` is the
        widget's language (`patron_text.language` reads it; English otherwise): the copy's
        own wording comes in it. It is stored with the address, so a restart of refdesk
        after the patron's page has gone does not lose it.

        Refused with a `DeskError` (an error frame for the patron): a bad address, a
        banned `origin_ip` (a banned patron gets no email), a copy already sent, and a
        request over the mail rate limits (`Moderation.admit_mail`).
        """
        service = self.service
        try:
            address = emails.validate_address(email)
        except emails.FieldError as exc:
            raise InvalidInput("bad_email", str(exc)) from None
        chat = await service.store.chats.by_id(chat_id)
        try:
            queue = service.queue_by_id(chat.queue_id) if chat is not None else None
        except UnknownQueue:
            queue = None
        if service.moderation.banned(origin_ip) is not None:
            raise Banned(service.ban_text(queue.name if queue is not None else None, origin_ip))
        if await service.store.mail.transcript_mailed(chat_id):
            raise _already_sent()
        # The same address again (a resend, a reconnect) is not a new email.
        if await service.store.chats.transcript_email(chat_id) != address:
            queue_id = queue.id if queue is not None else None
            await service.moderation.admit_mail(origin_ip, address, queue_id)
            await service.store.chats.set_transcript_email(chat_id, address)
        await service.store.chats.set_transcript_lang(chat_id, language(lang))
        if service.chat_state(chat_id).open:
            return address
        if not await self.send_transcript_if_asked(chat_id):
            raise _already_sent()
        return address

    async def send_transcript_if_asked(self, chat_id: int) -> bool:
        """Queue the transcript copy for the address the patron gave, if any and if none
        was queued before; returns whether this call queued it. Called when a chat ends
        and for a request after the end."""
        service = self.service
        address = await service.store.chats.transcript_email(chat_id)
        if not address:
            return False
        chat = await service.store.chats.by_id(chat_id)
        if chat is None:
            return False
        try:
            queue = service.queue_by_id(chat.queue_id)
        except UnknownQueue:
            return False
        # Read back through `language`: English for a chat from before the column (and
        # for anything else a hand-edited database might hold).
        lang = language(await service.store.chats.transcript_lang(chat_id))
        lines = transcript_lines(await service.store.chats.events_after(chat_id, 0), lang)
        msg = emails.transcript_copy(
            self.from_address,
            address,
            queue.title,
            lines,
            reply_to=queue.followup_email,
            msgid_domain=self._msgid_domain,
            now=service.clock(),
            lang=lang,
        )
        # Once only, in one transaction: a second end, a resend of the request or two
        # requests at once must not mail it twice.
        if not await service.store.mail.enqueue_transcript(
            chat_id, _mail("transcript", msg), service.clock()
        ):
            return False
        service.bus.publish(MailQueued())
        return True
