# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Which dependency a failure belongs to: the one place that tells a failing dependency (answered 503 with
Retry-After and counted by that dependency's breaker) from a failure of the code or of the request (a bug is a 500;
a bad request is answered 4xx by the app's handlers).

- Database: SQLAlchemy's ``OperationalError``, ``InterfaceError``, ``DisconnectionError``, pool ``TimeoutError``, a
  lost connection; a plain ``DatabaseError`` or ``InternalError`` only when the driver says the store itself fails
  (SQLite: I/O error, corrupt or not-a-database file, cannot open, disk full, busy; PostgreSQL: SQLSTATE classes
  08, 53, 57, 58, XX). ``IntegrityError``, ``DataError``, ``ProgrammingError`` and ``NotSupportedError`` are the
  request's or the code's fault, never a 503.
- Warehouse: DuckDB I/O errors and interrupts, Arrow and OS I/O errors while reading the Parquet files, Arrow's
  and DuckDB's "cannot read this Parquet file" (corrupt, truncated, emptied), a view or citizen extract that does
  not open.
- Key custody: the keystore cannot be opened (``CustodyLocked``) or its file is unreadable (an OS error, or bytes
  that are not its JSON, raised inside ``hygie.keys``).

A failure raised while handling another is classified by the first dependency fault in its chain of causes.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import types

import duckdb
import pyarrow as pa
from sqlalchemy import exc as sa

from hygie.portal.resilience.classes import Dependency


class DependencyUnavailable(Exception):
    """A dependency failed or missed its deadline; the answer is "unavailable", never a default value."""

    def __init__(self, dependency: Dependency, message: str) -> None:
        super().__init__(message)
        self.dependency = dependency
        self.message = message


_DATABASE_ERRORS = (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError, sa.TimeoutError)
_REQUEST_ERRORS = (
    sa.IntegrityError,
    sa.DataError,
    sa.ProgrammingError,
    sa.NotSupportedError,
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.ProgrammingError,
    sqlite3.NotSupportedError,
)
"""The database refused the request or the code (a constraint, a value out of range, bad SQL): not a fault of it
(with psycopg's same four, see :func:`_request_errors`)."""


def _psycopg() -> types.ModuleType | None:
    """psycopg if it is loaded. Not imported here: 0.2 s at every start of the portal, and on SQLite never needed;
    a psycopg error exists only once SQLAlchemy has imported the driver to reach PostgreSQL."""
    return sys.modules.get("psycopg")


def _request_errors() -> tuple[type[BaseException], ...]:
    driver = _psycopg()
    if driver is None:
        return _REQUEST_ERRORS
    return (*_REQUEST_ERRORS, driver.IntegrityError, driver.DataError, driver.ProgrammingError,
            driver.NotSupportedError)  # fmt: skip


# SQLite primary result codes meaning the store fails, not the statement (https://sqlite.org/rescode.html).
_SQLITE_FAULTS = frozenset(
    {
        5,  # SQLITE_BUSY
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        10,  # SQLITE_IOERR (and every extended I/O code)
        11,  # SQLITE_CORRUPT: "database disk image is malformed"
        13,  # SQLITE_FULL
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
        26,  # SQLITE_NOTADB: "file is not a database"
    }
)
# Messages of the same codes, for errors raised without a code (older drivers, errors re-raised by hand).
_SQLITE_MESSAGES = (
    "disk i/o error",
    "database disk image is malformed",
    "file is not a database",
    "unable to open database file",
    "database or disk is full",
    "database is locked",
    "locking protocol",
    "out of memory",
)
# What Arrow says, and DuckDB quotes from it, when a Parquet file's bytes do not read; a value the code converts
# wrongly ("Could not convert", "not in range") or a query's mistake says none of these.
_UNREADABLE_FILE = (
    "ioerror:",
    "could not read schema",
    "magic bytes",
    "deserialize thrift",
    "corrupt",
    "failed decryption",
    "parquet file size is 0",
    "too small to be a parquet file",
    "not a parquet file",
)
# PostgreSQL SQLSTATE classes of a failing server: connection, resources, operator intervention, system, internal.
_POSTGRES_FAULT_CLASSES = frozenset({"08", "53", "57", "58", "XX"})

