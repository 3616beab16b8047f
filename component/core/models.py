"""Domain models: the words of docs/architecture.md as small immutable values.

The service layer builds these from store rows and hands them to the transports; nothing
here knows where they came from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime


class Presence(enum.Enum):
    """An operator's XMPP presence, reduced to what routing needs."""

    CHAT = "chat"
    AVAILABLE = "available"
    AWAY = "away"
    XA = "xa"
    DND = "dnd"
    OFFLINE = "offline"

    @property
    def takes_chats(self) -> bool:
        """Available and free-for-chat operators get offers; the others do not."""
        return self in (Presence.CHAT, Presence.AVAILABLE)

    @property
    def online(self) -> bool:
        return self is not Presence.OFFLINE

    @property
    def rank(self) -> int:
        """Higher is more reachable; used to pick an operator's best resource."""
        return _PRESENCE_RANK[self]

    @classmethod
    def from_show(cls, show: str | None) -> Presence:
        """Map an XMPP `<show/>` value (None or '' for plain available) to a Presence."""
        # RFC 6121 allows only chat/away/xa/dnd; anything else (even "offline") is treated
        # as available rather than dropping the operator out of routing for a client quirk.
        return _SHOWS.get(show or "", cls.AVAILABLE)


_PRESENCE_RANK = {
    Presence.CHAT: 5,
    Presence.AVAILABLE: 4,
    Presence.AWAY: 3,
    Presence.XA: 2,
    Presence.DND: 1,
    Presence.OFFLINE: 0,
}


_SHOWS = {
    "chat": Presence.CHAT,
    "away": Presence.AWAY,
    "xa": Presence.XA,
    "dnd": Presence.DND,
}


class QueueStatus(enum.Enum):
    """What a patron is told about a queue (widget and status endpoint)."""

    AVAILABLE = "available"
    AWAY = "away"
    BUSY = "busy"
    OFFLINE = "offline"


class ChatState(enum.Enum):
    WAITING = "waiting"
    OFFERED = "offered"
    ACTIVE = "active"
    ENDED = "ended"
    MISSED = "missed"
    FOLLOWED_UP = "followed-up"

    @property
    def open(self) -> bool:
        return self in (ChatState.WAITING, ChatState.OFFERED, ChatState.ACTIVE)


class Sender(enum.Enum):
    """Who wrote a chat event."""

    PATRON = "patron"
    OPERATOR = "operator"
    SYSTEM = "system"


class EventKind(enum.Enum):
    """What a chat event is. NOTE entries are for the transcript only: never shown to the
    patron."""

    MESSAGE = "message"
    ENDED = "ended"
    NOTE = "note"

    @property
    def patron_sees(self) -> bool:
        return self is not EventKind.NOTE


class RoutingMode(enum.Enum):
    RING_ALL = "ring-all"
    ROUND_ROBIN = "round-robin"


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    name: str
    title: str
    operators_may_ban: bool = True
    appeal_email: str | None = None
    # Told of every ban, lift and incident in the group's chats, and when a queue of the
    # group goes unstaffed during its service hours.
    coordinator_emails: tuple[str, ...] = ()
    # Where `!refer` may send (ASCII domains, subdomains included); empty: anywhere.
    referral_domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Queue:
    id: int
    name: str
    group_id: int
    title: str
    routing: RoutingMode
    followup_email: str | None
    # Seconds a round-robin offer waits before moving on to the next operator.
    offer_timeout: float = 30.0
    # Seconds an unanswered chat waits before it moves to the backup queue (None: never).
    rollover_after: float | None = None
    backup_queue_id: int | None = None
    hours: str = "always"
    timezone: str = "UTC"
    closed_days: tuple[str, ...] = ()
    # On-call escalation rule such as "4 in 10m" (None: no escalation).
    escalation: str | None = None
    referral_email: str | None = None
    # Seconds a waiting patron waits before being offered the email form (None: never).
    max_wait: float | None = None
    privacy: str = "full"  # 'full' | 'network' | 'none'
    retention_days: int | None = None
    purge_transcripts: bool = False
    # Ask patrons for a 1-5 rating and a comment when an answered chat ends.
    feedback: bool = False
    widget_color: str = "#0b57d0"
    widget_logo: str | None = None
    greeting: str | None = None
    text_available: str | None = None
    text_away: str | None = None
    text_offline: str | None = None
    # Origins allowed to frame the widget, space-separated ('*': any).
    allowed_origins: str = "*"


