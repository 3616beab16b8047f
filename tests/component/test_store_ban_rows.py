"""Stored networks read back through the fast path equal what `ip_network` makes of them."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_network

from hypothesis import given
from hypothesis import strategies as st

from component.store.bans import _network

v4 = st.builds(
    lambda value, prefix: IPv4Network((value, prefix), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6 = st.builds(
    lambda value, prefix: IPv6Network((value, prefix), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(0, 128),
)


@given(st.one_of(v4, v6))
def test_stored_networks_read_back_equal(network: IPv4Network | IPv6Network) -> None:
    text = str(network)
    assert _network(text) == ip_network(text, strict=False)
    assert type(_network(text)) is type(network)


def test_unusual_text_falls_back_to_the_standard_parser() -> None:
    for text in ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1/128", "192.0.2.7/24"):
        assert _network(text) == ip_network(text, strict=False)
