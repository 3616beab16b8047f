"""Caps on what one address and one network may hold open at once (connections,
WebSockets, long-poll sessions). Pure counting, no I/O.

"Address" is the address itself for IPv4 and its /64 for IPv6 (one home or phone network
gets a whole /64 and may use a fresh address from it for every connection, as bans and
rate limits assume too); "network" is the /24 for IPv4 and the /48 for IPv6. IPv4-mapped
IPv6 counts as IPv4.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Over = Literal["address", "network"]
_Key = tuple[int, int, int]  # (prefix length, IP version, leading bits)


@dataclass(frozen=True, slots=True)
class SlotRefusal:
    """Why `AddressSlots.acquire` said no: which cap (`over`), for which address or
    network (`subject`, e.g. "203.0.113.0/24"), and the cap itself."""

    over: Over
    subject: str
    cap: int


class AddressSlots:
    """Counts open things per address and per network against `per_address` and
    `per_network`. The listener keeps one for TCP connections, the patron transports one
    for WebSockets and long-poll sessions (by the patron's address behind a proxy)."""

    def __init__(
        self,
        per_address: int,
        per_network: int,
        *,
        ipv6_address_prefix: int = 64,
        ipv4_network_prefix: int = 24,
        ipv6_network_prefix: int = 48,
    ) -> None:
        if per_address < 1 or per_network < 1:
            raise ValueError("caps must allow at least one")
        self.per_address = per_address
        self.per_network = per_network
        self._prefixes = {
            4: (32, ipv4_network_prefix),
            6: (ipv6_address_prefix, ipv6_network_prefix),
        }
        self._counts: dict[_Key, int] = {}
        self._total = 0

    def __len__(self) -> int:
        """How many slots are taken in all."""
        return self._total

    def _keys(self, address: IPAddress) -> tuple[_Key, _Key]:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        bits = 32 if address.version == 4 else 128
        own, net = self._prefixes[address.version]
        value = int(address)
        return (
            (own, address.version, value >> (bits - own)),
            (net, address.version, value >> (bits - net)),
        )

    def acquire(self, address: IPAddress) -> SlotRefusal | None:
        """Take a slot for `address`, or say which cap it would break (then nothing is
        taken). Every successful call must be paired with one `release`."""
        own, net = self._keys(address)
        if self._counts.get(own, 0) >= self.per_address:
            return SlotRefusal("address", _subject(address, own[0]), self.per_address)
        if self._counts.get(net, 0) >= self.per_network:
            return SlotRefusal("network", _subject(address, net[0]), self.per_network)
        self._counts[own] = self._counts.get(own, 0) + 1
        self._counts[net] = self._counts.get(net, 0) + 1
        self._total += 1
        return None

    def release(self, address: IPAddress) -> None:
        """Give back a slot taken by `acquire`."""
        for key in self._keys(address):
            left = self._counts.get(key, 0) - 1
            if left > 0:
                self._counts[key] = left
            else:
                self._counts.pop(key, None)
        self._total = max(0, self._total - 1)

    def held(self, address: IPAddress) -> int:
        """Slots held by this address (its /64 for IPv6)."""
        return self._counts.get(self._keys(address)[0], 0)


def _subject(address: IPAddress, prefix: int) -> str:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if prefix == address.max_prefixlen:
        return str(address)
    return str(ipaddress.ip_network((address, prefix), strict=False))
