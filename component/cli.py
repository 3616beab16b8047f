"""The `refdesk` command line.

Every failure the user can cause ends as one line on standard error and a non-zero
exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import NoReturn

from component.config import Config, ConfigError
from component.config_loader import load_config
from component.core.models import RoutingMode
from component.core.text import one_line
from component.directory import (
    DEFAULT_GROUP,
    CannedChange,
    Directory,
    DirectoryError,
    GroupChange,
    NewExempt,
    NewGroup,
    NewLink,
    NewQueue,
    OperatorChange,
    QueueChange,
    Scope,
)
from component.logs import setup_logging, use_format
from component.moderation import BanRefused, create_ban, lift_bans, policy_from_config
from component.store import Store, StoreError

DEFAULT_CONFIG = "refdesk.toml"
MAX_PASSWORD = 1000


class UsageError(Exception):
    """Bad input on the command line or in the data it names; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, one_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M") + "Z"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _version() -> str:
    """The installed package's version (from its metadata, so it is the wheel's)."""
    try:
        return metadata.version("refdesk")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="refdesk", description="Live chat reference service.")
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("REFDESK_CONFIG", DEFAULT_CONFIG)),
        help=f"configuration file (default: $REFDESK_CONFIG or {DEFAULT_CONFIG})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    sub.add_parser("run", help="run the whole service")
    check = sub.add_parser("check-config", help="validate the configuration file")
    check.add_argument(
        "--connect",
        action="store_true",
        help="also try the XMPP component handshake, the SMTP server, the database and "
        "public_url (one line each; non-zero exit if any fails)",
    )

    demo = sub.add_parser(
        "demo", help="start a throwaway local Prosody and refdesk with a demo queue"
    )
    demo.add_argument("--dir", type=Path, default=Path("demo"), help="working directory")
    demo.add_argument("--port", type=int, default=8080, help="web port (default 8080)")
    demo.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface: a warning"
        " is printed, the demo has no TLS)",
    )

    group = sub.add_parser("group", help="partner groups").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    g_add = group.add_parser("add", help="add a group")
    g_add.add_argument("name")
    g_add.add_argument("--title", help="display name (default: the name)")
    group.add_parser("list", help="list groups")
    g_link = group.add_parser("link", help="add a local resource link (shown by !links)")
    g_link.add_argument("group")
    g_link.add_argument("title")
    g_link.add_argument("url")
    g_links = group.add_parser("links", help="list a group's links")
    g_links.add_argument("group")
    g_set = group.add_parser("set", help="change a group's settings")
    g_set.add_argument("group")
    g_set.add_argument("--title")
    g_set.add_argument(
        "--operators-may-ban",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="operators ban with !ban (else: report for review)",
    )
    g_set.add_argument("--appeal-email", help="where banned patrons of this group may write")
    g_ex = group.add_parser("exempt", help="networks operators cannot ban (shared computers)")
    g_ex.add_argument("group")
    g_ex.add_argument("network", nargs="?", help="address or network to exempt")
    g_ex.add_argument("--remove", action="store_true", help="remove the exemption")

    queue = sub.add_parser("queue", help="queues").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    q_add = queue.add_parser("add", help="add a queue")
    q_add.add_argument("name")
    q_add.add_argument("--group", default=DEFAULT_GROUP, help="owning group")
    q_add.add_argument("--email", help="follow-up email address")
    q_add.add_argument("--title", help="title shown to patrons")
    queue.add_parser("list", help="list queues")
    q_set = queue.add_parser("set", help="change a queue's settings")
    q_set.add_argument("name")
    q_set.add_argument("--title")
    q_set.add_argument("--email", help="follow-up email address ('none' to clear)")
    q_set.add_argument("--routing", help=" or ".join(m.value for m in RoutingMode))
    q_set.add_argument(
        "--offer-timeout",
        metavar="SECONDS",
        help="round-robin: seconds before the offer moves to the next operator",
    )
    q_set.add_argument(
        "--rollover-after",
        metavar="SECONDS|off",
        help="seconds before an unanswered chat moves to the backup queue",
    )
    q_set.add_argument("--backup", metavar="QUEUE|none", help="the backup (rollover) queue")
    q_set.add_argument(
        "--hours", help='service hours, e.g. "mon-fri 09:00-17:00; sat 10:00-14:00" or "always"'
    )
    q_set.add_argument("--timezone", help="time zone of the hours, e.g. America/Chicago")
    q_set.add_argument(
        "--closed-days",
        metavar="DATES",
        help="comma-separated dates (YYYY-MM-DD) the queue is closed; '' clears",
    )
    q_set.add_argument(
        "--escalation",
        metavar="RULE|off",
        help='on-call rule, e.g. "4 in 10m" or "4 in first 20m of hour"',
    )

    operator = sub.add_parser("operator", help="operators").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    o_add = operator.add_parser("add", help="add an operator or change one")
    o_add.add_argument("jid")
    o_add.add_argument("--queue", action="append", required=True, help="queue (repeatable)")
    o_add.add_argument("--max-chats", help="chats at once (1-50; new operators: 3)")
    o_add.add_argument("--name", help="display name shown to patrons")
    o_add.add_argument("--email", help="address for on-call alerts ('none' to clear)")
    o_add.add_argument(
        "--on-call",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="notify this operator when the queue's on-call rule trips",
    )
    operator.add_parser("list", help="list operators")
    o_rm = operator.add_parser("remove", help="remove an operator")
    o_rm.add_argument("jid")

    ban = sub.add_parser("ban", help="bans").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    b_add = ban.add_parser("add", help="ban an address or network (no --days: the ladder)")
    b_add.add_argument("target", metavar="ADDRESS_OR_NETWORK")
    b_add.add_argument("--reason", required=True)
    b_add.add_argument("--days", type=_positive_int, help="length in days")
    b_add.add_argument("--permanent", action="store_true", help="no end (an explicit choice)")
    b_add.add_argument(
        "--ipv6-prefix",
        type=int,
        choices=range(32, 129),
        metavar="32..128",
        help="ban an IPv6 address's network of this size (default 64)",
    )
    b_list = ban.add_parser("list", help="list bans")
    b_list.add_argument("--all", action="store_true", help="also ended and lifted bans")
    b_lift = ban.add_parser("lift", help="lift the active bans on an address or network")
    b_lift.add_argument("target", metavar="ADDRESS_OR_NETWORK")
    b_lift.add_argument(
        "--ipv6-prefix", type=int, choices=range(32, 129), metavar="32..128", default=64
    )

    sub.add_parser("purge", help="forget addresses and transcripts past their retention")

    backup = sub.add_parser(
        "backup", help="copy the database to FILE, consistently, while the service runs"
    )
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    admin = sub.add_parser("admin", help="admin page accounts").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    a_add = admin.add_parser("add", help="add an account (password read from standard input)")
    a_add.add_argument("name")
    a_add.add_argument("--role", choices=["admin", "coordinator"], default="admin")
    a_add.add_argument("--group", help="the coordinator's group")
    admin.add_parser("list", help="list accounts")
    a_pw = admin.add_parser("password", help="set a new password (read from standard input)")
    a_pw.add_argument("name")
    a_rm = admin.add_parser("remove", help="remove an account")
    a_rm.add_argument("name")

    canned = sub.add_parser("canned", help="canned messages").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    for action, help_text in (
        ("list", "list the canned messages a queue's chats can use"),
        ("set", "create or change a canned message"),
        ("remove", "remove a canned message"),
    ):
        p = canned.add_parser(action, help=help_text)
        if action != "list":
            p.add_argument("name")
        if action == "set":
            p.add_argument("text")
        scope = p.add_mutually_exclusive_group(required=action == "list")
        scope.add_argument("--queue", help="for this queue only")
        if action != "list":
            scope.add_argument("--group", help="for this group's queues")
    return parser


