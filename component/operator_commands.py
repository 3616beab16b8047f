"""What each `!command` does, in a guest chat or on a queue JID.

The service parses the line and calls `run_chat_command` (holding the chat's lock) or
`run_queue_command`; each command is one small function that uses the service's building
blocks and returns the confirmation line, or raises a DeskError the adapter turns into
an answer. The command tables with their help lines are in `component.core.commands`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from component.bus import EventBus
from component.core import commands, validators
from component.core.bans import (
    BanError,
    format_duration,
    normalize_target,
    overlapping,
    parse_duration,
    refusal,
)
from component.core.errors import BadCommand, NotYourChat
from component.core.events import IncidentOpened
from component.core.models import ChatEvent, ChatState, Group, Operator, Presence, Queue, Sender
from component.core.patron_text import PatronText, line
from component.core.privacy import stored_address
from component.core.routing import OperatorLoad
from component.followup import FollowUp
from component.live import Held, LiveChat, QueueInfo
from component.moderation import BanRefused, Moderation
from component.staff import StaffChannel
from component.store import Store

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class CommandHost(Protocol):
    """The service's building blocks the commands use (`CommandHost` provides them;
    named here so this module never imports the service, which calls it)."""

    store: Store
    bus: EventBus
    domain: str
    followup: FollowUp
    moderation: Moderation
    staff: StaffChannel

    def clock(self) -> datetime: ...

    def is_queue(self, name: str) -> bool: ...

    def queue(self, name: str) -> Queue: ...

    def operator(self, jid: str) -> Operator | None: ...

    def find_operator(self, text: str) -> Operator | None: ...

    def presence_of(self, jid: str) -> Presence: ...

    def loads(self, queue: Queue) -> list[OperatorLoad]: ...

    def queue_info(self, name: str) -> QueueInfo: ...

    def group_of(self, queue: Queue) -> Group | None: ...

    def open_chats(self, queue: Queue | None = None) -> list[LiveChat]: ...

    async def history(self, chat_id: int, after_seq: int) -> list[ChatEvent]: ...

    def require_mine(self, held: Held, op: Operator) -> None: ...

    async def operator_says(self, held: Held, op: Operator, text: str) -> None: ...

    async def accept(self, held: Held, op: Operator, *, explicit: bool) -> None: ...

    async def release(self, held: Held, patron_text: PatronText) -> None: ...

    async def offer_to_operator(self, held: Held, target: Operator, via: str) -> None: ...

    async def move_to_queue(
        self,
        held: Held,
        queue: Queue,
        *,
        patron_text: PatronText,
        via: str,
        exclude: str | None = None,
    ) -> None: ...

    async def end(
        self,
        held: Held,
        *,
        by: str,
        text: str | PatronText,
        state: ChatState = ChatState.ENDED,
    ) -> None: ...

    async def note(self, held: Held, op: Operator, text: str) -> None: ...

    async def take_next(self, jid: str, queue_name: str) -> LiveChat | None: ...


ChatCommand = Callable[[CommandHost, Held, Operator, str], Awaitable[str]]
QueueCommand = Callable[[CommandHost, str, Queue, str], Awaitable[str]]


def _unknown(name: str) -> BadCommand:
    shown = f"!{name}" if name else "!"
    return BadCommand(f"Unknown command {shown}. Send !help for the list.")


async def run_chat_command(
    service: CommandHost, held: Held, op: Operator, cmd: commands.Command
) -> str:
    """Run a command typed in a guest chat, inside the service's `hold` of the chat."""
    handler = _CHAT_COMMANDS.get(cmd.name)
    if handler is None:
        raise _unknown(cmd.name)
    return await handler(service, held, op, cmd.argument)


async def run_queue_command(
    service: CommandHost, jid: str, queue: Queue, cmd: commands.Command
) -> str:
    """Run a command sent to a queue JID by one of its operators."""
    handler = _QUEUE_COMMANDS.get(cmd.name)
    if handler is None:
        raise _unknown(cmd.name)
    return await handler(service, jid, queue, cmd.argument)


# In a guest chat ----------------------------------------------------------------------------


