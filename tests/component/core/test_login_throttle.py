"""The login throttle's rules: which network an attempt counts under, and when it may go
ahead."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from component.core.login_throttle import (
    UNKNOWN_NETWORK,
    LoginLimits,
    LoginRecord,
    allowed,
    throttle_network,
)


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        (None, UNKNOWN_NETWORK),
        ("", UNKNOWN_NETWORK),
        ("not an address", UNKNOWN_NETWORK),
        ("1.2.3.4\x00", UNKNOWN_NETWORK),
    ],
)
def test_network_keys(address: str | None, key: str) -> None:
    assert throttle_network(address) == key


@settings(deadline=None)
@given(st.ip_addresses(v=6), st.integers(0, 2**64 - 1))
def test_every_address_of_a_64_shares_its_key(address: IPv6Address, host: int) -> None:
    sibling = IPv6Address((int(address) >> 64 << 64) | host)
    if address.ipv4_mapped is not None or sibling.ipv4_mapped is not None:
        return  # counted as the IPv4 address it carries
    assert throttle_network(str(sibling)) == throttle_network(str(address))
    assert throttle_network(str(address)).endswith("/64")


LIMITS = LoginLimits(per_user_and_network=5, per_network=20, per_user=30)


@pytest.mark.parametrize(
    ("record", "ok"),
    [
        (LoginRecord(0, 0, 0, False), True),
        (LoginRecord(4, 19, 29, False), True),
        (LoginRecord(5, 5, 5, False), False),
        (LoginRecord(0, 20, 0, False), False),
        (LoginRecord(0, 20, 0, True), False),
        (LoginRecord(0, 0, 30, False), False),
        (LoginRecord(0, 0, 30, True), True),
        (LoginRecord(5, 0, 30, True), False),
    ],
)
def test_allowed(record: LoginRecord, ok: bool) -> None:
    assert allowed(record, LIMITS) is ok
