"""Tests for web.addresses: which address a patron request comes from."""

from __future__ import annotations

import ipaddress

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from web.addresses import IPAddress, IPNetwork, parse_ip, request_hops
from web.addresses import client_ip as _client_ip

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address

PROXY_NETS: list[IPNetwork] = [ipaddress.ip_network("10.0.0.0/8")]
V6_PROXY_NETS: list[IPNetwork] = [ipaddress.ip_network("fd00::/8")]
MIXED_NETS: list[IPNetwork] = [
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("fd00::/8"),
    ipaddress.ip_network("127.0.0.1/32"),
]


def client_ip(peer: str | None, header: str | None, trusted: list[IPNetwork]) -> IPAddress | None:
    """`client_ip` with the hops as one X-Forwarded-For value."""
    return _client_ip(peer, header.split(",") if header else [], trusted)


# parse_ip --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", V4("192.0.2.1")),
        (" 192.0.2.1 ", V4("192.0.2.1")),
        ("0.0.0.0", V4("0.0.0.0")),
        ("2001:db8::1", V6("2001:db8::1")),
        ("2001:DB8:0:0:0:0:0:1", V6("2001:db8::1")),
        ("::1", V6("::1")),
        ("[2001:db8::1]", V6("2001:db8::1")),
        ("[2001:db8::1]:8443", V6("2001:db8::1")),
        (" [::1] ", V6("::1")),
        ("192.0.2.1:8080", V4("192.0.2.1")),
        ('"[2001:db8::1]:4711"', V6("2001:db8::1")),
    ],
)
def test_parse_ip_valid(text: str, expected: object) -> None:
    assert parse_ip(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("::ffff:192.0.2.1", V4("192.0.2.1")),
        ("::FFFF:10.1.2.3", V4("10.1.2.3")),
        ("[::ffff:192.0.2.1]", V4("192.0.2.1")),
        ("::ffff:c000:201", V4("192.0.2.1")),
    ],
)
def test_parse_ip_ipv4_mapped_becomes_ipv4(text: str, expected: V4) -> None:
    addr = parse_ip(text)
    assert isinstance(addr, V4)
    assert addr == expected


def test_parse_ip_ipv4_compatible_is_not_mapped() -> None:
    # ::c000:201 (deprecated IPv4-compatible) is not the ::ffff: mapped form.
    assert isinstance(parse_ip("::c000:201"), V6)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "unknown",
        "localhost",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "192.0.2.1:port",
        "192.0.2.1:",
        "localhost:80",
        "2001:db8::g",
        "[2001:db8::1",
        "[]",
        "[garbage]",
        "1.2.3.4, 5.6.7.8",
        "192.0.2.1/24",
    ],
)
def test_parse_ip_garbage_is_none(text: str | None) -> None:
    assert parse_ip(text) is None


# client_ip -------------------------------------------------------------------------------


def test_no_peer_is_none() -> None:
    assert client_ip(None, "192.0.2.1", PROXY_NETS) is None
    assert client_ip("", None, PROXY_NETS) is None


def test_untrusted_peer_without_header() -> None:
    assert client_ip("198.51.100.7", None, PROXY_NETS) == V4("198.51.100.7")


@pytest.mark.parametrize("header", ["192.0.2.1", "10.0.0.5", "192.0.2.1, 10.0.0.5", "junk"])
def test_untrusted_peer_ignores_forged_header(header: str) -> None:
    assert client_ip("198.51.100.7", header, PROXY_NETS) == V4("198.51.100.7")


def test_no_trusted_proxies_ignores_header() -> None:
    assert client_ip("10.0.0.1", "192.0.2.1", []) == V4("10.0.0.1")


def test_trusted_proxy_without_header_is_the_peer() -> None:
    assert client_ip("10.0.0.1", None, PROXY_NETS) == V4("10.0.0.1")
    assert client_ip("10.0.0.1", "", PROXY_NETS) == V4("10.0.0.1")


def test_trusted_proxy_single_hop() -> None:
    assert client_ip("10.0.0.1", "192.0.2.1", PROXY_NETS) == V4("192.0.2.1")


def test_trusted_proxy_takes_rightmost_untrusted_hop() -> None:
    # The patron wrote "203.0.113.66" themselves; our proxy appended their real address.
    header = "203.0.113.66, 192.0.2.1"
    assert client_ip("10.0.0.1", header, PROXY_NETS) == V4("192.0.2.1")


def test_chain_of_two_trusted_proxies() -> None:
    header = "203.0.113.66, 192.0.2.1, 10.0.0.2"
    assert client_ip("10.0.0.1", header, PROXY_NETS) == V4("192.0.2.1")


def test_chain_without_spaces_and_with_padding() -> None:
    assert client_ip("10.0.0.1", "192.0.2.1,10.0.0.2", PROXY_NETS) == V4("192.0.2.1")
    assert client_ip("10.0.0.1", "  192.0.2.1 ,  10.0.0.2  ", PROXY_NETS) == V4("192.0.2.1")


def test_all_hops_trusted_gives_the_leftmost() -> None:
    assert client_ip("10.0.0.1", "10.0.0.3, 10.0.0.2", PROXY_NETS) == V4("10.0.0.3")


