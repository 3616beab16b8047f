from component.core.privacy import stored_address


def test_stored_address_by_mode() -> None:
    assert stored_address("203.0.113.77", "full") == "203.0.113.77"
    assert stored_address("203.0.113.77", "network") == "203.0.113.0/24"
    assert stored_address("2001:db8:1:2:3::9", "network") == "2001:db8:1::/48"
    assert stored_address("203.0.113.77", "none") is None
    assert stored_address(None, "full") is None
    assert stored_address("garbage", "network") is None
