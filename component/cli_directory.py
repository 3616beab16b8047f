"""What the directory commands of `refdesk` do: group, queue, operator and canned.

They change settings through the directory (`component.directory`), the one write path
shared with the admin pages, so both refuse the same input the same way. Called by
`component.cli_commands.run_store_command`, which imports this module only for these
commands: the others need neither the directory nor the XMPP address library it loads.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from component.cli_output import UsageError
from component.cli_output import print_line as _print
from component.config import Config
from component.directory import (
    DEFAULT_GROUP,
    CannedChange,
    Directory,
    GroupChange,
    NewExempt,
    NewGroup,
    NewLink,
    NewQueue,
    OperatorChange,
    QueueChange,
    Scope,
)
from component.store import Store


async def run_directory_command(args: argparse.Namespace, store: Store, config: Config) -> None:
    """Run `args.command` (one of `DIRECTORY_COMMANDS`) on the open store. Called by
    `run_store_command`; raises `UsageError` or `DirectoryError` for what the user can fix."""
    directory = _directory(store, config)
    if args.command == "group":
        await _group(args, store, directory)
    elif args.command == "queue":
        await _queue(args, store, directory)
    elif args.command == "operator":
        await _operator(args, store, directory)
    else:
        await _canned(args, store, directory)


def _now() -> datetime:
    return datetime.now(UTC)


def _directory(store: Store, config: Config) -> Directory:
    """The directory over the CLI's own store: the running service sees the changes
    through its store poll, so there is nothing to refresh here."""
    return Directory(store, _now, config.xmpp.domain)


async def _group(args: argparse.Namespace, store: Store, directory: Directory) -> None:
    if args.action == "add":
        group = await directory.add_group(NewGroup(args.name, args.title or ""))
        _print(f"added group {group.name}")
    elif args.action == "link":
        group = await directory.group_named(args.group)
        title = await directory.add_link(group, NewLink(args.title, args.url))
        _print(f"added link to {group.name}: {title}")
    elif args.action == "set":
        group = await directory.group_named(args.group)
        change = GroupChange(
            title=args.title,
            operators_may_ban=args.operators_may_ban,
            appeal_email=_cleared(args.appeal_email),
            coordinator_emails=_cleared(args.coordinator_email),
            referral_domains=_cleared(args.referral_domains),
        )
        if change == GroupChange():
            raise UsageError("nothing to change: give at least one option")
        changed = await directory.change_group(group, change)
        _print(f"updated group {group.name}: {', '.join(changed)}")
    elif args.action == "exempt":
        group = await directory.group_named(args.group)
        if args.network is None:
            for row in await store.exempt.rows(group.id):
                extra = "".join(f"\t{v}" for v in (row.note, row.contact_email or "") if v)
                _print(f"{row.network}{extra}")
            return
        if args.remove:
            await directory.delete_exempt(group, network=args.network)
            _print(f"{args.network.strip()} is no longer exempt in {group.name}")
        else:
            network = await directory.add_exempt(
                group, NewExempt(args.network, args.note, args.contact_email)
            )
            _print(f"{network} is exempt in {group.name}: operators cannot ban it")
    elif args.action == "links":
        group = await directory.group_named(args.group)
        for link in await store.links.of_group(group.id):
            _print(f"{link.title}\t{link.url}")
    else:
        for g in await store.groups.all():
            _print(
                f"{g.name}\t{g.title}\tcoordinators={','.join(g.coordinator_emails) or '-'}"
                f"\treferral_domains={','.join(g.referral_domains) or '-'}"
            )


def _cleared(value: str | None) -> str | None:
    """The CLI's 'none' (clear the setting) as the directory's empty value."""
    return "" if value == "none" else value


async def _queue(args: argparse.Namespace, store: Store, directory: Directory) -> None:
    if args.action == "add":
        queue = await directory.add_queue(
            NewQueue(
                args.name,
                # `is not None`: an empty --group '' is refused by the directory.
                args.group if args.group is not None else DEFAULT_GROUP,
                args.title or "",
                args.email or "",
            ),
            create_default=True,
        )
        _print(f"added queue {queue.name}")
    elif args.action == "set":
        queue = await directory.queue_named(args.name)
        change = QueueChange(
            title=args.title,
            followup_email=_cleared(args.email),
            referral_email=_cleared(args.referral_email),
            routing=args.routing,
            offer_timeout=args.offer_timeout,
            rollover_after="" if args.rollover_after == "off" else args.rollover_after,
            backup=_cleared(args.backup),
            hours=args.hours,
            timezone=args.timezone,
            closed_days=args.closed_days,
            escalation="" if args.escalation == "off" else args.escalation,
            feedback=None if args.feedback is None else args.feedback == "on",
        )
        if change == QueueChange():
            raise UsageError("nothing to change: give at least one option (see queue set --help)")
        changed = await directory.change_queue(queue, change)
        _print(f"updated queue {queue.name}: {', '.join(changed)}")
    else:
        groups = {g.id: g.name for g in await store.groups.all()}
        queues = await store.queues.all()
        names = {q.id: q.name for q in queues}
        for q in queues:
            rollover = (
                f"{names.get(q.backup_queue_id, '?')} after {q.rollover_after:g}s"
                if q.backup_queue_id and q.rollover_after
                else "-"
            )
            _print(
                f"{q.name}\tgroup={groups.get(q.group_id, '?')}\trouting={q.routing.value}"
                f"\thours={q.hours} ({q.timezone})\trollover={rollover}"
                f"\ttitle={q.title}\temail={q.followup_email or '-'}"
            )


async def _canned(args: argparse.Namespace, store: Store, directory: Directory) -> None:
    # `is not None`: an empty --queue '' is a queue name nobody has, not "no scope" (which
    # would make `canned set` change the message of every queue).
    queue = await directory.queue_named(args.queue) if args.queue is not None else None
    group_name = getattr(args, "group", None)
    group = await directory.group_named(group_name) if group_name is not None else None
    scope = Scope(group_id=group.id if group else None, queue_id=queue.id if queue else None)
    if args.action == "list":
        assert queue is not None
        for c in await store.canned.for_queue(queue.id, queue.group_id):
            _print(f"{c.name}\t{c.scope}\t{c.text}")
    elif args.action == "set":
        name = await directory.save_canned(scope, CannedChange(args.name, args.text), replace=True)
        _print(f"canned message {name} saved")
    else:
        name = await directory.delete_canned(scope, name=args.name)
        _print(f"canned message {name} removed")


async def _operator(args: argparse.Namespace, store: Store, directory: Directory) -> None:
    if args.action == "add":
        on_call = args.on_call
        op = await directory.save_operator(
            OperatorChange(
                jid=args.jid,
                queues=tuple(args.queue),
                name=args.name,
                max_chats=args.max_chats,
                email=_cleared(args.email),
                on_call=on_call,
            )
        )
        _print(f"operator {op.jid} in {', '.join(args.queue)}")
    elif args.action == "remove":
        op = await directory.remove_operator(args.jid)
        _print(f"removed operator {op.jid}")
    else:
        queue_names = {q.id: q.name for q in await store.queues.all()}
        members: dict[int, list[str]] = {}
        for a in await store.operators.assignments():
            members.setdefault(a.operator_id, []).append(queue_names.get(a.queue_id, "?"))
        for op in await store.operators.all():
            _print(
                f"{op.jid}\tname={op.name}\tmax_chats={op.max_chats}"
                f"\tqueues={','.join(sorted(members.get(op.id, []))) or '-'}"
            )
