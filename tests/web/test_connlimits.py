"""Tests for web.connlimits: connections counted per address and per network."""

from __future__ import annotations

import ipaddress

import pytest

from web.connlimits import AddressSlots, SlotRefusal

ip = ipaddress.ip_address


def test_per_address_cap_and_release() -> None:
    slots = AddressSlots(2, 10)
    assert slots.acquire(ip("203.0.113.1")) is None
    assert slots.acquire(ip("203.0.113.1")) is None
    assert slots.acquire(ip("203.0.113.1")) == SlotRefusal("address", "203.0.113.1", 2)
    assert slots.acquire(ip("203.0.113.2")) is None  # another address in the network
    assert len(slots) == 3
    slots.release(ip("203.0.113.1"))
    assert slots.held(ip("203.0.113.1")) == 1
    assert slots.acquire(ip("203.0.113.1")) is None


def test_ipv6_counts_by_slash_64_and_networks_by_slash_48() -> None:
    slots = AddressSlots(2, 3)
    assert slots.acquire(ip("2001:db8:1:1::1")) is None
    assert slots.acquire(ip("2001:db8:1:1::2")) is None  # same /64: the same "address"
    refused = slots.acquire(ip("2001:db8:1:1:ffff::9"))
    assert refused == SlotRefusal("address", "2001:db8:1:1::/64", 2)
    assert slots.acquire(ip("2001:db8:1:2::1")) is None  # another /64, same /48
    assert slots.acquire(ip("2001:db8:1:3::1")) == SlotRefusal("network", "2001:db8:1::/48", 3)
    assert slots.acquire(ip("2001:db8:2::1")) is None  # another /48


def test_ipv4_networks_and_mapped_addresses() -> None:
    slots = AddressSlots(5, 2)
    assert slots.acquire(ip("198.51.100.1")) is None
    assert slots.acquire(ip("::ffff:198.51.100.2")) is None  # IPv4-mapped is IPv4
    assert slots.acquire(ip("198.51.100.3")) == SlotRefusal("network", "198.51.100.0/24", 2)
    slots.release(ip("::ffff:198.51.100.2"))
    assert slots.acquire(ip("198.51.100.3")) is None
    with pytest.raises(ValueError):
        AddressSlots(0, 1)


def test_release_forgets_empty_keys() -> None:
    slots = AddressSlots(3, 3)
    for n in range(1, 4):
        assert slots.acquire(ip(f"192.0.2.{n}")) is None
    for n in range(1, 4):
        slots.release(ip(f"192.0.2.{n}"))
    assert len(slots) == 0 and slots._counts == {}
