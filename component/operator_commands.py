"""What each `!command` does, in a guest chat or on a queue JID.

The service parses the line and calls `run_chat_command` (holding the chat's lock) or
`run_queue_command`; each command is one small function that uses the service's building
blocks and returns the confirmation line, or raises a DeskError the adapter turns into
an answer. The command tables with their help lines are in `component.core.commands`.
"""

from __future__ import annotations

from datetime import datetime

from component import moderation_commands as moderation
from component.command_host import ChatCommand, CommandHost, QueueCommand
from component.core import commands
from component.core.errors import BadCommand, NotYourChat
from component.core.models import Operator, Queue, Sender
from component.core.patron_text import PatronText, line
from component.live import Held, LiveChat


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
    if cmd.name in commands.LIMITED_COMMANDS:
        service.admit_command(op.jid)
    return await handler(service, held, op, cmd.argument)


async def run_queue_command(
    service: CommandHost, jid: str, queue: Queue, cmd: commands.Command
) -> str:
    """Run a command sent to a queue JID by one of its operators."""
    handler = _QUEUE_COMMANDS.get(cmd.name)
    if handler is None:
        raise _unknown(cmd.name)
    if cmd.name in commands.LIMITED_COMMANDS:
        service.admit_command(jid)
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


async def _note(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    service.require_mine(held, op)
    if not arg.strip():
        raise BadCommand("Write the note after the command: !note <text>.")
    await service.note(held, op, arg)
    return "Note added to the transcript (the patron does not see it)."


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
    if name == moderation.GOODBYE_INAPPROPRIATE:
        await moderation.remember_for_pickup(
            service, held.live, op, f"ended with {moderation.GOODBYE_INAPPROPRIATE}"
        )
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
    "tag": moderation.tag,
    "info": _info,
    "links": _links,
    "refer": _refer,
    "ban": moderation.ban,
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


_QUEUE_COMMANDS: dict[str, QueueCommand] = {
    "list": _list,
    "next": _next,
    "who": _who,
    "status": _status,
    "all": _all,
    "handover": _handover,
    "canned": _canned_texts,
    "banpolicy": moderation.ban_policy,
    "help": _queue_help,
}

__all__ = ["run_chat_command", "run_queue_command"]
