"""Sticky pickup: the operator who ended a chat as inappropriate takes the same patron's
next requests for a while, so the same person answers them the same way.

Pure: no I/O. What is remembered of the patron is what the earlier chat's queue may keep
(`component.core.privacy.stored_address`): the address ('full'), its network ('network'),
or nothing at all ('none', and then there is no sticky pickup). The operator commands
remember (`!c goodbye-inappropriate`, `!ban`, an incident tag); routing asks, for a new
chat's first offer, which remembered operator it goes to first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_network

from component.core.bans import BanError, canonical_address, canonical_network
from component.core.privacy import stored_address


@dataclass(frozen=True, slots=True)
class StickyMark:
    """One remembered ending: `key` is the address or network kept, `why` what the
    operator did, as the offer says it ("ended with goodbye-inappropriate", "ended with
    !ban", "tagged incident")."""

    key: str
    operator_jid: str
    chat_id: int
    why: str
    created_at: datetime
    expires_at: datetime


def remembered_key(address: str | None, privacy: str) -> str | None:
    """What may be remembered of the patron's address under the queue's privacy mode, in
    the form `matches` compares; None when nothing may be (or the address is unusable)."""
    if address is not None and "/" in address and privacy == "network":
        kept: str | None = address  # already the network (a stored origin after a restart)
    else:
        kept = stored_address(address, privacy)
    if kept is None:
        return None
    try:
        if "/" in kept:
            return str(canonical_network(ip_network(kept, strict=False)))
        return str(canonical_address(kept))
    except (BanError, ValueError):
        return None


def matches(key: str, address: str | None) -> bool:
    """Whether a patron at `address` is the one (or on the network) a mark remembers."""
    if address is None:
        return False
    try:
        patron = canonical_address(address)
        if "/" in key:
            network = canonical_network(ip_network(key, strict=False))
            return patron.version == network.version and patron in network
        return patron == canonical_address(key)
    except (BanError, ValueError):
        return False


def claims(marks: Iterable[StickyMark], address: str | None, now: datetime) -> list[StickyMark]:
    """The unexpired marks that remember `address`, newest first, one per operator (the
    newest of each): routing offers to the first of them who can take the chat."""
    found: list[StickyMark] = []
    seen: set[str] = set()
    for mark in sorted(marks, key=lambda m: m.created_at, reverse=True):
        if mark.expires_at <= now or mark.operator_jid in seen or not matches(mark.key, address):
            continue
        seen.add(mark.operator_jid)
        found.append(mark)
    return found


def offer_note(mark: StickyMark, tags: Iterable[str] = ()) -> str:
    """What the operator reads in the offer: that the patron is back, and why it came to
    them (the earlier chat's number, what ended it and its tags)."""
    tagged = ", ".join(sorted(tags))
    return f"returning patron: your chat #{mark.chat_id} {mark.why}" + (
        f" (tags: {tagged})" if tagged else ""
    )
