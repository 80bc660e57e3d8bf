# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Deadlines on calls into storage and the engine.

The metadata database bounds itself (see :func:`hygie.db.make_engine`: pool wait, connect timeout, PostgreSQL
statement_timeout, SQLite busy timeout). For other blocking calls:

- :func:`call_with_deadline` runs a call on a worker and gives up waiting after a deadline (the call is not killed:
  use it where the call is read-only or idempotent);
- :func:`interrupt_after` interrupts a DuckDB query past its deadline (DuckDB stops it cleanly).

A failure raised by either, or by the database driver, is answered 503 by the middleware and counted by the breaker
of its dependency; :func:`hygie.portal.resilience.faults.dependency_of` says which.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import TypeVar

import duckdb

from hygie.portal.resilience.classes import Dependency
from hygie.portal.resilience.faults import DependencyUnavailable

T = TypeVar("T")

_workers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hygie-deadline")


def call_with_deadline(dependency: Dependency, seconds: float, call: Callable[[], T]) -> T:
    """The call's result, or :class:`DependencyUnavailable` once ``seconds`` have passed without one."""
    future = _workers.submit(call)
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        future.cancel()
        raise DependencyUnavailable(dependency, f"the {dependency} did not answer within {seconds:g} s") from None


@contextmanager
def interrupt_after(connection: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[None]:
    """Interrupt the DuckDB query running on ``connection`` if the block lasts longer than ``seconds``."""
    fired = threading.Event()

    def interrupt() -> None:
        fired.set()
        connection.interrupt()

    timer = threading.Timer(seconds, interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException:
        if fired.is_set():
            raise DependencyUnavailable(
                Dependency.WAREHOUSE, f"the query engine did not finish within {seconds:g} s"
            ) from None
        raise
    finally:
        timer.cancel()
