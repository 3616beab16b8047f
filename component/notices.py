"""The notices desk: who is told when a ban is made or lifted, an incident is opened or
closed, or a queue is left unstaffed during its service hours.

Owned by the service (`service.notices`). It listens on the service's bus (bans, lifts,
incident reports), is called by the admin page to close an incident with an outcome, and
by the service's tick and presence changes to watch staffing. Every email goes through
the mail outbox; every notice (email or XMPP line) is kept in the trail
(`store.notices`) that the admin page shows.

Who hears what:
- a group's coordinators (`coordinator_emails`): every ban made in a chat of the group's
  queues and every lift of such a ban; every incident report opened in those chats; the
  outcome of those incidents; a queue left unstaffed (and staffed again);
- the banned patron: a notice at each address they gave in the banned chat through their
  own session (the transcript request, the email form), never one an operator typed or one
  from another chat; rate-limited like every mail to an address a patron typed;
- the operator who reported an incident: its outcome (XMPP line, and email when they
  have an address);
- a queue's on-call operators: the queue left unstaffed, and staffed again.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, Protocol

from component.bus import EventBus
from component.clock import Clock, Timer
from component.core import emails, outcomes
from component.core.bans import Ban, format_duration
from component.core.errors import UnknownQueue
from component.core.events import (
    BanImposed,
    BansLifted,
    Event,
    IncidentOpened,
    MailQueued,
    OperatorNotice,
)
from component.core.hours import ServiceHours
from component.core.models import Group, Incident, NewMail, Operator, Queue
from component.core.staffing import Tell, Watch, resumed, step
from component.directory_cache import DirectoryCache
from component.live import Background, QueueInfo
from component.moderation import Moderation, RateLimited
from component.store import Store

log = logging.getLogger(__name__)

# What a banned patron is told was the reason: a category from the chat's tags, never the
# operator's own words (which are written for colleagues).
_CATEGORIES = (
    ("threat", "threatening messages"),
    ("harassment", "harassing messages"),
    ("explicit", "explicit or obscene messages"),
)
_DEFAULT_CATEGORY = "conduct against the service's rules of respectful use"


def ban_category(tags: Sequence[str]) -> str:
    """The reason category a banned patron reads, from the banned chat's tags."""
    for tag, text in _CATEGORIES:
        if tag in tags:
            return text
    return _DEFAULT_CATEGORY


def _when(ts: datetime) -> str:
    return f"{ts:%Y-%m-%d %H:%M} UTC"


def _target(ban: Ban) -> str:
    """The banned address, or the network when more than one address."""
    net = ban.network
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)


def _length(ban: Ban) -> str:
    if ban.ends_at is None:
        return "permanent"
    length = ban.ends_at - ban.starts_at
    if length.seconds == 0 and length.microseconds == 0:
        return f"{length.days} day{'s' if length.days != 1 else ''}"
    return format_duration(length)


class NoticesHost(Protocol):
    """What `Notices` needs from the service that owns it (`DeskService` provides it;
    named here so this module never imports the service)."""

    store: Store
    bus: EventBus
    scheduler: Clock
    background: Background
    directory: DirectoryCache
    moderation: Moderation

    def clock(self) -> datetime: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...

    def queue_info(self, name: str) -> QueueInfo: ...


