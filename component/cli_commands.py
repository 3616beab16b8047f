"""What each data command of `refdesk` does on the store of the configured database: ban,
admin, purge and backup here; group, queue, operator and canned in `component.cli_directory`.

Called by the entry point (`component.cli.main`) through `run_store_command` once the
arguments are parsed and the configuration loaded; imported only then, so that
`refdesk --help` and `refdesk run` do not load it.
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
from component.core.redact import redacted_url
from component.store import Store

MAX_PASSWORD = 1000
# The commands that change settings through the directory (`component.cli_directory`).
DIRECTORY_COMMANDS = frozenset({"group", "queue", "operator", "canned"})


def run_store_command(args: argparse.Namespace, config: Config) -> None:
    """Run the data command `args.command` on the configured database, opened for it and
    closed after. Called once by `component.cli.main`; raises `UsageError`, `StoreError`
    or `DirectoryError` for what the user can fix."""
    if args.command in DIRECTORY_COMMANDS:
        # Imported here: only these commands need the directory.
        from component.cli_directory import run_directory_command

        asyncio.run(_with_store(config, lambda store: run_directory_command(args, store, config)))
        return
    if args.command == "store":
        asyncio.run(_store_copy(args, config))
        return
    handlers: dict[str, Callable[[Store], Awaitable[None]]] = {
        "ban": lambda store: _ban(args, store, config),
        "purge": _purge,
        "backup": lambda store: _backup(args, store),
        "admin": lambda store: _admin(args, store, config.web.password_hashing),
        "sticky": lambda store: _sticky(args, store),
    }
    asyncio.run(_with_store(config, handlers[args.command]))


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M") + "Z"


async def _with_store(config: Config, action: Callable[[Store], Awaitable[None]]) -> None:
    store = await Store.open(config.storage.target)
    try:
        await action(store)
    finally:
        await store.close()


async def _ban(args: argparse.Namespace, store: Store, config: Config) -> None:
    # Imported here: the moderation desk (rate limits, the ban index, events) is not needed
    # by the other data commands, the directory ones above all.
    from component.moderation import BanRefused, create_ban, lift_bans, policy_from_config

    now = _now()
    policy = policy_from_config(config)
    if args.action == "add":
        if args.permanent and args.days:
            raise UsageError("a ban is either --permanent or has --days, not both")
        exempt = [
            ipaddress.ip_network(n, strict=False)
            for nets in (await store.exempt.by_group()).values()
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
        for ban in await store.bans.all():
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
        if await store.accounts.admin_by_name(name):
            raise UsageError(f"there is already an account called {name!r}")
        group_id = None
        if args.role == "coordinator":
            if not args.group:
                raise UsageError("a coordinator needs --group")
            found = await store.groups.by_name(args.group)
            if found is None:
                raise UsageError(f"no group called {args.group!r}")
            group_id = found.id
        elif args.group:
            raise UsageError("only coordinators belong to a group")
        await store.accounts.add_admin(name, await _new_hash(hashing), args.role, group_id, _now())
        _print(f"added {args.role} {name}")
    elif args.action == "password":
        account = await store.accounts.admin_by_name(args.name)
        if account is None:
            raise UsageError(f"no account called {args.name!r}")
        await store.accounts.set_admin_password(account.id, await _new_hash(hashing))
        await store.accounts.delete_sessions_of(account.id)
        _print(f"password changed for {account.username}; their sessions were closed")
    elif args.action == "remove":
        account = await store.accounts.admin_by_name(args.name)
        if account is None:
            raise UsageError(f"no account called {args.name!r}")
        await store.accounts.delete_admin(account.id)
        _print(f"removed {account.username}")
    else:
        groups = {g.id: g.name for g in await store.groups.all()}
        for a in await store.accounts.admins():
            group = f"\tgroup={groups.get(a.group_id, '?')}" if a.group_id else ""
            _print(f"{a.username}\t{a.role}{group}")


async def _sticky(args: argparse.Namespace, store: Store) -> None:
    # Imported here: the other data commands do not need the moderation modules.
    from component.sticky_pickup import clear_mark

    now = _now()
    if args.action == "clear":
        row = await clear_mark(
            store, args.id, now=now, group_ids=None, actor="admin (command line)"
        )
        if row is None:
            raise UsageError(f"no sticky pickup mark #{args.id} in force")
        _print(f"cleared mark #{row.id}: {row.mark.operator_jid} for {row.mark.key}")
        return
    group_ids = None
    if args.group is not None:
        found = await store.groups.by_name(args.group)
        if found is None:
            raise UsageError(f"no group called {args.group!r}")
        group_ids = {found.id}
    groups = {g.id: g.name for g in await store.groups.all()}
    for row in await store.sticky.rows(now, group_ids):
        mark = row.mark
        group = groups.get(row.group_id, "-") if row.group_id is not None else "-"
        _print(
            f"{row.id}	{mark.key}	operator={mark.operator_jid}	why={mark.why}"
            f"	set={_fmt(mark.created_at)}	until={_fmt(mark.expires_at)}"
            f"	chat={mark.chat_id}	group={group}"
        )


async def _purge(store: Store) -> None:
    now = _now()
    total = 0
    for queue in await store.queues.all():
        if queue.retention_days:
            total += await store.chats.purge(
                queue.id,
                now - timedelta(days=queue.retention_days),
                transcripts=queue.purge_transcripts,
            )
    await store.sticky.forget_expired(now)
    _print(f"purged {total} chat(s)")


async def _store_copy(args: argparse.Namespace, config: Config) -> None:
    """`refdesk store copy --to URL`: the SQLite file (stopped service: nothing may write
    it meanwhile) into an empty PostgreSQL database, both migrated first."""
    from component.store.copy import copy_store
    from component.store.pg import PgDatabase, is_url

    if not is_url(args.to):
        raise UsageError("--to must be a postgresql:// URL")
    path = args.source or config.storage.path
    if not path.is_file():
        raise UsageError(f"{path} is not a SQLite database file")
    source = await Store.open(path)
    try:
        target = await Store.open(args.to)
        try:
            if not isinstance(target.db, PgDatabase):
                raise UsageError("--to must be a postgresql:// URL")
            counts = await copy_store(source.db, target.db)
        finally:
            await target.close()
    finally:
        await source.close()
    _print(f"copied {sum(counts.values())} rows in {len(counts)} tables to {redacted_url(args.to)}")
    for name, count in counts.items():
        _print(f"  {name}: {count}")


async def _backup(args: argparse.Namespace, store: Store) -> None:
    result = await store.backup(args.file, overwrite=args.force)
    _print(f"backed up to {result.path}: {result.pages} pages, integrity {result.integrity}")
