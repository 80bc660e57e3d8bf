"""Deadlines on calls into storage and the engine, and which dependency a failure belongs to.

The metadata database bounds itself (see :func:`hygie.db.make_engine`: pool wait, connect timeout, PostgreSQL
statement_timeout, SQLite busy timeout). For other blocking calls:

- :func:`call_with_deadline` runs a call on a worker and gives up waiting after a deadline (the call is not killed:
  use it where the call is read-only or idempotent);
- :func:`interrupt_after` interrupts a DuckDB query past its deadline (DuckDB stops it cleanly).

A failure raised by either, or by the database driver, is answered 503 by the middleware and counted by the breaker
of its dependency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import TypeVar

import duckdb
import pyarrow as pa
from sqlalchemy import exc as sa

from hygie.portal.resilience.classes import Dependency

T = TypeVar("T")

_workers = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hygie-deadline")


class DependencyUnavailable(Exception):
    """A dependency failed or missed its deadline; the answer is "unavailable", never a default value."""

    def __init__(self, dependency: Dependency, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency
        self.message = message


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


_DATABASE_ERRORS = (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError)


def dependency_of(error: BaseException) -> Dependency | None:
    """The dependency a failure comes from, or None for a failure of the code itself (a bug: a 500, not a 503).

    Data errors of the database (integrity, programming) are bugs; what says the database itself is failing is an
    operational error: connection lost or refused, statement timeout, lock timeout, no free connection in the pool.
    For the warehouse: files missing or unreadable, and the engine's I/O and interrupts.
    """
    if isinstance(error, DependencyUnavailable):
        return error.dependency
    if isinstance(error, _DATABASE_ERRORS) or (isinstance(error, sa.DBAPIError) and error.connection_invalidated):
        return Dependency.DATABASE
    if isinstance(error, duckdb.IOException | duckdb.InterruptException | pa.ArrowIOError | OSError):
        return Dependency.WAREHOUSE
    from hygie.governance.citizen_index import CitizenIndexError  # late, as below
    from hygie.governance.views import ViewError  # late: views import the hub, which this module must not need

    if isinstance(error, ViewError | CitizenIndexError):  # a citizen extract that does not open: data unavailable
        return Dependency.WAREHOUSE
    return None
