"""The staff side of the desk, between operators only: the back-channel and shift
hand-over notes. Patrons never see any of it and transcripts do not hold it.

- Back-channel: a plain line (not a `!command`) an operator sends to a queue JID reaches
  every other operator of that queue who is online, as ``Name: text`` from the queue JID,
  so that a reply to that JID goes the same way. ``!all <text>`` reaches every operator
  online in any queue of the queue's group (a library that staffs several queues asks
  them all who can cover), as ``Name [all]: text`` from a queue JID of the group the
  receiver belongs to (the one written to when they belong to it).
- Hand-over: ``!handover <text>`` keeps one note per queue (it replaces the previous
  one); the next operator other than its author who comes online in the queue gets it
  once (not one refdesk merely finds online when it starts: see
  `DeskService.on_operator_presence`). ``!handover`` alone shows it, with whom it was
  given to; ``!handover clear`` deletes it.

Owned by the service (`DeskService.staff`); the service calls `relay` for plain lines to
a queue JID and `came_online` when an operator's presence goes from offline to online;
the queue commands (`component.operator_commands`) call the rest.
"""

from __future__ import annotations

from collections.abc import Callable

from component.bus import EventBus
from component.clock import Clock
from component.core.errors import TooFast
from component.core.events import OperatorNotice
from component.core.models import Operator, Presence, Queue
from component.core.ratelimit import Limit, OperatorLimiter
from component.directory_cache import DirectoryCache
from component.store import Store

# What `!handover clear` is (a note of just this word would be no note).
CLEAR = "clear"


class StaffChannel:
    """Created once by the service with the parts it shares. `check_text` is the service's
    rule for any chat line (size, control characters); `presence_of` its view of who is
    online; lines per operator are limited like a patron's messages."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        scheduler: Clock,
        directory: DirectoryCache,
        presence_of: Callable[[str], Presence],
        check_text: Callable[[str], str],
        lines_per_second: float,
        line_burst: int,
    ) -> None:
        self.store = store
        self.bus = bus
        self.scheduler = scheduler
        self.directory = directory
        self.presence_of = presence_of
        self.check_text = check_text
        self._limiter = OperatorLimiter(
            # One line per 1/rate seconds, so that rates below one a second keep their
            # meaning; the burst is how many may come at once.
            Limit(
                "back-channel lines per operator",
                "operator",
                1,
                1.0 / lines_per_second,
                burst=max(1, line_burst),
            )
        )
        # Commands that write or send, per operator, at the same rate (their own bucket:
        # a busy back-channel must not stop an operator's !note, nor the reverse).
        self._commands = OperatorLimiter(
            Limit(
                "writing commands per operator",
                "operator",
                1,
                1.0 / lines_per_second,
                burst=max(1, line_burst),
            )
        )

    def admit_command(self, jid: str) -> None:
        """Count one command that writes or sends (`commands.LIMITED_COMMANDS`) from the
        operator `jid`; TooFast past the same rate as back-channel lines. Called by the
        command runners before such a command does anything."""
        wait = self._commands.check(jid, self.scheduler.monotonic())
        if wait > 0:
            raise TooFast(
                f"Too many commands at once; this one was not run. Wait {max(1, round(wait))} s."
            )

    # Back-channel ----------------------------------------------------------------------------

    async def relay(self, op: Operator, queue: Queue, text: str, *, group_wide: bool) -> str:
        """Pass an operator's line on to their colleagues online (see the module). Returns
        what to answer the sender: nothing when someone got it, else a line saying nobody
        did. Raises InvalidInput for text the chat rules refuse and TooFast past the rate."""
        clean = self.check_text(text)
        wait = self._limiter.check(op.jid, self.scheduler.monotonic())
        if wait > 0:
            raise TooFast(
                f"Too many lines to colleagues at once; this one was not sent. "
                f"Wait {max(1, round(wait))} s."
            )
        targets = self._targets(op, queue, group_wide=group_wide)
        label = f"{op.name} [all]" if group_wide else op.name
        for jid, node in targets:
            self.bus.publish(OperatorNotice(jid, node, f"{label}: {clean}"))
        if targets:
            return ""
        where = "the queues of this group" if group_wide else f"the {queue.name} queue"
        return f"Nobody else is online in {where}; your line reached no one."

    def _targets(self, op: Operator, queue: Queue, *, group_wide: bool) -> list[tuple[str, str]]:
        """(operator JID, queue node to write from) for each colleague online."""
        queues = [queue]
        if group_wide:
            queues += [
                q
                for q in self.directory.queues()
                if q.group_id == queue.group_id and q.id != queue.id
            ]
        targets: dict[str, str] = {}
        for q in queues:
            for jid in self.directory.members(q):
                if jid != op.jid and jid not in targets and self.presence_of(jid).online:
                    targets[jid] = q.name
        return sorted(targets.items())

    # Hand-over notes -------------------------------------------------------------------------

    async def handover(self, op: Operator, queue: Queue, arg: str) -> str:
        """`!handover [text | clear]` on a queue JID: set, clear or show the note."""
        if not arg:
            return await self._show(queue)
        if arg.lower() == CLEAR:
            if await self.store.handover.clear(queue.id):
                return f"The hand-over note of {queue.name} is deleted."
            return f"{queue.name} has no hand-over note."
        clean = self.check_text(arg)
        await self.store.handover.set_note(queue.id, op.jid, op.name, clean, self.scheduler.now())
        return (
            f"Hand-over note kept for {queue.name}: the next colleague to come online in "
            "this queue gets it. Send !handover to see it."
        )

    async def _show(self, queue: Queue) -> str:
        note = await self.store.handover.note(queue.id)
        if note is None:
            return (
                f"{queue.name} has no hand-over note. Send !handover <text> to leave one for "
                "the next colleague."
            )
        when = f"{note.created_at:%Y-%m-%d %H:%M} UTC"
        if note.delivered_to is None:
            state = "not given to anyone yet"
        else:
            who = self.directory.operator(note.delivered_to)
            name = who.name if who else note.delivered_to
            at = f"{note.delivered_at:%H:%M} UTC" if note.delivered_at else ""
            state = f"given to {name} {at}".rstrip()
        return f"Hand-over note from {note.author_name}, {when} ({state}):\n{note.text}"

    async def came_online(self, jid: str) -> None:
        """An operator went from offline to online: give them the undelivered note of each
        of their queues that someone else wrote. Called by the service after routing has
        seen the presence."""
        for name in self.directory.queues_of(jid):
            queue = self.directory.queue(name)
            note = await self.store.handover.note(queue.id)
            if note is None or note.delivered_to is not None or note.author_jid == jid:
                continue
            if not await self.store.handover.mark_delivered(queue.id, jid, self.scheduler.now()):
                continue  # someone who came online at the same moment got it
            self.bus.publish(
                OperatorNotice(
                    jid,
                    queue.name,
                    f"Hand-over note for {queue.title} from {note.author_name} "
                    f"({note.created_at:%Y-%m-%d %H:%M} UTC):\n{note.text}",
                )
            )


__all__ = ["CLEAR", "StaffChannel"]