def _print(line: str) -> None:
    """Print one line of output: listings are one line per item, with tab-separated
    fields. What the fields hold was typed by people (a ban reason, a canned text, a
    title, here or on the admin page), so anything unprintable in them, such as a line
    break or a terminal escape, is written as an escape; tabs stay as separators."""
    print("\t".join(one_line(part) for part in line.split("\t")), flush=True)


def _fail(message: str) -> None:
    """Print an error as the one line the CLI promises."""
    print(f"refdesk: error: {one_line(message)}", file=sys.stderr, flush=True)


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
            NewQueue(args.name, args.group, args.title or "", args.email or ""),
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
    if _undecodable([password]) is not None:
        raise UsageError("the password is not valid UTF-8 text")
    if len(password) < 10:
        raise UsageError("the password must have at least 10 characters")
    if len(password) > MAX_PASSWORD:
        raise UsageError("the password is too long")
    return password


async def _new_hash() -> str:
    """Read a new password and hash it off the event loop, through the same workers as
    the admin page's login (`admin add` and `admin password`)."""
    from component.passwords import PasswordWorkers

    password = read_password()
    workers = PasswordWorkers(threads=1, backlog=0)
    try:
        return await workers.hash(password)
    finally:
        workers.close()


async def _admin(args: argparse.Namespace, store: Store) -> None:
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
        await store.add_admin(name, await _new_hash(), args.role, group_id, _now())
        _print(f"added {args.role} {name}")
    elif args.action == "password":
        account = await store.admin_by_name(args.name)
        if account is None:
            raise UsageError(f"no account called {args.name!r}")
        await store.set_admin_password(account.id, await _new_hash())
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


def _undecodable(argv: Sequence[str]) -> int | None:
    """The position (from 1) of the first argument that was not valid UTF-8 (Python
    keeps such bytes as lone surrogates, which nothing downstream can store or print)."""
    for index, arg in enumerate(argv, start=1):
        if any("\ud800" <= ch <= "\udfff" for ch in arg):
            return index
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (`refdesk`); tests call it in-process with `argv`."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    bad = _undecodable(arguments)
    if bad is not None:
        _fail(f"argument {bad} is not valid UTF-8 text")
        return 2
    args = build_parser().parse_args(arguments)
    setup_logging(args.verbose)
    try:
        if args.command == "demo":
            from component.demo import run_demo

            return run_demo(args.dir, args.port, args.host)
        config = load_config(args.config)
        if args.command == "check-config":
            _print(f"{args.config}: OK")
            if args.connect:
                from component.doctor import run_checks

                checks = asyncio.run(run_checks(config))
                for check in checks:
                    _print(check.line())
                return 0 if all(check.ok for check in checks) else 1
            return 0
        if args.command == "run":
            from component.runner import serve_forever

            use_format(config.log.format)

            asyncio.run(serve_forever(config))
            return 0
        handlers: dict[str, Callable[[Store], Awaitable[None]]] = {
            "group": lambda store: _group(args, store, _directory(store, config)),
            "queue": lambda store: _queue(args, store, _directory(store, config)),
            "operator": lambda store: _operator(args, store, _directory(store, config)),
            "canned": lambda store: _canned(args, store, _directory(store, config)),
            "ban": lambda store: _ban(args, store, config),
            "purge": _purge,
            "backup": lambda store: _backup(args, store),
            "admin": lambda store: _admin(args, store),
        }
        asyncio.run(_with_store(config, handlers[args.command]))
        return 0
    except (ConfigError, UsageError, StoreError, DirectoryError) as exc:
        _fail(str(exc))
        return 2
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
