"""Tables of the transparency log and the stored Merkle tree.

- ``audit_leaf``: leaf ``leaf_index`` (0-based, dense) is event ``event_id``; its RFC 9162 leaf hash.
- ``audit_node``: hashes of complete aligned subtrees of level >= :data:`STORED_MIN_LEVEL` (16 leaves and up),
  keyed ``level << 40 | index``. A complete subtree never changes, so a node is written once when its last leaf
  arrives; lower levels are recomputed from at most 16 leaves, which keeps the table at about 1/8 of the leaves
  while any proof needs one node query and at most a few short leaf ranges.
- ``audit_log_state``: one row, the sequenced size and the last sequenced event id (the sequencer's lock row).
- ``audit_checkpoint``: every signed checkpoint ever issued.
- ``audit_signing_key``: the checkpoint signing key, its private half wrapped by key custody.

Leaves, nodes, checkpoints and keys are append-only (triggers, migration 0003a).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Connection, DateTime, Integer, LargeBinary, String, Table, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from hygie.audit.merkle import Subtree, complete_root, node_hash
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


def completed_subtrees(
    old_size: int, new_size: int, block_leaves: Sequence[bytes], stored: Callable[[Subtree], bytes]
) -> list[tuple[Subtree, bytes]]:
    """Subtrees of level >= :data:`STORED_MIN_LEVEL` that growing from ``old_size`` to ``new_size`` completes.

    ``block_leaves`` are the leaf hashes from the start of ``old_size``'s 16-leaf block up to ``new_size``;
    ``stored`` fetches an already complete subtree (only ever a left sibling, at most one per level).
    """
    level = STORED_MIN_LEVEL
    first, last = old_size >> level, new_size >> level
    current = {first + j: complete_root(block_leaves[j << level : (j + 1) << level]) for j in range(last - first)}
    out = [((level, i), h) for i, h in current.items()]
    while True:
        level += 1
        first, last = old_size >> level, new_size >> level
        if first >= last:
            return out
        parents = {}
        for i in range(first, last):
            # The right child ends after old_size, so it was completed now; the left one may be older.
            left = current.get(2 * i) or stored((level - 1, 2 * i))
            parents[i] = node_hash(left, current[2 * i + 1])
        out.extend(((level, i), h) for i, h in parents.items())
        current = parents


def append_leaves(conn: Connection, old_size: int, rows: Sequence[tuple[int, bytes]]) -> int:
    """Store leaves from ``old_size`` for ``(event_id, leaf_hash)`` rows and every subtree they complete.

    The caller holds the sequencer lock and commits. Returns the new size.
    """
    if not rows:
        return old_size
    new_size = old_size + len(rows)
    conn.execute(
        leaf_table.insert(),
        [{"leaf_index": old_size + n, "event_id": e, "leaf_hash": h} for n, (e, h) in enumerate(rows)],
    )
    if new_size >> STORED_MIN_LEVEL > old_size >> STORED_MIN_LEVEL:
        block_start = (old_size >> STORED_MIN_LEVEL) << STORED_MIN_LEVEL
        block = leaf_hashes(conn, block_start, old_size) + [h for _, h in rows]
        source = StoredTree(conn)
        nodes = completed_subtrees(old_size, new_size, block, lambda s: source.subtrees([s])[s])
        conn.execute(node_table.insert(), [{"key": node_key(lv, i), "hash": h} for (lv, i), h in nodes])
    return new_size
