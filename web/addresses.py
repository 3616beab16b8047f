"""Which address a request comes from. Only configured proxies are believed."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_ip(text: str | None) -> IPAddress | None:
    """An address from a header or peer name; IPv4-mapped IPv6 becomes plain IPv4."""
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """The patron's address for a request from `peer` carrying `X-Forwarded-For`.

    Called by every patron entry point. The header is read right to left, skipping
    addresses of trusted proxies; the first untrusted hop is the client. From an
    untrusted peer the header is ignored altogether, since anyone can write it.
    """
    addr = parse_ip(peer)
    if addr is None or not _trusted(addr, trusted) or not forwarded_for:
        return addr
    for hop in reversed(forwarded_for.split(",")):
        hop_addr = parse_ip(hop)
        if hop_addr is None:
            return addr  # a garbled header: fall back to the last address we can vouch for
        addr = hop_addr
        if not _trusted(hop_addr, trusted):
            return hop_addr
    return addr


def _trusted(addr: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(addr.version == net.version and addr in net for net in trusted)