class Notices:
    def __init__(
        self,
        service: NoticesHost,
        from_address: str,
        *,
        admin_url: str = "",
        unstaffed_after: float = 600.0,
    ) -> None:
        self.service = service
        self.from_address = from_address
        # The admin page's address (the service's public address): links in notices.
        self.admin_url = admin_url.rstrip("/")
        self.unstaffed_after = unstaffed_after
        self._watch: dict[int, Watch] = {}
        self._timers: dict[int, Timer] = {}
        service.bus.subscribe(self._on_event)

    @property
    def store(self) -> Store:
        return self.service.store

    def _on_event(self, event: Event) -> None:
        match event:
            case BanImposed():
                self.service.spawn(self._on_ban(event))
            case BansLifted():
                self.service.spawn(self._on_lift(event))
            case IncidentOpened():
                self.service.spawn(self._on_incident(event.incident_id))
            case _:
                pass

    # Helpers -----------------------------------------------------------------------------

    def _link(self, path: str) -> str | None:
        return f"{self.admin_url}{path}" if self.admin_url else None

    def _queue(self, queue_id: int | None) -> Queue | None:
        if queue_id is None:
            return None
        try:
            return self.service.directory.queue_by_id(queue_id)
        except UnknownQueue:
            return None

    def _group(self, queue: Queue | None) -> Group | None:
        return self.service.directory.group_of(queue) if queue is not None else None

    def _who(self, actor: str) -> str:
        """A staff member as notices name them: an operator's name and address."""
        op = self.service.directory.operator(actor) if actor else None
        if op is not None:
            return f"{op.name} ({op.jid})"
        return actor or "someone (command line)"

    async def _mail(
        self,
        purpose: str,
        to: Sequence[str],
        subject: str,
        intro: str,
        rows: Sequence[tuple[str, str]],
        *,
        link: str | None = None,
        incident_id: int | None = None,
        ban_id: int | None = None,
        chat_id: int | None = None,
        queue_id: int | None = None,
    ) -> None:
        """One staff email per recipient, through the outbox, each kept in the trail."""
        now = self.service.clock()
        for address in to:
            msg = emails.staff_notice(
                self.from_address, address, subject, intro, rows, link=link, now=now
            )
            mail = NewMail(
                purpose, tuple(emails.envelope_recipients(msg)), emails.render_bytes(msg)
            )
            await self.store.notices.record(
                purpose=purpose,
                channel="email",
                recipient=address,
                summary=subject,
                now=now,
                mail=mail,
                incident_id=incident_id,
                ban_id=ban_id,
                chat_id=chat_id,
                queue_id=queue_id,
            )
        if to:
            self.service.bus.publish(MailQueued())

    async def _line(
        self,
        purpose: str,
        op: Operator,
        queue: Queue,
        text: str,
        *,
        incident_id: int | None = None,
        queue_id: int | None = None,
    ) -> None:
        """An XMPP line to an operator from the queue's JID, kept in the trail."""
        self.service.bus.publish(OperatorNotice(op.jid, queue.name, text))
        await self.store.notices.record(
            purpose=purpose,
            channel="xmpp",
            recipient=op.jid,
            summary=text[:200],
            now=self.service.clock(),
            incident_id=incident_id,
            queue_id=queue_id,
        )

    # Bans ----------------------------------------------------------------------------------

    async def _on_ban(self, event: BanImposed) -> None:
        ban = await self.store.bans.get(event.ban_id)
        if ban is None:
            return
        chat_id = event.chat_id
        if chat_id is None:
            chat_id, _ = await self.store.notices.ban_chat(ban.id)
        chat = await self.store.chats.by_id(chat_id) if chat_id is not None else None
        queue = self._queue(chat.queue_id if chat is not None else None)
        group = self._group(queue)
        if queue is not None and group is not None and group.coordinator_emails:
            assert chat is not None
            rows = [
                ("Banned by", self._who(ban.created_by)),
                ("When", _when(ban.starts_at)),
                ("Address or network", str(ban.network)),
                ("Length", _length(ban) + (f", until {_when(ban.ends_at)}" if ban.ends_at else "")),
                ("Offence", str(ban.offence)),
                ("Reason", ban.reason),
                ("Chat", f"#{chat.id} in {queue.title} ({queue.name})"),
            ]
            await self._mail(
                "ban",
                group.coordinator_emails,
                f"Ban #{ban.id} on {ban.network} ({queue.title})",
                f"A ban was made in a chat of {queue.title}.",
                rows,
                link=self._link(f"/admin/transcripts/{chat.id}"),
                ban_id=ban.id,
                chat_id=chat.id,
                queue_id=queue.id,
            )
        if chat is not None and queue is not None:
            given = list(event.patron_emails) or await self.store.notices.patron_addresses(chat.id)
            # An admin's reason is written to be read; an operator's is for colleagues.
            admin_words = None if event.by_operator else ban.reason
            await self._ban_notice(ban, chat.id, queue, group, given, admin_words)

    async def _ban_notice(
        self,
        ban: Ban,
        chat_id: int,
        queue: Queue,
        group: Group | None,
        given: Sequence[str],
        admin_words: str | None,
    ) -> None:
        """The banned patron's notice, at each address they gave in the banned chat."""
        if not given:
            return
        tags = await self.store.chats.tags(chat_id)
        appeal = (group.appeal_email if group else None) or (
            self.service.moderation.policy.appeal_address
        )
        now = self.service.clock()
        seen = _target(ban)
        for address in given:
            try:
                # The same limits as every mail to an address a patron typed: per
                # recipient, per asking address, per network.
                await self.service.moderation.admit_mail(seen, address, queue.id)
            except RateLimited:
                log.info("ban notice for ban #%s not sent: over the mail limits", ban.id)
                continue
            msg = emails.ban_notice(
                self.from_address,
                address,
                queue.title,
                category=ban_category(tags),
                starts=_when(ban.starts_at),
                ends=_when(ban.ends_at) if ban.ends_at else None,
                appeal_address=appeal,
                address_seen=seen,
                admin_words=admin_words,
                now=now,
            )
            mail = NewMail(
                "ban-notice", tuple(emails.envelope_recipients(msg)), emails.render_bytes(msg)
            )
            await self.store.notices.record(
                purpose="ban-notice",
                channel="email",
                recipient=address,
                summary=f"Ban notice for ban #{ban.id}",
                now=now,
                mail=mail,
                ban_id=ban.id,
                chat_id=chat_id,
                queue_id=queue.id,
            )
            self.service.bus.publish(MailQueued())

    async def _on_lift(self, event: BansLifted) -> None:
        for ban_id in event.ban_ids:
            ban = await self.store.bans.get(ban_id)
            if ban is None:
                continue
            chat_id, lifted_by = await self.store.notices.ban_chat(ban_id)
            chat = await self.store.chats.by_id(chat_id) if chat_id is not None else None
            queue = self._queue(chat.queue_id if chat is not None else None)
            group = self._group(queue)
            if chat is None or queue is None or group is None or not group.coordinator_emails:
                continue
            lifted_at = ban.lifted_at or self.service.clock()
            rows = [
                ("Lifted by", self._who(event.actor or lifted_by or "")),
                ("When", _when(lifted_at)),
                ("Address or network", str(ban.network)),
                ("Length", _length(ban) + f", made {_when(ban.starts_at)}"),
                ("Reason of the ban", ban.reason),
                *([("Why lifted", event.detail)] if event.detail else []),
                ("Chat", f"#{chat.id} in {queue.title} ({queue.name})"),
            ]
            await self._mail(
                "lift",
                group.coordinator_emails,
                f"Ban #{ban.id} on {ban.network} lifted ({queue.title})",
                f"A ban made in a chat of {queue.title} was lifted.",
                rows,
                link=self._link(f"/admin/transcripts/{chat.id}"),
                ban_id=ban.id,
                chat_id=chat.id,
                queue_id=queue.id,
            )

    # Incidents -----------------------------------------------------------------------------

    def _incident_rows(self, incident: Incident, queue: Queue) -> list[tuple[str, str]]:
        rows = [
            ("Incident", f"#{incident.id} ({incident.kind})"),
            ("Reported by", self._who(incident.reporter)),
            ("When", _when(incident.created_at)),
            ("Queue", f"{queue.title} ({queue.name})"),
            ("Tags", ", ".join(incident.tags) or "none"),
        ]
        if incident.chat_id is not None:
            rows.append(("Chat", f"#{incident.chat_id}"))
        return rows

    async def _on_incident(self, incident_id: int) -> None:
        incident = await self.store.incidents.get(incident_id)
        if incident is None:
            return
        queue = self._queue(incident.queue_id)
        group = self._group(queue)
        if queue is None or group is None or not group.coordinator_emails:
            return
        rows = self._incident_rows(incident, queue)
        if incident.explicit:
            # Described, never quoted: not even the operator's note, which may repeat it.
            intro = (
                f"An incident report was opened about a chat of {queue.title}. The chat was "
                "flagged as explicit: its text is not in this email, and the admin page shows "
                "it only to an admin who asks for it."
            )
        else:
            intro = f"An incident report was opened about a chat of {queue.title}."
            if incident.notes:
                rows.append(("Operator's note", incident.notes))
        await self._mail(
            "incident",
            group.coordinator_emails,
            f"Incident #{incident.id} in {queue.title}",
            intro,
            rows,
            link=self._link(f"/admin/incidents/{incident.id}"),
            incident_id=incident.id,
            chat_id=incident.chat_id,
            queue_id=queue.id,
        )

    async def close_incident(
        self, incident: Incident, code: str, days: str, resolution: str, actor: str
    ) -> outcomes.Outcome:
        """Close an incident with an outcome (the admin page's close form) and tell the
        reporting operator (XMPP line; email when they have an address) and the group's
        coordinators. Raises ValueError with a sentence for the form."""
        outcome = outcomes.parse_outcome(code, days)
        now = self.service.clock()
        await self.store.incidents.resolve(incident.id, resolution, now)
        await self.store.notices.set_outcome(incident.id, outcome.stored())
        queue = self._queue(incident.queue_id)
        if queue is None:
            return outcome
        text = (
            f"Incident #{incident.id} (chat #{incident.chat_id or '—'}, {queue.title}) was "
            f"closed by {actor}: {outcome.text()}."
        )
        reporter = self.service.directory.operator(incident.reporter)
        rows = [
            ("Outcome", outcome.text()),
            ("Closed by", actor),
            ("When", _when(now)),
            *self._incident_rows(incident, queue),
        ]
        subject = f"Incident #{incident.id} closed: {outcome.text()}"
        link = self._link(f"/admin/incidents/{incident.id}")
        if reporter is not None:
            await self._line("outcome", reporter, queue, text, incident_id=incident.id)
            if reporter.email:
                await self._mail(
                    "outcome",
                    [reporter.email],
                    subject,
                    text,
                    rows,
                    link=link,
                    incident_id=incident.id,
                    chat_id=incident.chat_id,
                    queue_id=queue.id,
                )
        group = self._group(queue)
        if group is not None and group.coordinator_emails:
            await self._mail(
                "outcome",
                group.coordinator_emails,
                subject,
                text,
                rows,
                link=link,
                incident_id=incident.id,
                chat_id=incident.chat_id,
                queue_id=queue.id,
            )
        return outcome

    # Staffing ------------------------------------------------------------------------------

    async def resume_staffing(self) -> None:
        """Called once by the service's `start`: take up each queue's watch where the
        stored notices leave it (`core.staffing.resumed`: an alert sent before a restart is
        not sent again), then look at every queue at once, so a queue nobody staffs is
        watched from start-up rather than from the first presence or tick."""
        now = self.service.clock()
        at = self.service.scheduler.monotonic()
        directory = self.service.directory
        for queue in directory.queues():
            last = await self.store.notices.staffing_for_queue(queue.id, limit=1)
            told_at = last[0].created_at if last and last[0].purpose == "unstaffed" else None
            runtime = directory.runtime(queue)
            hours = runtime.hours if runtime is not None else ServiceHours.always()
            self._watch[queue.id] = resumed(told_at, now, hours, at)
        await self.check_staffing()

    async def check_staffing(self) -> None:
        """Compare each queue's staffing with its watch: tell the coordinators and on-call
        operators once a queue has been unstaffed inside its hours for
        `unstaffed_after` seconds, and again when it is staffed. Called by the service's
        tick, after every operator presence change, and by its own timer."""
        now = self.service.scheduler.monotonic()
        for queue in self.service.directory.queues():
            info = self.service.queue_info(queue.name)
            before = self._watch.get(queue.id, Watch())
            after, tell = step(
                before,
                in_hours=info.open_now,
                staffed=info.operators_available > 0,
                now=now,
                after=self.unstaffed_after,
            )
            self._watch[queue.id] = after
            if after.since is not None and before.since is None:
                # Wake exactly when the delay is up, on the injected clock.
                old = self._timers.pop(queue.id, None)
                if old is not None:
                    old.cancel()
                self._timers[queue.id] = self.service.background.later(
                    self.unstaffed_after, self.check_staffing
                )
            if tell is not Tell.NOTHING:
                await self._tell_staffing(queue, tell)

    def close(self) -> None:
        """Cancel the staffing timers (service shutdown)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def _tell_staffing(self, queue: Queue, tell: Tell) -> None:
        minutes = max(1, round(self.unstaffed_after / 60))
        if tell is Tell.UNSTAFFED:
            purpose = "unstaffed"
            text = (
                f"{queue.title} ({queue.name}) has had nobody available for {minutes} min "
                "during its service hours. Please sign in or find someone to cover."
            )
        else:
            purpose = "staffed"
            text = f"{queue.title} ({queue.name}) is staffed again."
        directory = self.service.directory
        on_call = [op for jid in directory.on_call(queue) if (op := directory.operator(jid))]
        for op in on_call:
            await self._line(purpose, op, queue, text, queue_id=queue.id)
        group = self._group(queue)
        to = [op.email for op in on_call if op.email]
        if group is not None:
            to += [a for a in group.coordinator_emails if a not in to]
        rows = [("Queue", f"{queue.title} ({queue.name})"), ("When", _when(self.service.clock()))]
        await self._mail(
            purpose,
            to,
            text,
            text,
            rows,
            link=self._link(f"/admin/queues/{queue.name}"),
            queue_id=queue.id,
        )
