"""What each data command of `refdesk` does (group, queue, operator, canned, ban, admin,
purge, backup), on the store of the configured database.

Called by the entry point (`component.cli.main`) through `run_store_command` once the
arguments are parsed and the configuration loaded; imported only then, so that
`refdesk --help` and `refdesk run` do not load it. Group, queue, operator and canned
changes go through the directory, the one write path shared with the admin pages.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from component.cli_output import UsageError, undecodable
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
from component.moderation import BanRefused, create_ban, lift_bans, policy_from_config
from component.store import Store

MAX_PASSWORD = 1000


def run_store_command(args: argparse.Namespace, config: Config) -> None:
    """Run the data command `args.command` on the configured database, opened for it and
    closed after. Called once by `component.cli.main`; raises `UsageError`, `StoreError`
    or `DirectoryError` for what the user can fix."""
    handlers: dict[str, Callable[[Store], Awaitable[None]]] = {
        "group": lambda store: _group(args, store, _directory(store, config)),
        "queue": lambda store: _queue(args, store, _directory(store, config)),
        "operator": lambda store: _operator(args, store, _directory(store, config)),
        "canned": lambda store: _canned(args, store, _directory(store, config)),
        "ban": lambda store: _ban(args, store, config),
        "purge": _purge,
        "backup": lambda store: _backup(args, store),
        "admin": lambda store: _admin(args, store, config.web.password_hashing),
    }
    asyncio.run(_with_store(config, handlers[args.command]))


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M") + "Z"


def _directory(store: Store, config: Config) -> Directory:
    """The directory over the CLI's own store: the running service sees the changes
    through its store poll, so there is nothing to refresh here."""
    return Directory(store, _now, config.xmpp.domain)


async def _with_store(config: Config, action: Callable[[Store], Awaitable[None]]) -> None:
    store = await Store.open(config.storage.path)
    try:
        await action(store)
    finally:
        await store.close()


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
        )
        if change == GroupChange():
            raise UsageError("nothing to change: give at least one option")
        changed = await directory.change_group(group, change)
        _print(f"updated group {group.name}: {', '.join(changed)}")
    elif args.action == "exempt":
        group = await directory.group_named(args.group)
        if args.network is None:
            for network in (await store.exempt_networks()).get(group.id, []):
                _print(network)
            return
        if args.remove:
            await directory.delete_exempt(group, network=args.network)
            _print(f"{args.network.strip()} is no longer exempt in {group.name}")
        else:
            network = await directory.add_exempt(group, NewExempt(args.network))
            _print(f"{network} is exempt in {group.name}: operators cannot ban it")
    elif args.action == "links":
        group = await directory.group_named(args.group)
        for link in await store.links(group.id):
            _print(f"{link.title}\t{link.url}")
    else:
        for g in await store.list_groups():
            _print(f"{g.name}\t{g.title}")


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
            routing=args.routing,
            offer_timeout=args.offer_timeout,
            rollover_after="" if args.rollover_after == "off" else args.rollover_after,
            backup=_cleared(args.backup),
            hours=args.hours,
            timezone=args.timezone,
            closed_days=args.closed_days,
            escalation="" if args.escalation == "off" else args.escalation,
        )
        if change == QueueChange():
            raise UsageError("nothing to change: give at least one option (see queue set --help)")
        changed = await directory.change_queue(queue, change)
        _print(f"updated queue {queue.name}: {', '.join(changed)}")
    else:
        groups = {g.id: g.name for g in await store.list_groups()}
        queues = await store.list_queues()
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


async def _ban(args: argparse.Namespace, store: Store, config: Config) -> None:
    now = _now()
    policy = policy_from_config(config)
    if args.action == "add":
        if args.permanent and args.days:
            raise UsageError("a ban is either --permanent or has --days, not both")
        exempt = [
            ipaddress.ip_network(n, strict=False)
            for nets in (await store.exempt_networks()).values()
            for n in nets
        ]
        try:
            ban = await create_ban(
                store,
                policy,
                args.target,
                reason=args.reason,
                actor="admin (command line)",
                now=now,
                duration=timedelta(days=args.days) if args.days else None,
                permanent=args.permanent,
                exempt=exempt,
                ipv6_prefix=args.ipv6_prefix,
            )
        except BanRefused as exc:
            raise UsageError(exc.text) from None
        end = _fmt(ban.ends_at) if ban.ends_at else "permanent"
        _print(f"banned {ban.network} until {end} (offence {ban.offence}, ban #{ban.id})")
    elif args.action == "lift":
        try:
            lifted = await lift_bans(
                store,
                args.target,
                actor="admin (command line)",
                now=now,
                ipv6_prefix=args.ipv6_prefix,
            )
        except BanRefused as exc:
            raise UsageError(exc.text) from None
        for ban in lifted:
            _print(f"lifted ban #{ban.id} on {ban.network}")
    else:
        for ban in await store.list_bans():
            if not args.all and not ban.active(now):
                continue
            end = _fmt(ban.ends_at) if ban.ends_at else "permanent"
            state = "active" if ban.active(now) else ("lifted" if ban.lifted_at else "ended")
            _print(
                f"{ban.network}\toffence={ban.offence}\tstart={_fmt(ban.starts_at)}\tend={end}"
                f"\t{state}\treason={ban.reason}"
            )


def read_password() -> str:
    """The password from standard input: asked twice on a terminal, else its first line."""
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise UsageError("the passwords do not match")
        password = first
    else:
        try:
            # Bounded: a longer line is refused below anyway, however much is piped in.
            password = sys.stdin.readline(MAX_PASSWORD + 2).rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError("the password is not valid UTF-8 text") from None
    if undecodable([password]) is not None:
        raise UsageError("the password is not valid UTF-8 text")
    if len(password) < 10:
        raise UsageError("the password must have at least 10 characters")
    if len(password) > MAX_PASSWORD:
        raise UsageError("the password is too long")
    return password


async def _new_hash(hashing: str) -> str:
    """Read a new password and hash it off the event loop, through the same workers as
    the admin page's login (`admin add` and `admin password`), with the configured
    `[web] password_hashing`."""
    from component.passwords import PasswordWorkers

    password = read_password()
    workers = PasswordWorkers(threads=1, backlog=0, hashing=hashing)
    try:
        return await workers.hash(password)
    finally:
        workers.close()


async def _admin(args: argparse.Namespace, store: Store, hashing: str) -> None:
    if args.action == "add":
        name = args.name.strip()
        if not re.fullmatch(r"[A-Za-z0-9._@-]{1,64}", name):
            raise UsageError(f"{args.name!r} is not a valid username (letters, digits, . _ @ -)")
        if await store.admin_by_name(name):
            raise UsageError(f"there is already an account called {name!r}")
        group_id = None
        if args.role == "coordinator":
            if not args.group:
                raise UsageError("a coordinator needs --group")
            found = await store.group_by_name(args.group)
            if found is None:
                raise UsageError(f"no group called {args.group!r}")
            group_id = found.id
        elif args.group:
            raise UsageError("only coordinators belong to a group")
        await store.add_admin(name, await _new_hash(hashing), args.role, group_id, _now())
        _print(f"added {args.role} {name}")
    elif args.action == "password":
        account = await store.admin_by_name(args.name)
        if account is None:
            raise UsageError(f"no account called {args.name!r}")
        await store.set_admin_password(account.id, await _new_hash(hashing))
        await store.delete_sessions_of(account.id)
        _print(f"password changed for {account.username}; their sessions were closed")
    elif args.action == "remove":
        account = await store.admin_by_name(args.name)
        if account is None:
            raise UsageError(f"no account called {args.name!r}")
        await store.delete_admin(account.id)
        _print(f"removed {account.username}")
    else:
        groups = {g.id: g.name for g in await store.list_groups()}
        for a in await store.list_admins():
            group = f"\tgroup={groups.get(a.group_id, '?')}" if a.group_id else ""
            _print(f"{a.username}\t{a.role}{group}")


async def _purge(store: Store) -> None:
    now = _now()
    total = 0
    for queue in await store.list_queues():
        if queue.retention_days:
            total += await store.purge(
                queue.id,
                now - timedelta(days=queue.retention_days),
                transcripts=queue.purge_transcripts,
            )
    _print(f"purged {total} chat(s)")


async def _backup(args: argparse.Namespace, store: Store) -> None:
    result = await store.backup(args.file, overwrite=args.force)
    _print(f"backed up to {result.path}: {result.pages} pages, integrity {result.integrity}")


async def _canned(args: argparse.Namespace, store: Store, directory: Directory) -> None:
    # `is not None`: an empty --queue '' is a queue name nobody has, not "no scope" (which
    # would make `canned set` change the message of every queue).
    queue = await directory.queue_named(args.queue) if args.queue is not None else None
    group_name = getattr(args, "group", None)
    group = await directory.group_named(group_name) if group_name is not None else None
    scope = Scope(group_id=group.id if group else None, queue_id=queue.id if queue else None)
    if args.action == "list":
        assert queue is not None
        for c in await store.canned_for_queue(queue.id, queue.group_id):
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
        queue_names = {q.id: q.name for q in await store.list_queues()}
        members: dict[int, list[str]] = {}
        for a in await store.list_assignments():
            members.setdefault(a.operator_id, []).append(queue_names.get(a.queue_id, "?"))
        for op in await store.list_operators():
            _print(
                f"{op.jid}\tname={op.name}\tmax_chats={op.max_chats}"
                f"\tqueues={','.join(sorted(members.get(op.id, []))) or '-'}"
            )
