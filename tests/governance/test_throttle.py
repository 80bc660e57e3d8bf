# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Which source a failed sign-in counts against, and the backoff kept in the database (shared, restart-proof)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from hygie.governance.limits import ThrottleCounter
from hygie.governance.throttle import SignInThrottle, client_address
from hygie.hub import Hub
from tests import postgres
from tests.conftest import make_settings


def test_one_ipv6_subscriber_is_one_source() -> None:
    # A subscriber holds a /64: hopping between its addresses must not buy more tries.
    assert client_address("2001:db8:1:2::1") == client_address("2001:db8:1:2:ffff:ffff:ffff:fffe")
    assert client_address("2001:db8:1:2::1") != client_address("2001:db8:1:3::1")
    assert client_address("192.0.2.7") != client_address("192.0.2.8")
    assert client_address("::ffff:192.0.2.7") == client_address("192.0.2.7")
    assert client_address(None) == "unknown"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def two_hubs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Hub]]:
    """Two Hub objects (two engines, as two processes have) over one data dir and database."""
    url = None
    if request.param == "postgresql":
        url = postgres.create_database(request.getfixturevalue("postgres_cluster"), "hygie_test_throttle")
    settings = make_settings(tmp_path_factory.mktemp("throttle") / "hub", **({"database_url": url} if url else {}))
    first = Hub.init(settings)
    second = Hub.open(settings)
    yield first, second
    first.close()
    second.close()
    if url:
        postgres.drop_database(url)


def test_backoff_is_shared_by_processes_and_survives_a_restart(two_hubs: tuple[Hub, Hub]) -> None:
    a, b = two_hubs
    now = [time.time()]
    one, other = SignInThrottle(a.settings, lambda: now[0]), SignInThrottle(b.settings, lambda: now[0])
    free = a.settings.login_free_failures
    for i in range(free):  # failures split between the two processes count together
        (one if i % 2 else other).failed(a if i % 2 else b, "198.51.100.1", "Alice ")
    seconds, first = other.wait(b, "198.51.100.1", "alice")  # same key: trimmed, case-folded
    assert seconds == a.settings.login_backoff_seconds and first == "pair"
    assert one.wait(a, "198.51.100.1", "alice") == (seconds, None)  # only the first refusal of a wait is noted
    # A fresh throttle object (a restarted process) sees the same wait; another address or username does not.
    assert SignInThrottle(a.settings, lambda: now[0]).wait(a, "198.51.100.1", "alice")[0] == seconds
    assert one.wait(a, "198.51.100.2", "alice")[0] == 0 and one.wait(a, "198.51.100.1", "bob")[0] == 0
    # The wait ends; the next failure doubles it; a success clears the pair (not the source's count).
    now[0] += seconds
    assert one.wait(a, "198.51.100.1", "alice")[0] == 0
    assert other.failed(b, "198.51.100.1", "alice") == 2 * seconds
    one.succeeded(a, "198.51.100.1", "alice")
    assert other.wait(b, "198.51.100.1", "alice")[0] == 0
    # Forgotten after login_throttle_forget_minutes without a failure.
    for _ in range(free + 2):
        one.failed(a, "198.51.100.3", "carol")
    now[0] += a.settings.login_throttle_forget_minutes * 60 + 1
    assert other.wait(b, "198.51.100.3", "carol")[0] == 0
    assert other.failed(b, "198.51.100.3", "carol") == 0  # counted from one again


def test_the_database_holds_no_address_or_username(two_hubs: tuple[Hub, Hub]) -> None:
    a, _ = two_hubs
    SignInThrottle(a.settings).failed(a, "203.0.113.77", "dr.watson@example.org")
    with a.engine.connect() as connection:
        rows = connection.execute(select(ThrottleCounter)).all()
    dumped = repr([tuple(r) for r in rows]).encode() + b"".join(r.key_digest for r in rows)
    assert rows and b"203.0.113.77" not in dumped and b"watson" not in dumped
