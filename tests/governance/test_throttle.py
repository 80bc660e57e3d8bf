"""Which source a failed sign-in counts against."""

from __future__ import annotations

from hygie.governance.throttle import client_address


def test_one_ipv6_subscriber_is_one_source() -> None:
    # A subscriber holds a /64: hopping between its addresses must not buy more tries.
    assert client_address("2001:db8:1:2::1") == client_address("2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert client_address("2001:db8:1:2::1") != client_address("2001:db8:1:3::1")
    assert client_address("192.0.2.7") != client_address("192.0.2.8")
    assert client_address("::ffff:192.0.2.7") == client_address("192.0.2.7")
    assert client_address(None) == "unknown"