@dataclass(frozen=True, slots=True)
class Operator:
    id: int
    jid: str
    name: str
    max_chats: int
    # Where on-call alerts also go by email (None: XMPP only).
    email: str | None = None


@dataclass(frozen=True, slots=True)
class ChatEvent:
    """One numbered entry of a chat's transcript (messages and system events)."""

    chat_id: int
    seq: int
    kind: EventKind
    sender: Sender
    name: str
    text: str
    ts: datetime
    client_id: str | None = None
    operator_jid: str | None = None
    # For a line the service wrote (see `component.core.patron_text`): its code and
    # parameters, which the widget renders in the patron's language. None for others.
    code: str | None = None
    params: Mapping[str, str] | None = None
    # The operator corrected this line after sending it (the text is the final one).
    corrected: bool = False


@dataclass(frozen=True, slots=True)
class Chat:
    """A chat as stored; the service keeps the live copy of open ones."""

    id: int
    queue_id: int
    guest: str
    state: ChatState
    operator_id: int | None
    created_at: datetime
    origin_ip: str | None = None
    referrer: str | None = None
    ended_at: datetime | None = None
    asked_at: datetime | None = None
    accepted_at: datetime | None = None
    relayed_seq: int = 0


@dataclass(frozen=True, slots=True)
class Assignment:
    """An operator's membership of a queue and where the presence handshake stands."""

    queue_id: int
    operator_id: int
    subscription: str  # 'none' | 'asked' | 'granted'
    on_call: bool = False


@dataclass(frozen=True, slots=True)
class CannedMessage:
    """A routine line an operator sends with `!c name`; scope is global, group or queue."""

    name: str
    text: str
    scope: str


@dataclass(frozen=True, slots=True)
class Link:
    """One of a group's local resource links (`!links`)."""

    title: str
    url: str


@dataclass(frozen=True, slots=True)
class Ticket:
    """An offline question or a referral, kept for follow-up."""

    id: int
    kind: str  # 'offline' | 'referral'
    queue_id: int
    chat_id: int | None
    name: str | None
    email: str | None
    question: str
    status: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxMail:
    """One email in the outbox: `message` holds the bytes that go over SMTP."""

    id: int
    purpose: str
    recipients: tuple[str, ...]
    message: bytes
    status: str  # 'pending' | 'sent' | 'failed'
    attempts: int
    last_error: str | None
    next_attempt_at: datetime
    created_at: datetime
    ticket_id: int | None = None
    chat_id: int | None = None
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewMail:
    """An email to put in the outbox, built by the caller (see component.core.emails)."""

    purpose: str
    recipients: tuple[str, ...]
    message: bytes


@dataclass(frozen=True, slots=True)
class BanAudit:
    """One line of a ban's audit trail."""

    ban_id: int
    action: str  # 'create' | 'change' | 'lift' | 'expire'
    actor: str
    detail: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident report: from a tagged chat, a ban, a rate limit or a report."""

    id: int
    kind: str
    chat_id: int | None
    address: str | None
    queue_id: int | None
    reporter: str
    tags: tuple[str, ...]
    notes: str
    explicit: bool
    status: str  # 'open' | 'resolved'
    created_at: datetime
    resolution: str | None = None
    resolved_at: datetime | None = None
    # What was done, as chosen when the incident was closed (see `core.outcomes`).
    outcome: str | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One notice refdesk sent to someone about a ban, an incident or a queue's staffing:
    the trail the admin page shows (what went to whom, when, by which channel)."""

    id: int
    purpose: str  # 'ban' | 'lift' | 'ban-notice' | 'incident' | 'outcome' | 'unstaffed' | 'staffed'
    channel: str  # 'email' | 'xmpp'
    recipient: str
    summary: str
    created_at: datetime
    incident_id: int | None = None
    ban_id: int | None = None
    chat_id: int | None = None
    queue_id: int | None = None
