"""State changes that several parts care about, as small immutable events.

The service publishes them on its `EventBus`; the XMPP adapter and the web side each
subscribe to the ones they need, so neither transport knows the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network

from component.core.models import ChatEvent, QueueStatus


@dataclass(frozen=True, slots=True)
class ChatOffered:
    """A waiting chat is offered to operators; `history` is the transcript so far (notes
    included: the receivers are staff). `via` says how it came (transfer, rollover...)."""

    chat_id: int
    guest: str
    queue: str
    queue_title: str
    operator_jids: tuple[str, ...]
    history: tuple[ChatEvent, ...]
    via: str = ""
    # Whether the patron is connected now (the guest JID then shows as available).
    patron_connected: bool = True


@dataclass(frozen=True, slots=True)
class OfferWithdrawn:
    """Operators who had an offer must stop expecting the chat (timeout, rollover, left)."""

    chat_id: int
    guest: str
    operator_jids: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class ChatAccepted:
    chat_id: int
    guest: str
    operator_jid: str
    operator_name: str
    # Operators who had the offer and must be told someone else took it.
    others: tuple[str, ...]
    explicit: bool
    patron_connected: bool = True
    # Whether the taker had the offer (their client then shows the patron's presence).
    had_offer: bool = False


@dataclass(frozen=True, slots=True)
class MessagePosted:
    """A message was committed to the chat's transcript."""

    chat_id: int
    guest: str
    event: ChatEvent
    # Operators who must see it on XMPP: the chat's operator, or everyone offered it.
    operator_jids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ChatEnded:
    chat_id: int
    guest: str
    event: ChatEvent
    by: str
    operator_jids: tuple[str, ...]
    # The widget asks the patron to rate the chat (the queue asks, and it was answered).
    feedback: bool = False


@dataclass(frozen=True, slots=True)
class MessageCorrected:
    """The operator corrected their last line (seq `seq`); the patron's view shows the
    new text, marked as edited."""

    chat_id: int
    guest: str
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class GuestPresence:
    """The guest JID's presence for these operators changed: the patron (dis)connected,
    or an operator lost the chat. Offers, takes, withdrawals and ends carry their own."""

    chat_id: int
    guest: str
    operator_jids: tuple[str, ...]
    available: bool


@dataclass(frozen=True, slots=True)
class TypingChanged:
    chat_id: int
    guest: str
    by_patron: bool
    composing: bool
    operator_jids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QueueStatusChanged:
    """The queue's state as patrons see it changed. `positions` maps each open chat of the
    queue to its place in line (None once answered), computed once for all listeners."""

    queue: str
    status: QueueStatus
    waiting: int
    available_operators: int
    positions: Mapping[int, int | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OperatorNotice:
    """A line for one operator from a guest or queue JID (confirmations, errors, news).
    An `ephemeral` one only matters live (the queue's state at that moment): it is kept
    out of the operator's server archive."""

    operator_jid: str
    from_node: str
    text: str
    ephemeral: bool = False


@dataclass(frozen=True, slots=True)
class BanImposed:
    """A ban took effect: patrons connected from `network` must be shown `text` now."""

    ban_id: int
    network: IPv4Network | IPv6Network
    text: str
    # For the notices desk: the chat the ban was made in, whether an operator made it,
    # and the addresses the patron gave in that chat (read before `!ban` forgets them).
    chat_id: int | None = None
    by_operator: bool = False
    patron_emails: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BansLifted:
    """People lifted these bans early (the admin page, the command line)."""

    ban_ids: tuple[int, ...]
    actor: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class IncidentOpened:
    """An incident report was opened about a chat (a tag, a report, a ban request): the
    group's coordinators are told."""

    incident_id: int


@dataclass(frozen=True, slots=True)
class MailQueued:
    """Email was committed to the outbox: the worker should look now."""


@dataclass(frozen=True, slots=True)
class EmailOffered:
    """A waiting patron has waited past the queue's maximum: offer the email form."""

    chat_id: int
    text: str
    # The patron line's code (`component.core.patron_text`), for the widget's language.
    code: str | None = None


@dataclass(frozen=True, slots=True)
class DirectoryChanged:
    """Queues, operators or memberships were reloaded (new JIDs may need commands)."""

    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SubscriptionWanted:
    """Ask `operator_jid` to let the queue's JID see their presence."""

    queue: str
    operator_jid: str


Event = (
    ChatOffered
    | OfferWithdrawn
    | ChatAccepted
    | MessagePosted
    | MessageCorrected
    | ChatEnded
    | GuestPresence
    | TypingChanged
    | QueueStatusChanged
    | OperatorNotice
    | SubscriptionWanted
    | DirectoryChanged
    | MailQueued
    | EmailOffered
    | BanImposed
    | BansLifted
    | IncidentOpened
)
