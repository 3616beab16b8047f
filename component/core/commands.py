"""The operator command language: plain chat lines starting with `!`.

`/` would be eaten by Gajim, Profanity and Dino, hence `!`. `!!text` sends `!text`
literally. The parser only splits a line; which commands exist where (guest chat or queue
JID) is declared in the two tables below, which `!help` also prints.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "!"


@dataclass(frozen=True, slots=True)
class Command:
    """`!name argument` as typed by an operator; `name` is lower-cased."""

    name: str
    argument: str


@dataclass(frozen=True, slots=True)
class Say:
    """A line to relay as it is (with `!!` already turned into `!`)."""

    text: str


# Commands understood in a guest chat, with the line `!help` shows for each.
CHAT_COMMANDS: dict[str, str] = {
    "accept": "!accept — take this chat",
    "end": "!end — end this chat",
    "transfer": "!transfer <queue|operator> — hand the chat to another queue or a colleague",
    "c": "!c <name> — send a canned message (you see the text that went out); !c lists them",
    "c?": "!c? <name> — show a canned message without sending it, to copy and edit",
    "note": "!note <text> — add a note to the transcript (the patron does not see it)",
    "tag": "!tag <tag> — tag the chat (e.g. !tag circulation, !tag incident)",
    "info": "!info — queue, wait time, page and address of this chat",
    "links": "!links — the partner group's local resource links",
    "refer": "!refer [email] — refer the question by email, with the transcript",
    "ban": "!ban [30d|90d|1y] <reason> — ban the patron's address and end the chat",
    "help": "!help — this list",
}

# Commands that write to the store or send a message or an email each time they run (in a
# guest chat or to a queue JID): limited per operator at the back-channel's rate, so one
# account (or a stolen one) cannot flood the database, colleagues or mailboxes. Reading
# commands and taking or ending a chat are not limited.
LIMITED_COMMANDS = frozenset({"transfer", "c", "note", "tag", "refer", "ban", "next", "handover"})

# Commands understood when writing to a queue JID. A plain line there (no `!`) goes to the
# queue's other operators who are online (the staff back-channel).
QUEUE_COMMANDS: dict[str, str] = {
    "list": "!list — chats waiting and active in this queue",
    "next": "!next — take the longest-waiting chat",
    "who": "!who — operators of this queue and their presence",
    "status": "!status — the queue's status as patrons see it",
    "all": "!all <text> — a line to every colleague online in this group's queues",
    "handover": "!handover [text|clear] — leave, show or delete the note for the next shift",
    "canned": "!canned — this queue's canned messages with their full texts",
    "banpolicy": "!banpolicy — what !ban does in this queue's group",
    "help": "!help — this list",
}


def parse_line(line: str) -> Command | Say:
    """Split an operator's chat line; called by the service for every operator message."""
    if line.startswith(PREFIX + PREFIX):
        return Say(line[1:])
    if not line.startswith(PREFIX):
        return Say(line)
    # Clients may send a non-breaking or other odd space; split on any whitespace.
    parts = line[1:].split(None, 1)
    if not parts:
        return Command("", "")
    head = parts[0]
    rest = parts[1] if len(parts) > 1 else ""
    return Command(head.lower(), rest.strip())


def help_text(table: dict[str, str]) -> str:
    """The reply to `!help`, one command per line."""
    return "Commands:\n" + "\n".join(table.values()) + "\n(!!text sends !text as a message)"
