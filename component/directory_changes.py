"""What a change of the directory says, and how its fields are checked.

The command line and the admin pages describe a change as one of the dataclasses below,
holding the values as typed (text; None leaves a setting as it is, "" clears an optional
one), and hand it to `component.directory.Directory`, which checks each field with the
functions at the end of this module (wording the refusals the directory's way) and
refuses with `DirectoryError`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from component.core import validators
from component.core.changes import UNSET, Unset

T = TypeVar("T")

# The local parts of chats' guest JIDs (the service's GUEST_PREFIX): never a queue name.
RESERVED_PREFIX = "guest-"
DEFAULT_GROUP = "default"


class DirectoryError(Exception):
    """A change refused: `field` names what was wrong (the admin form's field name),
    `message` says why in one sentence. `problems` lists every refused field of the
    change, the first being (`field`, `message`)."""

    def __init__(self, field: str, message: str, *more: tuple[str, str]) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.problems: tuple[tuple[str, str], ...] = ((field, message), *more)


class Problems:
    """Collects every refused field of one change, so a form shows them all at once."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []

    def add(self, field: str, message: str) -> None:
        if field not in {f for f, _ in self.found}:
            self.found.append((field, message))

    def take(self, field: str, parse: Callable[[str], T], text: str) -> T | None:
        try:
            return parse(text)
        except ValueError as exc:
            self.add(field, str(exc))
            return None

    def has(self, field: str) -> bool:
        return any(f == field for f, _ in self.found)

    def check(self) -> None:
        if self.found:
            raise DirectoryError(*self.found[0], *self.found[1:])


# The changes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewGroup:
    name: str
    title: str = ""  # empty: the name


@dataclass(frozen=True, slots=True)
class GroupChange:
    title: str | None = None
    operators_may_ban: bool | None = None
    appeal_email: str | None = None  # "" clears
    coordinator_emails: str | None = None  # addresses separated by commas; "" clears
    referral_domains: str | None = None  # "" allows any domain


@dataclass(frozen=True, slots=True)
class NewLink:
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class NewExempt:
    network: str
    note: str = ""
    # Whom to write to about repeated incidents from it ("" for nobody).
    contact_email: str = ""


@dataclass(frozen=True, slots=True)
class NewQueue:
    name: str
    group: str
    title: str = ""  # empty: made from the name
    followup_email: str = ""


@dataclass(frozen=True, slots=True)
class QueueChange:
    """Settings as typed; None keeps one, "" clears an optional one. `backup` is a queue
    name. Hours, time zone and closed days are checked together (a change of one is
    checked against the stored others)."""

    title: str | None = None
    routing: str | None = None
    offer_timeout: str | None = None
    rollover_after: str | None = None
    backup: str | None = None
    hours: str | None = None
    timezone: str | None = None
    closed_days: str | None = None  # dates separated by commas or spaces
    escalation: str | None = None
    followup_email: str | None = None
    referral_email: str | None = None
    max_wait: str | None = None
    privacy: str | None = None
    retention_days: str | None = None
    purge_transcripts: bool | None = None
    feedback: bool | None = None
    widget_color: str | None = None
    widget_logo: str | None = None
    greeting: str | None = None
    text_available: str | None = None
    text_away: str | None = None
    text_offline: str | None = None
    allowed_origins: str | None = None


@dataclass(frozen=True, slots=True)
class OperatorChange:
    """An operator (by JID) and the queues (by name) they answer.

    `name` and `max_chats` None keep the stored values (a new operator gets the JID's
    local part and 3); `email` "" clears the alert address. `on_call` is the queues the
    operator is on call for, or True/False for all of `queues`, or None to leave the
    flags. With `exclusive`, `queues` become all of the operator's queues among those the
    caller manages; else they are added. `new` refuses an existing operator."""

    jid: str
    queues: tuple[str, ...]
    name: str | None = None
    max_chats: str | int | None = None
    email: str | None = None
    on_call: frozenset[str] | bool | None = None
    exclusive: bool = False
    new: bool = False


@dataclass(frozen=True, slots=True)
class CannedChange:
    name: str
    text: str


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a canned message belongs: every queue (no ids), a group or a queue."""

    group_id: int | None = None
    queue_id: int | None = None


# Field checks with the directory's wording -------------------------------------------------


def given(problems: Problems, field: str, parse: Callable[[str], T], text: str | None) -> T | Unset:
    """UNSET when the setting is not given, else the parsed value (or a problem)."""
    if text is None:
        return UNSET
    try:
        return parse(text)
    except ValueError as exc:
        problems.add(field, str(exc))
        return UNSET


def as_text(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def name_check(what: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        return validators.name(text, what, RESERVED_PREFIX)

    return parse


def email_check(text: str) -> str | None:
    """An address, or None for "" (clears it); the refusal quotes what was typed."""
    if not text.strip():
        return None
    try:
        return validators.email_address(text)
    except ValueError as exc:
        raise ValueError(f"{text.strip()[:80]!r} is not an email address. {exc}") from None


def referral_domains_check(text: str) -> str:
    """The stored form of a group's referral domains (comma-separated; "" for any)."""
    return ",".join(validators.referral_domains(text))


def optional_title(text: str) -> str | None:
    return validators.title(text) if text.strip() else None


def optional_note(text: str) -> str | None:
    return validators.optional_one_line(text, validators.MAX_NOTE, "the note")


def optional_text(limit: int) -> Callable[[str], str | None]:
    def parse(text: str) -> str | None:
        return validators.optional_text(text, limit)

    return parse


def link_url(text: str) -> str:
    return validators.url(text, "http", "https")


def logo_url(text: str) -> str | None:
    return validators.url(text, "https") if text.strip() else None


def sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