@pytest.mark.parametrize("header", ["garbage", "192.0.2.1, garbage", "not an ip at all", ","])
def test_garbled_header_falls_back_to_the_peer(header: str) -> None:
    assert client_ip("10.0.0.1", header, PROXY_NETS) == V4("10.0.0.1")


def test_garbled_hop_beyond_a_trusted_proxy_falls_back_to_that_proxy() -> None:
    # Everything right of the garbage was written by proxies we trust.
    assert client_ip("10.0.0.1", "junk, 10.0.0.2", PROXY_NETS) == V4("10.0.0.2")


def test_garbage_left_of_the_client_is_never_read() -> None:
    assert client_ip("10.0.0.1", "junk, 192.0.2.1", PROXY_NETS) == V4("192.0.2.1")


def test_ipv6_proxies() -> None:
    assert client_ip("fd00::1", "2001:db8::5", V6_PROXY_NETS) == V6("2001:db8::5")
    assert client_ip("fd00::1", "2001:db8::9, 2001:db8::5, fd00::2", V6_PROXY_NETS) == V6(
        "2001:db8::5"
    )
    assert client_ip("fd00::1", "192.0.2.1", V6_PROXY_NETS) == V4("192.0.2.1")
    assert client_ip("2001:db8::77", "192.0.2.1", V6_PROXY_NETS) == V6("2001:db8::77")


def test_bracketed_ipv6_hops() -> None:
    assert client_ip("fd00::1", "[2001:db8::5]:4711", V6_PROXY_NETS) == V6("2001:db8::5")


def test_mixed_families() -> None:
    assert client_ip("10.0.0.1", "2001:db8::5, fd00::2", MIXED_NETS) == V6("2001:db8::5")
    assert client_ip("fd00::1", "192.0.2.1, 10.9.9.9", MIXED_NETS) == V4("192.0.2.1")


def test_ipv4_network_never_trusts_an_ipv6_peer() -> None:
    assert client_ip("2001:db8::1", "192.0.2.1", PROXY_NETS) == V6("2001:db8::1")


def test_ipv4_mapped_peer_counts_as_ipv4_proxy() -> None:
    # A dual-stack listener reports IPv4 proxies as ::ffff:a.b.c.d.
    assert client_ip("::ffff:10.0.0.1", "192.0.2.1", PROXY_NETS) == V4("192.0.2.1")
    assert client_ip("::ffff:127.0.0.1", "192.0.2.1", MIXED_NETS) == V4("192.0.2.1")


def test_ipv4_mapped_hop_becomes_ipv4() -> None:
    addr = client_ip("10.0.0.1", "::ffff:192.0.2.1", PROXY_NETS)
    assert addr == V4("192.0.2.1")
    assert isinstance(addr, V4)


def test_ipv4_mapped_hop_of_a_trusted_proxy_is_skipped() -> None:
    assert client_ip("10.0.0.1", "192.0.2.1, ::ffff:10.0.0.2", PROXY_NETS) == V4("192.0.2.1")


def _hops(header: str, **headers: str) -> list[str]:
    request = make_mocked_request(
        "GET", "/", headers=CIMultiDict((k.replace("_", "-"), v) for k, v in headers.items())
    )
    return request_hops(request, header)


def test_x_forwarded_for_hops_with_ports() -> None:
    hops = _hops("X-Forwarded-For", X_Forwarded_For="198.51.100.1, 203.0.113.66:4711")
    assert client_ip("10.0.0.1", ",".join(hops), PROXY_NETS) == V4("203.0.113.66")
    hops = _hops("X-Forwarded-For", X_Forwarded_For="[2001:db8::66]:4711")
    assert _client_ip("fd00::1", hops, V6_PROXY_NETS) == V6("2001:db8::66")


def test_forwarded_header_rfc7239() -> None:
    proxy: list[IPNetwork] = [ipaddress.ip_network("192.0.2.0/24")]
    header = 'for=198.51.100.17;proto=https, for="[2001:db8:cafe::17]:4711", for=192.0.2.60:80'
    hops = _hops("Forwarded", Forwarded=header)
    assert hops == ["198.51.100.17", "[2001:db8:cafe::17]:4711", "192.0.2.60:80"]
    assert _client_ip("192.0.2.1", hops, proxy) == ipaddress.ip_address("2001:db8:cafe::17")
    # An obfuscated or missing `for` stops the walk at the last trusted hop.
    assert _client_ip("192.0.2.1", _hops("Forwarded", Forwarded="for=unknown"), proxy) == V4(
        "192.0.2.1"
    )
    assert _hops("Forwarded", Forwarded="proto=https") == [""]
    assert _hops("Forwarded") == []


def test_only_the_named_header_is_read() -> None:
    both = {"Forwarded": "for=203.0.113.66", "X_Forwarded_For": "198.51.100.9"}
    assert _hops("Forwarded", **both) == ["203.0.113.66"]
    assert _hops("X-Forwarded-For", **both) == ["198.51.100.9"]
    assert _hops("X-Forwarded-For", Forwarded="for=203.0.113.66") == []
    assert _hops("Forwarded", X_Forwarded_For="198.51.100.9") == []
