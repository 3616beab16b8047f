"""What is kept of a patron's address, by a queue's privacy mode."""

from __future__ import annotations

import ipaddress

MODES = ("full", "network", "none")


def stored_address(address: str | None, mode: str) -> str | None:
    """The address as the transcript may keep it: whole ('full'), only its network — /24
    for IPv4, /48 for IPv6 — ('network'), or nothing ('none'). Bans still work on the live
    connection whatever is stored; the service calls this when it creates a chat."""
    if address is None or mode == "none":
        return None
    if mode == "full":
        return address
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))
