"""The `refdesk` command line.

Every failure the user can cause ends as one line on standard error and a non-zero
exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from slixmpp.jid import JID, InvalidJID

from component.config import Config, ConfigError, load_config
from component.service import GUEST_PREFIX
from component.store import Store, StoreError

DEFAULT_CONFIG = "refdesk.toml"
DEFAULT_GROUP = "default"
# A queue's name is the local part of its JID and part of its URLs: keep it plain.
_QUEUE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class UsageError(Exception):
    """Bad input on the command line or in the data it names; printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _now() -> datetime:
    return datetime.now(UTC)


def _fmt(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M") + "Z"


def bare_jid(text: str) -> str:
    """Validate an operator's address: a bare JID with a local part."""
    try:
        jid = JID(text)
    except InvalidJID as exc:
        raise UsageError(f"{text!r} is not a valid JID ({exc})") from None
    if not jid.user or jid.resource:
        raise UsageError(f"{text!r} must be a bare JID like name@example.org (no /resource)")
    return jid.bare


def slug(text: str, what: str = "queue") -> str:
    """Validate a queue or group name (queue names become JIDs and URLs)."""
    if not _QUEUE_NAME.match(text) or text.startswith(GUEST_PREFIX):
        raise UsageError(
            f"{text!r} is not a valid {what} name: use 1-63 lower-case letters, digits, "
            f"'.', '-' or '_', starting with a letter or digit, not starting with "
            f"{GUEST_PREFIX!r}"
        )
    return text


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="refdesk", description="Live chat reference service.")
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("REFDESK_CONFIG", DEFAULT_CONFIG)),
        help=f"configuration file (default: $REFDESK_CONFIG or {DEFAULT_CONFIG})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    sub.add_parser("run", help="run the whole service")
    sub.add_parser("check-config", help="validate the configuration file")

    demo = sub.add_parser(
        "demo", help="start a throwaway local Prosody and refdesk with a demo queue"
    )
    demo.add_argument("--dir", type=Path, default=Path("demo"), help="working directory")
    demo.add_argument("--port", type=int, default=8080, help="web port (default 8080)")

    group = sub.add_parser("group", help="partner groups").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    g_add = group.add_parser("add", help="add a group")
    g_add.add_argument("name")
    g_add.add_argument("--title", help="display name (default: the name)")
    group.add_parser("list", help="list groups")

    queue = sub.add_parser("queue", help="queues").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    q_add = queue.add_parser("add", help="add a queue")
    q_add.add_argument("name")
    q_add.add_argument("--group", default=DEFAULT_GROUP, help="owning group")
    q_add.add_argument("--email", help="follow-up email address")
    q_add.add_argument("--title", help="title shown to patrons")
    queue.add_parser("list", help="list queues")

    operator = sub.add_parser("operator", help="operators").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    o_add = operator.add_parser("add", help="add an operator or change one")
    o_add.add_argument("jid")
    o_add.add_argument("--queue", action="append", required=True, help="queue (repeatable)")
    o_add.add_argument("--max-chats", type=_positive_int, default=3)
    o_add.add_argument("--name", help="display name shown to patrons")
    operator.add_parser("list", help="list operators")
    o_rm = operator.add_parser("remove", help="remove an operator")
    o_rm.add_argument("jid")
    return parser


def _print(line: str) -> None:
    print(line, flush=True)


async def _with_store(config: Config, action: Callable[[Store], Awaitable[None]]) -> None:
    store = await Store.open(config.storage.path)
    try:
        await action(store)
    finally:
        await store.close()


async def _group(args: argparse.Namespace, store: Store) -> None:
    if args.action == "add":
        group = await store.add_group(slug(args.name, "group"), args.title or args.name, _now())
        _print(f"added group {group.name}")
    else:
        for g in await store.list_groups():
            _print(f"{g.name}\t{g.title}")


async def _queue(args: argparse.Namespace, store: Store) -> None:
    if args.action == "add":
        name = slug(args.name)
        group = await store.group_by_name(args.group)
        if group is None:
            if args.group != DEFAULT_GROUP:
                raise UsageError(f"no group called {args.group!r} (add it with 'group add')")
            group = await store.add_group(DEFAULT_GROUP, "Default", _now())
        email = args.email
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            raise UsageError(f"{email!r} is not an email address")
        title = args.title or name.replace("-", " ").capitalize()
        await store.add_queue(name, group.id, title, email, _now())
        _print(f"added queue {name}")
    else:
        groups = {g.id: g.name for g in await store.list_groups()}
        for q in await store.list_queues():
            _print(
                f"{q.name}\tgroup={groups.get(q.group_id, '?')}\trouting={q.routing.value}"
                f"\ttitle={q.title}\temail={q.followup_email or '-'}"
            )


async def _operator(args: argparse.Namespace, store: Store) -> None:
    if args.action == "add":
        jid = bare_jid(args.jid)
        queues = []
        for name in args.queue:
            queue = await store.queue_by_name(name)
            if queue is None:
                raise UsageError(f"no queue called {name!r} (add it with 'queue add')")
            queues.append(queue)
        existing = await store.operator_by_jid(jid)
        name = args.name or (existing.name if existing else jid.split("@")[0].capitalize())
        op = await store.upsert_operator(jid, name, args.max_chats, _now())
        for queue in queues:
            await store.assign(queue.id, op.id)
        _print(f"operator {jid} in {', '.join(q.name for q in queues)}")
    elif args.action == "remove":
        jid = bare_jid(args.jid)
        if not await store.remove_operator(jid):
            raise UsageError(f"no operator {jid}")
        _print(f"removed operator {jid}")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (`refdesk`)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("slixmpp").setLevel(logging.WARNING)
    try:
        if args.command == "demo":
            from component.demo import run_demo

            return run_demo(args.dir, args.port)
        config = load_config(args.config)
        if args.command == "check-config":
            _print(f"{args.config}: OK")
            return 0
        if args.command == "run":
            from component.runner import serve_forever

            asyncio.run(serve_forever(config))
            return 0
        handlers = {"group": _group, "queue": _queue, "operator": _operator}
        handler = handlers[args.command]
        asyncio.run(_with_store(config, lambda store: handler(args, store)))
        return 0
    except (ConfigError, UsageError, StoreError) as exc:
        print(f"refdesk: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"refdesk: error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
