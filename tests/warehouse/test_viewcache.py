# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The in-memory cache of decrypted views: bounded by its budget, by idleness, by project and by the hub's life."""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from hygie.warehouse.viewcache import ViewCache


def table(rows: int) -> dict[str, pa.Table]:
    return {"T": pa.table({"x": pa.array(range(rows), pa.int64())})}


def loader(rows: int, calls: list[int]) -> object:
    def load() -> dict[str, pa.Table]:
        calls.append(rows)
        return table(rows)

    return load


def test_a_view_is_loaded_once_and_then_read_from_memory() -> None:
    cache, calls = ViewCache(1 << 20, 60), []
    first = cache.tables("k", 1, estimate=lambda: 800, load=loader(100, calls))  # type: ignore[arg-type]
    second = cache.tables("k", 1, estimate=lambda: 800, load=loader(100, calls))  # type: ignore[arg-type]
    assert calls == [100] and first is second and cache.size == 800


def test_a_view_over_the_budget_is_never_loaded_into_the_cache() -> None:
    cache, calls = ViewCache(1000, 60), []
    assert cache.tables("big", 1, estimate=lambda: 1001, load=loader(200, calls)) is None  # type: ignore[arg-type]
    assert calls == [] and cache.size == 0
    # An estimate that undershoots: the tables serve this run but are not kept.
    got = cache.tables("under", 1, estimate=lambda: 10, load=loader(200, calls))  # type: ignore[arg-type]
    assert got is not None and cache.size == 0


def test_older_views_make_room_and_a_disabled_cache_holds_nothing() -> None:
    cache, calls = ViewCache(2000, 60), []
    for key in ("a", "b", "c"):
        cache.tables(key, 1, estimate=lambda: 800, load=loader(100, calls))  # type: ignore[arg-type]
    assert cache.size == 1600 and calls == [100, 100, 100]
    cache.tables("b", 1, estimate=lambda: 800, load=loader(100, calls))  # type: ignore[arg-type]
    assert calls == [100, 100, 100]  # b was kept (a, the oldest, made room for c)
    cache.tables("a", 1, estimate=lambda: 800, load=loader(100, calls))  # type: ignore[arg-type]
    assert len(calls) == 4
    off = ViewCache(0, 60)
    assert off.tables("a", 1, estimate=lambda: 1, load=loader(1, calls)) is None  # type: ignore[arg-type]


def test_idle_views_projects_and_a_closed_hub_are_forgotten() -> None:
    cache, calls = ViewCache(1 << 20, 60), []
    cache.tables("p1", 1, estimate=lambda: 8, load=loader(1, calls))  # type: ignore[arg-type]
    cache.tables("p2", 2, estimate=lambda: 8, load=loader(1, calls))  # type: ignore[arg-type]
    cache.drop_project(1)
    assert cache.size == 8
    cache.sweep(now=time.monotonic() + 61)
    assert cache.size == 0
    cache.tables("p2", 2, estimate=lambda: 8, load=loader(1, calls))  # type: ignore[arg-type]
    cache.clear()
    assert cache.size == 0
    assert cache.tables("p2", 2, estimate=lambda: 8, load=loader(1, calls)) is None  # type: ignore[arg-type]


def test_what_is_attached_to_a_project_goes_with_its_views() -> None:
    """Derived decrypted data (the release ledger's memo) lives exactly as long as the project's views may."""
    cache = ViewCache(1 << 20, 60)
    memo = cache.attached(1, "ledger", dict)
    assert memo is not None and cache.attached(1, "ledger", dict) is memo  # kept between checks
    kept = cache.attached(2, "ledger", dict)
    assert kept is not memo
    cache.drop_project(1)  # the view destroyed
    assert cache.attached(1, "ledger", dict) is not memo
    assert cache.attached(2, "ledger", dict) is kept  # another project's stays
    cache.sweep(now=time.monotonic() + 61)  # idle
    assert cache.attached(2, "ledger", dict) is not kept
    cache.clear()  # the hub closed
    assert cache.attached(2, "ledger", dict) is None
    assert ViewCache(0, 60).attached(1, "ledger", dict) is None  # the cache off: nothing kept


def test_the_sweeper_drops_an_idle_view_without_another_access() -> None:
    cache, calls = ViewCache(1 << 20, 0.05), []
    cache.tables("k", 1, estimate=lambda: 8, load=loader(1, calls))  # type: ignore[arg-type]
    deadline = time.monotonic() + 30
    while cache.size and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.size == 0
    cache.clear()


def test_concurrent_runs_load_a_view_once() -> None:
    cache, calls = ViewCache(1 << 20, 60), []
    gate = threading.Event()

    def slow() -> dict[str, pa.Table]:
        gate.wait(10)
        calls.append(1)
        return table(10)

    threads = [
        threading.Thread(target=cache.tables, args=("k", 1), kwargs={"estimate": lambda: 80, "load": slow})
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert calls == [1]


def test_a_view_destroyed_or_a_hub_closed_while_it_loads_is_not_kept() -> None:
    """Crypto-shredding must not be undone by a load that had opened the files before they were destroyed."""
    for close in (False, True):
        cache = ViewCache(1 << 20, 60)

        def load_then_destroy(cache: ViewCache = cache, close: bool = close) -> dict[str, pa.Table]:
            cache.clear() if close else cache.drop_project(1)  # what destroy_view or Hub.close does meanwhile
            return table(10)

        assert cache.tables("k", 1, estimate=lambda: 80, load=load_then_destroy) is not None  # this run only
        assert cache.size == 0