_CAUSE_DEPTH = 8


def dependency_of(error: BaseException) -> Dependency | None:
    """The dependency a failure comes from, or None for a failure of the code or of the request (not a 503)."""
    seen: set[int] = set()
    current: BaseException | None = error
    for _ in range(_CAUSE_DEPTH):
        if current is None or id(current) in seen:
            return None
        seen.add(id(current))
        found = _own(current)
        if found is not None:
            return found
        if isinstance(current, _request_errors()):
            return None  # the request's fault, whatever happened before it
        current = current.__cause__ or current.__context__
    return None


def _own(error: BaseException) -> Dependency | None:
    """The dependency ``error`` itself says is failing (its causes aside)."""
    if isinstance(error, DependencyUnavailable):
        return error.dependency
    if isinstance(error, sa.DBAPIError):
        if isinstance(error, _DATABASE_ERRORS) or error.connection_invalidated:
            return Dependency.DATABASE
        if isinstance(error, _request_errors()):
            return None
        return Dependency.DATABASE if _driver_fault(error.orig) else None
    if isinstance(error, sa.DisconnectionError | sa.TimeoutError):
        return Dependency.DATABASE
    driver = _psycopg()
    if isinstance(error, sqlite3.Error) or (driver is not None and isinstance(error, driver.Error)):
        return Dependency.DATABASE if _driver_fault(error) else None
    from hygie.keys.custody import CustodyLocked  # late: keys import settings and crypto this module need not load

    if isinstance(error, CustodyLocked):
        return Dependency.CUSTODY
    if isinstance(error, OSError | json.JSONDecodeError | UnicodeDecodeError) and _raised_in(error, "hygie.keys"):
        return Dependency.CUSTODY  # the keystore file is unreadable or not JSON any more
    if isinstance(error, duckdb.IOException | duckdb.InterruptException | pa.ArrowIOError | OSError):
        return Dependency.WAREHOUSE
    if isinstance(error, pa.ArrowInvalid | duckdb.Error) and _says(error, _UNREADABLE_FILE):
        return Dependency.WAREHOUSE  # a Parquet file that does not read (corrupt, truncated, emptied)
    from hygie.governance.citizen_index import CitizenIndexError  # late, as below
    from hygie.governance.views import ViewError  # late: views import the hub, which this module must not need

    if isinstance(error, ViewError | CitizenIndexError):  # a citizen extract that does not open: data unavailable
        return Dependency.WAREHOUSE
    return None


def _driver_fault(error: BaseException | None) -> bool:
    """Whether a driver's error says the store fails (rather than the statement being wrong)."""
    if isinstance(error, sqlite3.Error):
        if isinstance(error, sqlite3.OperationalError | sqlite3.InterfaceError):
            return True
        if isinstance(error, _REQUEST_ERRORS):
            return False
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int):
            return code & 0xFF in _SQLITE_FAULTS
        return _says(error, _SQLITE_MESSAGES)
    driver = _psycopg()
    if driver is not None and isinstance(error, driver.Error):
        if isinstance(error, driver.OperationalError | driver.InterfaceError):
            return True
        # InternalError also holds class 25 ("current transaction is aborted": an earlier error of the code).
        state: str | None = error.sqlstate  # psycopg.Error.sqlstate
        return state is not None and state[:2] in _POSTGRES_FAULT_CLASSES
    return False


def _says(error: BaseException, messages: tuple[str, ...]) -> bool:
    text = str(error).lower()
    return any(message in text for message in messages)


def _raised_in(error: BaseException, package: str) -> bool:
    """Whether the innermost frame of Hygie's code that ``error`` went through belongs to ``package``."""
    innermost: str | None = None
    tb: types.TracebackType | None = error.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith("hygie."):
            innermost = module
        tb = tb.tb_next
    return innermost is not None and (innermost == package or innermost.startswith(package + "."))