async def _help(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    return commands.help_text(commands.CHAT_COMMANDS)


async def _accept(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    live = held.live
    if live.operator is not None:
        if live.operator.id == op.id:
            return "This chat is already yours."
        raise NotYourChat(f"{live.operator.name} has this chat.")
    await service.accept(held, op, explicit=True)
    return "You have this chat. Your messages now go to the patron."


async def _end(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    service.require_mine(held, op)
    await service.end(held, by="operator", text=line("ended_by_operator", name=op.name))
    return "Chat ended."


async def _transfer(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    live = held.live
    service.require_mine(held, op)
    target = arg.strip()
    if not target:
        raise BadCommand("Transfer to whom? Send !transfer <queue> or !transfer <operator>.")
    name = target.split("@")[0] if target.endswith("@" + service.domain) else target
    if service.is_queue(name):
        queue = service.queue(name)
        if queue.id == live.queue.id and live.operator is None:
            raise BadCommand(f"This chat is already waiting in {queue.name}.")
        if live.operator is not None:
            await service.release(held, _transfer_text(service, live, queue.title))
        else:
            live.offered_to.discard(op.jid)
        await service.move_to_queue(
            held,
            queue,
            patron_text=line("transferring"),
            via=f"transferred by {op.name}",
            exclude=op.jid,
        )
        return f"Transferred to the {queue.name} queue."
    colleague = service.find_operator(target)
    if colleague is None:
        raise BadCommand(
            f"No queue or operator called {target!r}. Send !who to a queue to see who is on."
        )
    if colleague.id == op.id:
        raise BadCommand("You cannot transfer a chat to yourself.")
    if not service.presence_of(colleague.jid).online:
        raise BadCommand(f"{colleague.name} is offline; choose someone who is signed in.")
    if live.operator is not None:
        await service.release(held, _transfer_text(service, live, colleague.name))
    await service.offer_to_operator(held, colleague, via=f"transferred by {op.name}")
    return f"Offered to {colleague.name}. The chat is theirs once they answer."


def _transfer_text(service: CommandHost, live: LiveChat, to: str) -> PatronText:
    return line("transfer_to", to=to)


async def _find_canned(service: CommandHost, held: Held, arg: str) -> tuple[str, str] | str:
    """The canned message `arg` names, as (name, text); or, with no name, the list of
    names to answer with. Raises BadCommand for an unknown name."""
    live = held.live
    canned = await service.store.canned.for_queue(live.queue.id, live.queue.group_id)
    name = arg.strip().lower()
    if not name:
        names = ", ".join(c.name for c in canned) or "(none)"
        return f"Canned messages: {names}. Send !c <name> to send one, !c? <name> to see it."
    match = next((c for c in canned if c.name == name), None)
    if match is None:
        raise BadCommand(f"No canned message called {name!r}. Send !c for the list.")
    return match.name, match.text


# The canned message that ends a chat as inappropriate (sticky pickup remembers it).
GOODBYE_INAPPROPRIATE = "goodbye-inappropriate"


async def _remember_for_pickup(
    service: CommandHost, live: LiveChat, op: Operator, why: str
) -> None:
    """The operator ended (or marked) this chat as inappropriate: the same patron's next
    chats go to them first, as far as the queue's privacy mode lets refdesk remember."""
    await service.moderation.remember_for_pickup(
        address=live.ip or live.origin_ip,
        privacy=live.queue.privacy,
        operator_jid=op.jid,
        chat_id=live.id,
        why=why,
    )


async def _note(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    service.require_mine(held, op)
    if not arg.strip():
        raise BadCommand("Write the note after the command: !note <text>.")
    await service.note(held, op, arg)
    return "Note added to the transcript (the patron does not see it)."


async def _tag(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    live = held.live
    service.require_mine(held, op)
    tags = [t.lower() for t in arg.replace(",", " ").split()]
    if not tags:
        raise BadCommand("Which tag? Send !tag <tag>, e.g. !tag circulation.")
    bad = [t for t in tags if not _TAG.match(t)]
    if bad:
        raise BadCommand(f"Tags are 1-32 letters, digits, '-' or '_': {bad[0][:40]!r} is not one.")
    added = [
        t for t in tags if await service.store.chats.add_tag(live.id, t, op.id, service.clock())
    ]
    if not added:
        return "The chat already has that tag."
    reply = "Tagged: " + ", ".join(added) + "."
    if INCIDENT_TAGS & set(added):
        incident = await _incident_for(service, live, op)
        marked = ", ".join(t for t in added if t in INCIDENT_TAGS)
        await _remember_for_pickup(service, live, op, f"tagged {marked}")
        reply += f" Incident report #{incident} is open for follow-up."
        reply += await _exempt_contact_note(service, live)
    return reply


# Tags that open (or update) an incident report for the chat.
INCIDENT_TAGS = frozenset({"incident", "explicit", "harassment", "threat"})


async def _exempt_contact_note(service: CommandHost, live: LiveChat) -> str:
    """After an incident: if it is one more from a shared computer's network that has a
    contact, a message to that contact is drafted for an admin; the operator is told."""
    group = service.group_of(live.queue)
    if group is None:
        return ""
    draft = await service.moderation.note_exempt_incident(group.id, group.title, live.ip)
    if draft is None:
        return ""
    return (
        " Incidents keep coming from this shared network: a message to its contact is "
        f"drafted for an admin (draft #{draft})."
    )


async def _incident_for(service: CommandHost, live: LiveChat, op: Operator) -> int:
    """The chat's incident report, created on first use; an `explicit` tag marks it so
    that reports describe the chat rather than quote it."""
    store = service.store
    tags = await store.chats.tags(live.id)
    existing = await store.incidents.first_for_chat(live.id, "tagged")
    if existing is not None:
        await store.incidents.update(existing.id, tags=tags, explicit="explicit" in tags)
        return existing.id
    incident = await store.incidents.add(
        kind="tagged",
        reporter=op.jid,
        now=service.clock(),
        chat_id=live.id,
        address=stored_address(live.ip, live.queue.privacy),
        queue_id=live.queue.id,
        tags=tags,
        explicit="explicit" in tags,
    )
    service.bus.publish(IncidentOpened(incident))
    return incident


async def _info(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    live = held.live
    tags = await service.store.chats.tags(live.id)
    lines = [
        f"Queue: {live.queue.title} ({live.queue.name})",
        f"Chat: #{live.id}, {live.state.value}"
        + (f" with {live.operator.name}" if live.operator else ""),
        f"Asked: {_ago(service, live.asked_at)}",
    ]
    if live.asked_at and live.accepted_at:
        waited = int((live.accepted_at - live.asked_at).total_seconds())
        lines.append(f"Waited: {waited // 60} min {waited % 60} s before an answer")
    lines.append(f"Page: {live.referrer or 'unknown'}")
    lines.append(f"Address: {live.origin_ip or 'not kept'}")
    lines.append(f"Tags: {', '.join(tags) if tags else 'none'}")
    return "\n".join(lines)


def _ago(service: CommandHost, when: datetime | None) -> str:
    if when is None:
        return "not yet"
    seconds = int((service.clock() - when).total_seconds())
    return f"{when:%H:%M} UTC ({seconds // 60} min {seconds % 60} s ago)"


async def _refer(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    service.require_mine(held, op)
    return await service.followup.refer(held, op.name, op.id, arg)


async def _ban(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    live = held.live
    """`!ban [30d|90d|1y] <reason>`: ban the patron's address (or, where the group's
    policy says so, report it for an admin) and end the chat politely."""
    service.require_mine(held, op)
    words = arg.split(None, 1)
    duration = None
    if words:
        try:
            duration = parse_duration(words[0])
            arg = words[1] if len(words) > 1 else ""
        except BanError:
            duration = None
    reason = arg.strip()
    if not reason:
        raise BadCommand("Give a reason: !ban [30d|90d|1y] <reason>.")
    try:
        reason = validators.ban_reason(reason)
    except ValueError as exc:
        raise BadCommand(str(exc)) from None
    if duration is not None and duration > timedelta(days=365):
        raise BadCommand("Operators can ban for at most a year; ask an admin for more.")
    if live.ip is None:
        raise BadCommand("The patron's address is not known, so it cannot be banned.")
    group = service.group_of(live.queue)
    moderation = service.moderation
    goodbye = await _canned_text(service, live, GOODBYE_INAPPROPRIATE)
    # Whatever becomes of the ban (refused, reported, made), the patron's next chats go
    # to this operator first.
    await _remember_for_pickup(service, live, op, "ended with !ban")
    if group is not None and not group.operators_may_ban:
        incident = await service.store.incidents.add(
            kind="ban-request",
            reporter=op.jid,
            now=service.clock(),
            chat_id=live.id,
            address=stored_address(live.ip, live.queue.privacy),
            queue_id=live.queue.id,
            tags=await service.store.chats.tags(live.id),
            notes=reason,
        )
        service.bus.publish(IncidentOpened(incident))
        drafted = await _exempt_contact_note(service, live)
        await service.operator_says(held, op, goodbye)
        await service.end(held, by="operator", text=line("ended_by_operator", name=op.name))
        return (
            f"Reported for admin review (incident #{incident}): in this group operators do "
            f"not ban directly. The chat has ended.{drafted}"
        )
    exempt = moderation.exempt(live.queue.group_id)
    network = normalize_target(live.ip)
    if overlapping(network, exempt):
        incident = await service.store.incidents.add(
            kind="exempt-network",
            reporter=op.jid,
            now=service.clock(),
            chat_id=live.id,
            address=stored_address(live.ip, live.queue.privacy),
            queue_id=live.queue.id,
            tags=await service.store.chats.tags(live.id),
            notes=f"Ban asked for ({reason}); the address is on an exempt network.",
        )
        service.bus.publish(IncidentOpened(incident))
        drafted = await _exempt_contact_note(service, live)
        raise BadCommand(
            "This address belongs to an exempt network (shared computers such as a school's "
            f"or library's): it cannot be banned from here. Flagged for an admin (incident "
            f"#{incident}). End the chat with !c goodbye-inappropriate and !end if needed."
            + drafted
        )
    why = refusal(network, protected=moderation.policy.protected, exempt=exempt, by_operator=True)
    if why:
        raise BadCommand(why[0].upper() + why[1:] + ".")
    address = live.ip
    # The goodbye first, while the patron is still connected; the ban then shows them the
    # ban message and bars new chats. A banned patron gets no email: the transcript copy
    # they asked for is forgotten before the end would send it (the addresses they gave are
    # kept aside for the ban notice, which tells them how to appeal).
    given = await service.store.notices.patron_addresses(live.id)
    await service.operator_says(held, op, goodbye)
    await service.store.chats.set_transcript_email(live.id, None)
    await service.end(held, by="operator", text=line("ended_by_operator", name=op.name))
    try:
        ban = await moderation.ban(
            address,
            reason=reason,
            actor=op.jid,
            duration=duration,
            by_operator=True,
            group_id=live.queue.group_id,
            chat_id=live.id,
            patron_emails=given,
        )
    except BanRefused as exc:
        raise BadCommand(f"The chat has ended, but the ban failed: {exc.text}") from None
    await service.store.incidents.add(
        kind="ban",
        reporter=op.jid,
        now=service.clock(),
        chat_id=live.id,
        address=stored_address(address, live.queue.privacy),
        queue_id=live.queue.id,
        tags=await service.store.chats.tags(live.id),
        notes=f"Ban #{ban.id} (offence {ban.offence}): {reason}",
    )
    until = f"until {ban.ends_at:%Y-%m-%d}" if ban.ends_at else "permanently"
    return (
        f"Banned {ban.network} {until} (offence {ban.offence}, ban #{ban.id}); the chat has ended."
    )


async def _canned_text(service: CommandHost, live: LiveChat, name: str) -> str:
    canned = await service.store.canned.for_queue(live.queue.id, live.queue.group_id)
    match = next((c for c in canned if c.name == name), None)
    return match.text if match else "This chat has ended. Goodbye."


async def _links(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    live = held.live
    links = await service.store.links.of_group(live.queue.group_id)
    if not links:
        return "This group has no local resource links yet."
    return "Local resources:\n" + "\n".join(f"{link.title} — {link.url}" for link in links)


async def _canned_command(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    """`!c name`: send the canned text as the operator's own line, and answer with the
    text that went out (the operator's client shows only `!c name` otherwise)."""
    found = await _find_canned(service, held, arg)
    if isinstance(found, str):
        return found
    name, text = found
    await service.operator_says(held, op, text)
    if name == GOODBYE_INAPPROPRIATE:
        await _remember_for_pickup(service, held.live, op, f"ended with {GOODBYE_INAPPROPRIATE}")
    return f"Sent: {text}"


async def _canned_show(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    """`!c? name`: show the canned text without sending it, so that the operator can copy
    it, edit it and send it as their own line."""
    found = await _find_canned(service, held, arg)
    if isinstance(found, str):
        return found
    name, text = found
    return f"Canned message {name} (not sent; copy, edit and send it):\n{text}"


_CHAT_COMMANDS: dict[str, ChatCommand] = {
    "accept": _accept,
    "end": _end,
    "transfer": _transfer,
    "c": _canned_command,
    "c?": _canned_show,
    "note": _note,
    "tag": _tag,
    "info": _info,
    "links": _links,
    "refer": _refer,
    "ban": _ban,
    "help": _help,
}


# On a queue JID -----------------------------------------------------------------------------


async def _queue_help(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    return (
        commands.help_text(commands.QUEUE_COMMANDS)
        + "\nA line without ! goes to your colleagues online in this queue."
    )


async def _all(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    """`!all <text>`: the back-channel to every queue of the group."""
    op = service.operator(jid)
    if op is None:
        raise BadCommand("You are not an operator.")
    if not arg:
        raise BadCommand("Write the line after the command: !all <text>.")
    return await service.staff.relay(op, queue, arg, group_wide=True)


async def _handover(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    op = service.operator(jid)
    if op is None:
        raise BadCommand("You are not an operator.")
    return await service.staff.handover(op, queue, arg)


async def _status(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    info = service.queue_info(queue.name)
    hours = "" if info.open_now else " (outside service hours)"
    return (
        f"{queue.name}: {info.status.value}{hours}; {info.waiting} waiting; "
        f"{info.operators_available} operator(s) taking chats."
    )


async def _who(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    lines = []
    for load in service.loads(queue):
        op = service.operator(load.jid)
        name = op.name if op else load.jid
        lines.append(
            f"{name} ({load.jid}): {load.presence.value}, "
            f"{load.active_chats}/{load.max_chats} chats"
        )
    return "\n".join(lines) or "No operators in this queue."


async def _list(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    rows = []
    for live in service.open_chats(queue):
        if live.last_seq == 0:
            continue  # the widget is open but the patron has not asked anything
        who = f" with {live.operator.name}" if live.operator else ""
        rows.append(f"{live.guest}@{service.domain} — {live.state.value}{who}")
    return "\n".join(rows) or "No open chats."


async def _next(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    live = await service.take_next(jid, queue.name)
    if live is None:
        return "Nobody is waiting."
    history = await service.history(live.id, 0)
    asked = [e.text for e in history if e.sender is Sender.PATRON]
    question = f" They asked: {asked[0]}" if asked else ""
    return f"You have the chat with {live.guest}@{service.domain}; reply there.{question}"


async def _canned_texts(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    # One "name: text" line each, a text's own line breaks as indented continuation lines:
    # readable in any client, and parsed by the browser client's canned-message menu
    # (web/static/operator.js), which puts the text in the message box for editing.
    canned = await service.store.canned.for_queue(queue.id, queue.group_id)
    if not canned:
        return "This queue has no canned messages."
    return "\n".join(f"{c.name}: " + "\n  ".join(c.text.splitlines()) for c in canned)


async def _ban_policy(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    # What `!ban` will do in this queue's group, before an operator uses it (the browser
    # client shows it beside its ban control).
    group = service.group_of(queue)
    ladder = ", ".join(format_duration(step) for step in service.moderation.policy.ladder.steps)
    who = (
        "operators ban directly"
        if group is None or group.operators_may_ban
        else "operators do not ban: !ban reports the patron for an admin's review"
    )
    name = group.title if group is not None else queue.name
    return (
        f"Ban policy of {name}: {who}. Without a length, a ban follows the ladder {ladder} "
        "by offence (the last step repeats); an operator may give a length of up to a year."
    )


_QUEUE_COMMANDS: dict[str, QueueCommand] = {
    "list": _list,
    "next": _next,
    "who": _who,
    "status": _status,
    "all": _all,
    "handover": _handover,
    "canned": _canned_texts,
    "banpolicy": _ban_policy,
    "help": _queue_help,
}

__all__ = ["run_chat_command", "run_queue_command"]
