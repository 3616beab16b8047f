"""Which address a request comes from. Only configured proxies are believed."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import hdrs, web

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
X_FORWARDED_FOR = hdrs.X_FORWARDED_FOR


def parse_ip(text: str | None) -> IPAddress | None:
    """An address from a header hop or peer name; IPv4-mapped IPv6 becomes plain IPv4.

    Proxies write hops with ports too: `203.0.113.66:4711`, `[2001:db8::1]:4711` (and
    RFC 7239 quotes them). Anything else that is not an address gives None."""
    if not text:
        return None
    text = text.strip().strip('"').strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not port.isdigit() or "." not in host:
            return None
        text = host  # IPv4 with a port (a bare IPv6 address has several colons)
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def client_ip(
    peer: str | None, hops: Sequence[str], trusted: Sequence[IPNetwork]
) -> IPAddress | None:
    """The patron's address for a request from `peer` whose proxy header lists `hops`
    (oldest first, as `request_hops` returns them).

    Called by every patron entry point through `request_origin`. The hops are read right
    to left, skipping addresses of trusted proxies; the first untrusted hop is the client.
    From an untrusted peer the header is ignored altogether, since anyone can write it. A
    hop that is no address (`unknown`, `_hidden`, garbage) stops the walk at the last
    address a trusted proxy vouched for.
    """
    addr = parse_ip(peer)
    if addr is None or not _trusted(addr, trusted):
        return addr
    for hop in reversed(hops):
        hop_addr = parse_ip(hop)
        if hop_addr is None:
            return addr
        addr = hop_addr
        if not _trusted(hop_addr, trusted):
            return hop_addr
    return addr


def _trusted(addr: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(addr.version == net.version and addr in net for net in trusted)


def request_hops(request: web.BaseRequest, header: str) -> list[str]:
    """The hops of the one proxy header the deployment names (`[web] forwarded_header`),
    oldest first. Never both headers: a proxy that writes one passes the other through
    from the client unchanged, so reading both would let the client choose its address.

    `Forwarded` (RFC 7239) is parsed by aiohttp, quoting included; an element without a
    `for=` parameter is an unknown hop."""
    if header.lower() == "forwarded":
        return [element.get("for", "") for element in request.forwarded]
    return [
        hop for value in request.headers.getall(X_FORWARDED_FOR, ()) for hop in value.split(",")
    ]
