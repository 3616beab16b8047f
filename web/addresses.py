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


def forwarded_for(x_forwarded_for: str | None, forwarded: str | None) -> str | None:
    """The hop list of a request, as X-Forwarded-For writes it: from `X-Forwarded-For`
    if present, else from the `for=` parameters of RFC 7239 `Forwarded`
    (`for=192.0.2.1;proto=https, for="[2001:db8::1]:443"`); obfuscated identifiers
    such as `for=unknown` or `for=_hidden` are kept as hops so that they stop the walk."""
    if x_forwarded_for:
        return x_forwarded_for
    if not forwarded:
        return None
    hops = []
    for element in forwarded.split(","):
        for pair in element.split(";"):
            name, _, value = pair.strip().partition("=")
            if name.strip().lower() != "for":
                continue
            value = value.strip().strip('"')
            if value.startswith("["):
                value = value[: value.find("]") + 1] if "]" in value else value
            elif value.count(":") == 1:
                value = value.split(":")[0]  # IPv4 with a port
            hops.append(value)
    return ", ".join(hops) if hops else None
