"""The arguments of the `refdesk` command: every subcommand, option and its help.

`build_parser` is called by the entry point (`component.cli.main`) and by the tests and
docs that list the commands. It imports nothing heavy, so `refdesk --help` and a
mistyped argument answer at once.
"""

from __future__ import annotations

import argparse
import os
from importlib import metadata
from pathlib import Path
from typing import NoReturn

from component.core.models import RoutingMode
from component.core.text import one_line

DEFAULT_CONFIG = "refdesk.toml"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, one_line(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    if value > _MAX_COUNT:
        # Past this, a date `value` days away does not exist (OverflowError, a traceback);
        # the ban rules then say which lengths they allow.
        raise argparse.ArgumentTypeError(f"{text[:30]!r} is far too large")
    return value


_MAX_COUNT = 999_999


def _record_id(text: str) -> int:
    """A record's number as listings print it; bounded so that the database's integers
    (64 bits) never overflow on a mistyped one."""
    if not text.isascii() or not text.isdigit() or len(text) > 18 or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text[:30]!r} is not a record number")
    return int(text)


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
    g_set.add_argument(
        "--coordinator-email",
        metavar="ADDR[,ADDR...]",
        help="coordinators told of bans, lifts, incidents and unstaffed queues ('none' clears)",
    )
    g_set.add_argument(
        "--referral-domains",
        metavar="D1,D2",
        help="mail domains !refer may send to (subdomains included); 'none' or '' for any",
    )
    g_ex = group.add_parser("exempt", help="networks operators cannot ban (shared computers)")
    g_ex.add_argument("group")
    g_ex.add_argument("network", nargs="?", help="address or network to exempt")
    g_ex.add_argument("--remove", action="store_true", help="remove the exemption")
    g_ex.add_argument("--note", default="", help="whose network it is (e.g. a school's PCs)")
    g_ex.add_argument(
        "--contact-email",
        default="",
        help="whom to write to about repeated incidents from it, instead of a ban",
    )

    queue = sub.add_parser("queue", help="queues").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    q_add = queue.add_parser("add", help="add a queue")
    q_add.add_argument("name")
    q_add.add_argument(
        "--group", help="owning group (default: the default group, created if missing)"
    )
    q_add.add_argument("--email", help="follow-up email address")
    q_add.add_argument("--title", help="title shown to patrons")
    queue.add_parser("list", help="list queues")
    q_set = queue.add_parser("set", help="change a queue's settings")
    q_set.add_argument("name")
    q_set.add_argument("--title")
    q_set.add_argument("--email", help="follow-up email address ('none' to clear)")
    q_set.add_argument(
        "--referral-email",
        metavar="ADDR|none",
        help="where !refer sends a chat by default (inside the group's referral domains)",
    )
    q_set.add_argument("--routing", help=" or ".join(m.value for m in RoutingMode))
    q_set.add_argument(
        "--feedback",
        choices=("on", "off"),
        help="ask patrons to rate answered chats (1-5 and a comment) when they end",
    )
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

    sticky = sub.add_parser(
        "sticky", help="sticky pickup marks (a returning patron offered to the same operator)"
    ).add_subparsers(dest="action", required=True, parser_class=_Parser)
    s_list = sticky.add_parser("list", help="list the marks in force")
    s_list.add_argument("--group", help="only the marks made in this group's chats")
    s_clear = sticky.add_parser("clear", help="forget one mark (its number from sticky list)")
    s_clear.add_argument("id", type=_record_id, metavar="ID")

    sub.add_parser("purge", help="forget addresses and transcripts past their retention")

    backup = sub.add_parser(
        "backup", help="copy the database to FILE, consistently, while the service runs"
    )
    backup.add_argument("file", type=Path, metavar="FILE")
    backup.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    store = sub.add_parser("store", help="move the database between engines").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    s_copy = store.add_parser(
        "copy", help="copy the SQLite database into an empty PostgreSQL database"
    )
    s_copy.add_argument(
        "--to", required=True, metavar="postgresql://…", help="the target database's URL"
    )
    s_copy.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="FILE",
        help="the SQLite file to copy (default: [storage] path)",
    )

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
