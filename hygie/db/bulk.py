# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Bulk reads and writes through the database driver, for the tables read or written by the hundred thousand
(the identity vault's lookups, a breach import's outcomes and blocking keys).

SQLAlchemy's per-statement and per-row work (expanding an IN list of hundreds of parameters, binding each value
through its type) costs more than the database itself at the sizes a leak brings; these helpers hand plain tuples
to the driver: ``COPY`` on PostgreSQL, multi-row ``INSERT`` on SQLite, and ``= ANY(array)`` or an IN list for
lookups.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

from sqlalchemy.orm import Session

_SQLITE_IN = 900
"""Parameters per IN list on SQLite (it accepts 32,766; a few hundred keep each statement small)."""
_PG_ANY = 10_000
_SQLITE_ROWS = 10_000
"""Rows per INSERT statement on SQLite (fewer if the library's limit on parameters is lower). Python's driver
lets go of the GIL around each statement it steps: ``executemany`` does so once per row, and each row then
waits for the GIL while another thread computes (the ingestion checks the next batch while one commits) — a
500,000-row insert beside a busy Python thread took minutes that way, 2 s in statements of 10,000 rows."""


def insert(session: Session, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Insert plain tuples (bytes for binary columns, JSON already encoded as text) into ``table``."""
    connection = session.connection()
    names = ", ".join(columns)
    if connection.dialect.name == "postgresql":
        driver = connection.connection.driver_connection
        with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
    else:
        driver = connection.connection.driver_connection
        limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
        per = max(1, min(_SQLITE_ROWS, limit // len(columns)))
        one = f"({', '.join('?' * len(columns))})"
        batch = list(rows)
        for start in range(0, len(batch), per):
            part = batch[start : start + per]
            values = ", ".join([one] * len(part))
            connection.exec_driver_sql(
                f"INSERT INTO {table} ({names}) VALUES {values}", tuple(chain.from_iterable(part))
            )


def select_in(session: Session, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` — a query ending in ``WHERE <column>`` — for each of ``values`` (in chunks). Objects
    pending in the session are flushed first: the driver does not see them otherwise."""
    session.flush()
    connection = session.connection()
    out: list[tuple[Any, ...]] = []
    if connection.dialect.name == "postgresql":
        for start in range(0, len(values), _PG_ANY):
            chunk = list(values[start : start + _PG_ANY])
            out += connection.exec_driver_sql(f"{sql} = ANY(%s)", (chunk,)).all()
    else:
        for start in range(0, len(values), _SQLITE_IN):
            part = tuple(values[start : start + _SQLITE_IN])
            marks = ", ".join("?" * len(part))
            out += connection.exec_driver_sql(f"{sql} IN ({marks})", part).all()
    return [tuple(r) for r in out]
