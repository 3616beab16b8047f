"""Shared-computer contacts: when incidents keep coming from an exempt network (a school,
a library's public PCs), the policy is to write to the facility's contact rather than ban
it. This module decides when that is due and drafts the message an admin then reviews and
sends.

Pure: no I/O. The moderation layer calls `due` after each incident from an exempt network
and stores the draft; the admin page shows it; the follow-up desk mails it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from ipaddress import ip_network

from component.core.bans import BanError, Network, canonical_address, canonical_network

# "Repeated" is `[bans] repeated_incidents` incidents from the network within this window.
INCIDENT_WINDOW = timedelta(days=30)
MAX_DRAFT_CHARS = 5000


@dataclass(frozen=True, slots=True)
class SeenIncident:
    """An incident as the draft describes it: never the chat's words, only what kind of
    incident it was, its tags and when."""

    id: int
    kind: str
    tags: tuple[str, ...]
    created_at: datetime
    address: str | None  # as the queue's privacy mode kept it: address, network or None


def within(address: str | None, network: Network) -> bool:
    """Whether a stored address lies in `network` (or a stored /24 or /48 overlaps it)."""
    if not address:
        return False
    try:
        if "/" in address:
            stored = canonical_network(ip_network(address, strict=False))
            # A kept /24 that overlaps the exempt network may well be one of its computers.
            return stored.version == network.version and stored.overlaps(network)
        patron = canonical_address(address)
        return patron.version == network.version and patron in network
    except (BanError, ValueError):
        return False


def due(
    incidents: Iterable[SeenIncident], network: Network, now: datetime, repeated: int
) -> list[SeenIncident]:
    """The incidents from `network` within the window, oldest first, if there are at
    least `repeated` of them (`[bans] repeated_incidents`): enough for a message to the
    facility's contact; [] otherwise."""
    since = now - INCIDENT_WINDOW
    found = sorted(
        (i for i in incidents if i.created_at >= since and within(i.address, network)),
        key=lambda i: (i.created_at, i.id),
    )
    return found if len(found) >= repeated else []


def draft_body(
    *, group_title: str, network: str, note: str, incidents: Sequence[SeenIncident]
) -> str:
    """The message to the facility's contact, for an admin to review: what happened (kinds,
    tags and dates, never what was written), and what is asked of them."""
    place = f"{network} ({note})" if note else network
    lines = [
        "Hello,",
        "",
        f"{group_title}'s chat reference service has recorded {len(incidents)} incidents "
        f"from computers on your network, {place}:",
        "",
    ]
    for incident in incidents:
        tags = f" (tagged {', '.join(incident.tags)})" if incident.tags else ""
        lines.append(f"- {incident.created_at:%Y-%m-%d %H:%M} UTC: {incident.kind}{tags}")
    lines += [
        "",
        "Because these computers are shared, we would rather not block them. Could you remind "
        "their users that the service is for questions to the library, and that abusive "
        "messages are not accepted? Reply to this message if you have questions.",
        "",
        "Thank you.",
    ]
    return "\n".join(lines)
