# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Tables of the transparency log and the stored Merkle tree.

- ``audit_leaf``: leaf ``leaf_index`` (0-based, dense) is event ``event_id``; its RFC 9162 leaf hash, its format
  and, for salted leaves, the commitment's salt (see :mod:`hygie.audit.leaf`).
- ``audit_node``: hashes of complete aligned subtrees of level >= :data:`STORED_MIN_LEVEL` (16 leaves and up),
  keyed ``level << 40 | index``. A complete subtree never changes, so a node is written once when its last leaf
  arrives; lower levels are recomputed from at most 16 leaves, which keeps the table at about 1/8 of the leaves
  while any proof needs one node query and at most a few short leaf ranges.
- ``audit_log_state``: one row, the sequenced size and the last sequenced event id (the sequencer's lock row).
- ``audit_checkpoint``: every signed checkpoint ever issued.
- ``audit_signing_key``: the checkpoint signing key, its private half wrapped by key custody.
- ``audit_cosignature``: witnesses' cosignatures of checkpoints (append-only too, migration 0009wt).

Leaves, nodes, checkpoints and keys are append-only (triggers, migration 0003a).

Writers append through :func:`appending`: one process-wide lock per engine, then the ``audit_log_state`` row lock
in the database, then the in-memory :class:`Frontier` (the right edge of the tree, reloaded from storage whenever
the stored size differs from it), so appending reads nothing but the state row and writes leaves and nodes with
the driver's ``executemany`` (``COPY`` on PostgreSQL). Readers use :func:`fetch_subtrees`: every stored node and
leaf a proof needs in one query on a reused driver connection, with the upper levels (complete subtrees, which
never change) cached in memory.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    event,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from hygie.audit.leaf import CLEAR, SALTED
from hygie.audit.merkle import EMPTY_ROOT, Subtree, complete_root, decompose, fold
from hygie.db import Base

STORED_MIN_LEVEL = 4
"""Subtrees of 2**4 = 16 leaves and more are stored; smaller ones are recomputed from leaf hashes."""
LEVEL_SHIFT = 40


def node_key(level: int, index: int) -> int:
    return (level << LEVEL_SHIFT) | index


class AuditLeaf(Base):
    __tablename__ = "audit_leaf"
    leaf_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[int] = mapped_column(Integer, nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    format: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="1")
    """1: the leaf hashes the entry in clear (leaves before migration 0008au); 2: a salted commitment
    (:mod:`hygie.audit.leaf`)."""
    salt: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    """The commitment's salt (format 2). Private: served to auditors and to the citizen concerned only."""


class AuditNode(Base):
    __tablename__ = "audit_node"
    key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class AuditLogState(Base):
    __tablename__ = "audit_log_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_event_id: Mapped[int] = mapped_column(BigInteger, nullable=False)


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoint"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AuditCosignature(Base):
    """A witness's cosignature of a checkpoint (c2sp.org/tlog-cosignature), as returned by its add-checkpoint
    and verified against its configured key before being stored (see :mod:`hygie.audit.witnessing`)."""

    __tablename__ = "audit_cosignature"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    checkpoint_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    witness: Mapped[str] = mapped_column(String(200), nullable=False)
    """The witness's key name."""
    key_id: Mapped[bytes] = mapped_column(LargeBinary(4), nullable=False)
    timestamp: Mapped[int] = mapped_column(BigInteger, nullable=False)
    """When the witness cosigned (POSIX seconds, as signed)."""
    line: Mapped[str] = mapped_column(Text, nullable=False)
    """The note signature line, with its newline."""
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class AuditSigningKey(Base):
    __tablename__ = "audit_signing_key"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    """The note key name, also the log's origin line."""
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


leaf_table = cast(Table, AuditLeaf.__table__)
node_table = cast(Table, AuditNode.__table__)
checkpoint_table = cast(Table, AuditCheckpoint.__table__)
state_table = cast(Table, AuditLogState.__table__)
signing_key_table = cast(Table, AuditSigningKey.__table__)
cosignature_table = cast(Table, AuditCosignature.__table__)


def leaf_hashes(conn: Connection, start: int, end: int) -> list[bytes]:
    rows = conn.execute(
        select(leaf_table.c.leaf_hash)
        .where(leaf_table.c.leaf_index >= start, leaf_table.c.leaf_index < end)
        .order_by(leaf_table.c.leaf_index)
    )
    hashes = [bytes(h) for (h,) in rows]
    if len(hashes) != end - start:
        raise LookupError(f"leaves [{start}, {end}) are not all stored")
    return hashes


class StoredTree:
    """A :class:`~hygie.audit.merkle.SubtreeSource` over the tables, on one connection."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def subtrees(self, wanted: Iterable[Subtree]) -> dict[Subtree, bytes]:
        wanted = list(wanted)
        stored = [w for w in wanted if w[0] >= STORED_MIN_LEVEL]
        out: dict[Subtree, bytes] = {}
        if stored:
            keys = {node_key(lv, i): (lv, i) for lv, i in stored}
            for key, h in self.conn.execute(
                select(node_table.c.key, node_table.c.hash).where(node_table.c.key.in_(keys))
            ):
                out[keys[key]] = bytes(h)
            missing = [w for w in stored if w not in out]
            if missing:
                raise LookupError(f"stored subtrees missing: {missing[:3]}")
        # Small subtrees: read each 16-leaf block once, however many of its subtrees are wanted.
        blocks: dict[int, list[Subtree]] = {}
        for lv, i in wanted:
            if lv < STORED_MIN_LEVEL:
                blocks.setdefault((i << lv) >> STORED_MIN_LEVEL, []).append((lv, i))
        for subtrees in blocks.values():
            first = min(i << lv for lv, i in subtrees)
            last = max((i + 1) << lv for lv, i in subtrees)
            leaves = leaf_hashes(self.conn, first, last)
            for lv, i in subtrees:
                a = (i << lv) - first
                out[(lv, i)] = complete_root(leaves[a : a + (1 << lv)])
        return out


# -- fast paths: the right edge in memory, raw driver writes, one-query reads ----------------------------------

CACHE_MIN_LEVEL = 10
"""Stored subtrees of 1,024 leaves and more are cached in memory once read or written (they never change)."""
CACHE_MAX = 2_000_000
"""At most this many cached subtree hashes per engine (about 200 MiB); beyond it nothing more is cached."""
IDLE_READERS = 8
"""Driver connections kept open for reads per engine."""

_sha256 = hashlib.sha256


class Frontier:
    """The right edge of a tree of ``size`` leaves: its complete aligned subtrees, largest first (RFC 9162
    decomposition of ``[0, size)``). Appending a leaf merges equal levels, which yields every subtree it completes.
    """

    __slots__ = ("size", "stack")

    def __init__(self, size: int = 0, stack: Sequence[tuple[int, bytes]] = ()) -> None:
        self.size = size
        self.stack: list[tuple[int, bytes]] = list(stack)

    def copy(self) -> Frontier:
        return Frontier(self.size, self.stack)

    def push_all(self, leaves: Iterable[bytes]) -> list[tuple[int, bytes]]:
        """Append leaf hashes; returns ``(node key, hash)`` of each completed subtree of a stored level."""
        stack, s, out = self.stack, self.size, []
        for h in leaves:
            level = 0
            while stack and stack[-1][0] == level:
                h = _sha256(b"\x01" + stack.pop()[1] + h).digest()
                level += 1
                if level >= STORED_MIN_LEVEL:
                    out.append(((level << LEVEL_SHIFT) | (s >> level), h))
            stack.append((level, h))
            s += 1
        self.size = s
        return out

    def root(self) -> bytes:
        return fold([h for _, h in self.stack]) if self.stack else EMPTY_ROOT


def load_frontier(conn: Connection, size: int) -> Frontier:
    """The frontier of the stored tree of ``size`` leaves: its stored subtrees, then the leaves of its last block."""
    if size == 0:
        return Frontier()
    pieces = decompose(0, size)
    big = [p for p in pieces if p[0] >= STORED_MIN_LEVEL]
    known = StoredTree(conn).subtrees(big)
    frontier = Frontier(0, [(lv, known[(lv, i)]) for lv, i in big])
    frontier.size = (size >> STORED_MIN_LEVEL) << STORED_MIN_LEVEL
    frontier.push_all(leaf_hashes(conn, frontier.size, size))
    return frontier


class _Shared:
    """What every TransparencyLog and BatchRecorder of one engine share in this process."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.lock = threading.Lock()
        """Held by whoever appends to the tree; the database state row lock is taken under it."""
        self.frontier: Frontier | None = None
        self.nodes: dict[int, bytes] = {}
        self.known_size = 0
        """A size the log is known to have reached (it never shrinks)."""
        self.idle: list[Any] = []
        self.idle_lock = threading.Lock()

    def close_readers(self, *_: object) -> None:
        """Close the idle read connections (when the engine is disposed: they live outside its pool)."""
        with self.idle_lock:
            idle, self.idle = self.idle, []
        for dbapi in idle:
            dbapi.close()


_registry: weakref.WeakKeyDictionary[Engine, _Shared] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def shared(engine: Engine) -> _Shared:
    with _registry_lock:
        found = _registry.get(engine)
        if found is None:
            found = _registry[engine] = _Shared(engine.dialect.name)
            event.listen(engine, "engine_disposed", found.close_readers)
        return found


def _sql(dialect: str, statement: str) -> str:
    return statement.replace("?", "%s") if dialect == "postgresql" else statement


class Appender:
    """Appends to the tree inside one transaction; see :func:`appending`."""

    def __init__(self, conn: Connection, sh: _Shared) -> None:
        self.conn = conn
        self._shared = sh
        self.dialect = sh.dialect
        self.dbapi: Any = conn.connection.driver_connection
        assert self.dbapi is not None
        self.cursor: Any = self.dbapi.cursor()
        self.size = -1
        self.last_event_id = -1

    def lock_state(self) -> tuple[int, int]:
        """Lock the state row (on SQLite: take the write lock) and read the size and the last sequenced event."""
        cur = self.cursor
        cur.execute("UPDATE audit_log_state SET size = size WHERE id = 1")
        cur.execute("SELECT size, last_event_id FROM audit_log_state WHERE id = 1")
        size, last = cur.fetchone()
        self.size, self.last_event_id = int(size), int(last)
        frontier = self._shared.frontier
        if frontier is None or frontier.size != self.size:  # first use, or another process appended
            self._shared.frontier = load_frontier(self.conn, self.size)
        return self.size, self.last_event_id

    def append(self, rows: Sequence[tuple[int, bytes, bytes | None]]) -> int:
        """Store leaves for ``(event_id, leaf_hash, salt)`` rows and every subtree they complete; returns the new
        size. A row with a salt is a salted leaf (format 2); without one, a leaf in clear (format 1: only the
        benchmark's synthetic leaves and tests of hubs from before salted leaves)."""
        if self.size < 0:
            raise RuntimeError("lock_state() first")
        if not rows:
            return self.size
        frontier = self._shared.frontier
        assert frontier is not None and frontier.size == self.size
        start = self.size
        nodes = frontier.push_all([h for _, h, _ in rows])
        leaves = [(start + n, e, h, CLEAR if s is None else SALTED, s) for n, (e, h, s) in enumerate(rows)]
        self._insert("audit_leaf", ("leaf_index", "event_id", "leaf_hash", "format", "salt"), leaves)
        if nodes:
            self._insert("audit_node", ('"key"', "hash"), nodes)
            sh = self._shared
            if len(sh.nodes) < CACHE_MAX:
                sh.nodes.update((k, h) for k, h in nodes if k >> LEVEL_SHIFT >= CACHE_MIN_LEVEL)
        self.size = frontier.size
        self.last_event_id = rows[-1][0]
        self.cursor.execute(
            _sql(self.dialect, "UPDATE audit_log_state SET size = ?, last_event_id = ? WHERE id = 1"),
            (self.size, self.last_event_id),
        )
        return self.size

    def _insert(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        insert_rows(self.cursor, self.dialect, table, columns, rows)


ROWS_PER_STATEMENT = 200
"""SQLite: rows per multi-row INSERT. The driver releases the GIL around each statement step; one step per row
(``executemany``) lets the writer thread lose the GIL to busy callers thousands of times per batch."""


def insert_rows(cursor: Any, dialect: str, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert many rows through the driver: ``COPY`` on PostgreSQL, multi-row ``INSERT`` statements on SQLite."""
    names = ", ".join(columns)
    if dialect == "postgresql":
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    one = "(" + ", ".join("?" * len(columns)) + ")"
    full = ROWS_PER_STATEMENT
    whole = len(rows) - len(rows) % full
    if whole:
        statement = f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * full)
        for start in range(0, whole, full):
            cursor.execute(statement, [v for row in rows[start : start + full] for v in row])
    if whole < len(rows):
        rest = rows[whole:]
        cursor.execute(
            f"INSERT INTO {table} ({names}) VALUES " + ", ".join([one] * len(rest)), [v for row in rest for v in row]
        )


@contextmanager
def appending(engine: Engine) -> Iterator[Appender]:
    """One appending transaction: the process-wide lock of the engine, then a transaction committed on exit.

    The in-memory frontier is dropped if anything fails (it is reloaded from storage next time).
    """
    sh = shared(engine)
    with sh.lock:
        try:
            with engine.begin() as conn:
                appender = Appender(conn, sh)
                yield appender
            sh.known_size = max(sh.known_size, appender.size)
        except BaseException:
            sh.frontier = None
            raise


def append_leaves(conn: Connection, old_size: int, rows: Sequence[tuple[int, bytes, bytes | None]]) -> int:
    """Store leaves from ``old_size`` for ``(event_id, leaf_hash, salt)`` rows and every subtree they complete.

    The caller holds the sequencer lock and commits. Returns the new size. (Reads the right edge from storage;
    :func:`appending` keeps it in memory instead.)
    """
    if not rows:
        return old_size
    sh = _Shared(conn.dialect.name)
    sh.frontier = load_frontier(conn, old_size)
    appender = Appender(conn, sh)
    appender.size = old_size
    return appender.append(rows)


@contextmanager
def reading(engine: Engine) -> Iterator[Any]:
    """A driver connection for reads, reused across calls (autocommit: each statement sees the latest commit)."""
    sh = shared(engine)
    dbapi: Any = None
    with sh.idle_lock:
        if sh.idle:
            dbapi = sh.idle.pop()
    if dbapi is None:
        raw = engine.raw_connection()
        dbapi = raw.driver_connection
        raw.detach()
        if sh.dialect == "postgresql":
            dbapi.autocommit = True
        else:
            dbapi.isolation_level = None
    try:
        yield dbapi
    except BaseException:
        dbapi.close()
        raise
    with sh.idle_lock:
        keep = len(sh.idle) < IDLE_READERS
        if keep:
            sh.idle.append(dbapi)
    if not keep:
        dbapi.close()


def read_size(engine: Engine) -> int:
    with reading(engine) as dbapi:
        cur = dbapi.cursor()
        cur.execute("SELECT size FROM audit_log_state WHERE id = 1")
        size = int(cur.fetchone()[0])
    sh = shared(engine)
    sh.known_size = max(sh.known_size, size)
    return size


def checked_size(engine: Engine, size: int | None) -> int:
    """``size``, or the current size when None; ValueError beyond the log. Reads the state only when needed."""
    if size is not None and 0 <= size <= shared(engine).known_size:
        return size
    current = read_size(engine)
    if size is None:
        return current
    if not 0 <= size <= current:
        raise ValueError(f"size {size} is outside the log (size {current})")
    return size


def fetch_subtrees(engine: Engine, wanted: Iterable[Subtree]) -> dict[Subtree, bytes]:
    """Hashes of complete aligned subtrees: stored nodes and the leaves of small ones, in one query."""
    sh = shared(engine)
    out: dict[Subtree, bytes] = {}
    keys: dict[int, Subtree] = {}
    blocks: dict[int, list[Subtree]] = {}
    cache = sh.nodes
    for lv, i in wanted:
        if lv >= STORED_MIN_LEVEL:
            key = (lv << LEVEL_SHIFT) | i
            cached = cache.get(key)
            if cached is None:
                keys[key] = (lv, i)
            else:
                out[(lv, i)] = cached
        else:
            blocks.setdefault((i << lv) >> STORED_MIN_LEVEL, []).append((lv, i))
    ranges = []
    for subtrees in blocks.values():
        ranges.append((min(i << lv for lv, i in subtrees), max((i + 1) << lv for lv, i in subtrees)))
    if not keys and not ranges:
        return out
    parts: list[str] = []
    params: list[Any] = []
    if keys:
        if sh.dialect == "postgresql":
            parts.append('SELECT "key", hash FROM audit_node WHERE "key" = ANY(%s)')
            params.append(list(keys))
        else:
            parts.append(f'SELECT "key", hash FROM audit_node WHERE "key" IN ({", ".join("?" * len(keys))})')
            params.extend(keys)
    for a, b in ranges:
        parts.append(
            _sql(
                sh.dialect, "SELECT -1 - leaf_index, leaf_hash FROM audit_leaf WHERE leaf_index >= ? AND leaf_index < ?"
            )
        )
        params.extend((a, b))
    with reading(engine) as dbapi:
        cur = dbapi.cursor()
        cur.execute(" UNION ALL ".join(parts), params)
        rows = cur.fetchall()
    leaves: dict[int, bytes] = {}
    for k, h in rows:
        if k >= 0:
            h = bytes(h)
            out[keys[k]] = h
            if k >> LEVEL_SHIFT >= CACHE_MIN_LEVEL and len(cache) < CACHE_MAX:
                cache[k] = h
        else:
            leaves[-1 - k] = bytes(h)
    missing = [s for s in keys.values() if s not in out]
    if missing:
        raise LookupError(f"stored subtrees missing: {missing[:3]}")
    for (a, b), subtrees in zip(ranges, blocks.values(), strict=True):
        try:
            block = [leaves[j] for j in range(a, b)]
        except KeyError:
            raise LookupError(f"leaves [{a}, {b}) are not all stored") from None
        for lv, i in subtrees:
            first = (i << lv) - a
            out[(lv, i)] = complete_root(block[first : first + (1 << lv)])
    return out


class FastTree:
    """A :class:`~hygie.audit.merkle.SubtreeSource` over :func:`fetch_subtrees`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def subtrees(self, wanted: Iterable[Subtree]) -> dict[Subtree, bytes]:
        return fetch_subtrees(self.engine, wanted)
