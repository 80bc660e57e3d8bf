# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The database-backed limiter: counted in its own transaction, exact under concurrency, keys only as digests."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from hygie.governance import limits
from hygie.governance.limits import Limited, ThrottleCounter, spend, sweep
from hygie.hub import Hub
from tests import postgres
from tests.conftest import make_settings


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def limiter_hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub per database for the whole module (each test uses buckets of its own)."""
    url = None
    if request.param == "postgresql":
        url = postgres.create_database(request.getfixturevalue("postgres_cluster"), "hygie_test_limits")
    settings = make_settings(tmp_path_factory.mktemp("limits") / "hub", **({"database_url": url} if url else {}))
    hub = Hub.init(settings)
    yield hub
    hub.close()
    if url:
        postgres.drop_database(url)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock(1_900_000_000.0)
    monkeypatch.setattr(limits, "clock", c)
    return c


def test_a_key_gets_its_limit_per_window_then_waits(limiter_hub: Hub, clock: Clock) -> None:
    for _ in range(3):
        spend(limiter_hub, "t-window", "192.0.2.1", limit=3, window_seconds=60)
    clock.now += 10
    with pytest.raises(Limited) as refused:
        spend(limiter_hub, "t-window", "192.0.2.1", limit=3, window_seconds=60)
    assert refused.value.status == 429 and refused.value.retry_after == 50
    assert "192.0.2.1" not in refused.value.message
    # Another key, and the same key in another bucket, have their own counts.
    spend(limiter_hub, "t-window", "192.0.2.2", limit=3, window_seconds=60)
    spend(limiter_hub, "t-other", "192.0.2.1", limit=3, window_seconds=60)
    # Refused attempts are not counted: once the window ends, a full new one opens.
    clock.now += 50
    for _ in range(3):
        spend(limiter_hub, "t-window", "192.0.2.1", limit=3, window_seconds=60)
    with pytest.raises(Limited):
        spend(limiter_hub, "t-window", "192.0.2.1", limit=3, window_seconds=60)


def test_a_callers_rollback_does_not_give_the_attempt_back(limiter_hub: Hub, clock: Clock) -> None:
    with limiter_hub.session() as session:
        session.execute(text("SELECT 1"))
        spend(limiter_hub, "t-rollback", "who", limit=1, window_seconds=60)
        session.rollback()
    with pytest.raises(Limited):
        spend(limiter_hub, "t-rollback", "who", limit=1, window_seconds=60)


def test_keys_are_stored_only_as_keyed_digests(limiter_hub: Hub, clock: Clock) -> None:
    raw = "1850775123456 DUPONT 1985-07-12"
    spend(limiter_hub, "t-digest", raw, limit=5, window_seconds=60)
    with limiter_hub.engine.connect() as connection:
        rows = connection.execute(select(ThrottleCounter).where(ThrottleCounter.bucket == "t-digest")).all()
    assert len(rows) == 1
    stored = repr(tuple(rows[0])).encode() + rows[0].key_digest
    assert b"1850775123456" not in stored and b"DUPONT" not in stored
    assert len(rows[0].key_digest) == 32


def test_threads_hammering_one_key_never_exceed_the_limit(limiter_hub: Hub) -> None:
    """Eight threads (eight database connections) spend 10 attempts each on one key limited to 25."""
    allowed: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def hammer() -> None:
        start.wait()
        for _ in range(10):
            try:
                spend(limiter_hub, "t-race", "one key", limit=25, window_seconds=600)
            except Limited:
                continue
            except BaseException as exc:
                errors.append(exc)
            else:
                allowed.append(1)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(allowed) == 25
    with limiter_hub.engine.connect() as connection:
        count = connection.execute(select(ThrottleCounter.count).where(ThrottleCounter.bucket == "t-race")).scalar()
    assert count == 25


def test_expired_rows_are_swept(limiter_hub: Hub, clock: Clock) -> None:
    for n in range(5):
        spend(limiter_hub, "t-sweep", f"key {n}", limit=1, window_seconds=5)
    clock.now += 6
    assert sweep(limiter_hub, force=True) >= 5
    with limiter_hub.engine.connect() as connection:
        left = connection.execute(
            select(func.count()).select_from(ThrottleCounter).where(ThrottleCounter.bucket == "t-sweep")
        ).scalar()
    assert left == 0
    spend(limiter_hub, "t-sweep", "key 0", limit=1, window_seconds=5)  # a swept key starts afresh


def test_a_limit_needs_at_least_one_attempt(limiter_hub: Hub) -> None:
    with pytest.raises(ValueError):
        spend(limiter_hub, "t-bad", "x", limit=0, window_seconds=60)
