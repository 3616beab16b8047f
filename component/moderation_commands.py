"""The `!commands` that deal with trouble: `!tag` (incident tags open a report), `!ban`
(ban, or report for an admin where the group says so), `!banpolicy`, and the sticky-pickup
memory that `!ban`, incident tags and the `goodbye-inappropriate` canned message share.

`component.operator_commands` lists them in its command tables and calls them like the
others, with a `CommandHost`; each returns the confirmation line or raises a DeskError.
"""

from __future__ import annotations

import re
from datetime import timedelta

from component.command_host import CommandHost
from component.core import validators
from component.core.bans import (
    BanError,
    format_duration,
    normalize_target,
    overlapping,
    parse_duration,
    refusal,
)
from component.core.errors import BadCommand
from component.core.events import IncidentOpened
from component.core.models import Operator, Queue
from component.core.patron_text import line
from component.core.privacy import stored_address
from component.live import Held, LiveChat
from component.moderation import BanRefused

_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


GOODBYE_INAPPROPRIATE = "goodbye-inappropriate"


async def remember_for_pickup(service: CommandHost, live: LiveChat, op: Operator, why: str) -> None:
    """The operator ended (or marked) this chat as inappropriate: the same patron's next
    chats go to them first, as far as the queue's privacy mode lets refdesk remember.
    Called by `!ban`, by an incident tag and by `!c goodbye-inappropriate`."""
    await service.moderation.sticky.remember(
        address=live.ip or live.origin_ip,
        privacy=live.queue.privacy,
        operator_jid=op.jid,
        chat_id=live.id,
        why=why,
    )


async def tag(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    """`!tag <tag>...` in a guest chat (run by the command table, holding the chat): tag
    the chat; an incident tag also opens its report and remembers the patron for sticky
    pickup."""
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
        await remember_for_pickup(service, live, op, f"tagged {marked}")
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
    draft = await service.moderation.exempt_contacts.note_incident(group.id, group.title, live.ip)
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


async def ban(service: CommandHost, held: Held, op: Operator, arg: str) -> str:
    """`!ban [30d|90d|1y] <reason>`: ban the patron's address (or, where the group's
    policy says so, report it for an admin) and end the chat politely."""
    live = held.live
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
    await remember_for_pickup(service, live, op, "ended with !ban")
    if group is not None and not group.operators_may_ban:
        incident = await _report(service, live, op, "ban-request", reason)
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
        incident = await _report(
            service,
            live,
            op,
            "exempt-network",
            f"Ban asked for ({reason}); the address is on an exempt network.",
        )
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
    # The ban itself is the record admins see; this incident only files the chat with it,
    # so nobody is told of it as of a new report.
    await _report(
        service, live, op, "ban", f"Ban #{ban.id} (offence {ban.offence}): {reason}", announce=False
    )
    until = f"until {ban.ends_at:%Y-%m-%d}" if ban.ends_at else "permanently"
    return (
        f"Banned {ban.network} {until} (offence {ban.offence}, ban #{ban.id}); the chat has ended."
    )


async def _report(
    service: CommandHost,
    live: LiveChat,
    op: Operator,
    kind: str,
    notes: str,
    *,
    announce: bool = True,
) -> int:
    """File an incident of `kind` about the chat, with its tags and (as far as the queue's
    privacy mode allows) the patron's address; `ban` calls it for each of its outcomes.
    Announced incidents reach the admins' live view."""
    incident = await service.store.incidents.add(
        kind=kind,
        reporter=op.jid,
        now=service.clock(),
        chat_id=live.id,
        address=stored_address(live.ip, live.queue.privacy),
        queue_id=live.queue.id,
        tags=await service.store.chats.tags(live.id),
        notes=notes,
    )
    if announce:
        service.bus.publish(IncidentOpened(incident))
    return incident


async def _canned_text(service: CommandHost, live: LiveChat, name: str) -> str:
    canned = await service.store.canned.for_queue(live.queue.id, live.queue.group_id)
    match = next((c for c in canned if c.name == name), None)
    return match.text if match else "This chat has ended. Goodbye."


async def ban_policy(service: CommandHost, jid: str, queue: Queue, arg: str) -> str:
    """`!banpolicy` on a queue JID: what `!ban` will do in this queue's group, before an
    operator uses it (the browser client shows it beside its ban control)."""
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
