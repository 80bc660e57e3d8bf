"""The transparency log over ``audit_event``: sequencing, roots, proofs, signed checkpoints.

Sequencing gives each committed event the next leaf index, in event id order, and never skips one:

- on SQLite there is one writer at a time, so under the sequencer's write lock every event with an id below the
  largest one is committed;
- on PostgreSQL ids are taken at insert time but committed in any order, so the sequencer first takes a SHARE lock
  on ``audit_event`` (it waits for transactions that are inserting events, and new inserts wait for it), reads the
  largest id, and releases the lock at once: every id up to that one is now committed or rolled back for good,
  and later inserts get larger ids. It then sequences up to that id without holding up writers.

One sequencer runs at a time: it locks the ``audit_log_state`` row first.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Engine, Table, select, text, update
from sqlalchemy.exc import OperationalError

from hygie.audit import merkle
from hygie.audit.entry import COLUMNS, canonical_entry
from hygie.audit.events import AuditEvent
from hygie.audit.note import Checkpoint
from hygie.audit.signing import Signer, load_signer
from hygie.audit.storage import (
    StoredTree,
    append_leaves,
    checkpoint_table,
    leaf_hashes,
    leaf_table,
    state_table,
)
from hygie.keys import KeyCustody

if TYPE_CHECKING:
    from hygie.audit.verify import VerifyReport
    from hygie.hub import Hub

SEQUENCE_BATCH = 20_000
"""Events read per sequencer transaction: bounds memory and the time one transaction takes."""
PG_LOCK_TIMEOUT = "250ms"
"""How long the PostgreSQL sequencer waits for in-flight event inserts before trying again later."""

_events = cast(Table, AuditEvent.__table__)
_state = state_table
_checkpoints = checkpoint_table


class LogCorrupted(RuntimeError):
    """Storage no longer agrees with what was signed: the log refuses to sign anything further."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True)
class InclusionProof:
    index: int
    size: int
    leaf_hash: bytes
    proof: list[bytes]
    root: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "size": self.size,
            "leaf_hash": b64(self.leaf_hash),
            "proof": [b64(p) for p in self.proof],
            "root": b64(self.root),
        }


@dataclass(frozen=True)
class ConsistencyProof:
    old: int
    new: int
    proof: list[bytes]
    old_root: bytes
    new_root: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.old,
            "to": self.new,
            "proof": [b64(p) for p in self.proof],
            "old_root": b64(self.old_root),
            "new_root": b64(self.new_root),
        }


@dataclass(frozen=True)
class SignedCheckpoint:
    id: int
    size: int
    root: bytes
    note: str
    issued_at: datetime


class TransparencyLog:
    def __init__(self, engine: Engine, custody: KeyCustody) -> None:
        self.engine = engine
        self.custody = custody
        self._signer: Signer | None = None
        self._issue_lock = threading.Lock()

    @classmethod
    def for_hub(cls, hub: Hub) -> TransparencyLog:
        return cls(hub.engine, hub.custody)

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = load_signer(self.engine, self.custody)
        return self._signer

    @property
    def verifier_key(self) -> str:
        return self.signer.verifier_key

    # -- sequencing ------------------------------------------------------------------------------------------

    def sequence(self) -> int:
        """Give every committed, unsequenced event its leaf; returns the log size afterwards."""
        while True:
            size, done = self._sequence_batch()
            if done:
                return size

    def _committed_ceiling(self) -> int | None:
        """The largest event id below which every event is committed (PostgreSQL); None when unknown."""
        if self.engine.dialect.name != "postgresql":
            return None
        try:
            with self.engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{PG_LOCK_TIMEOUT}'"))
                conn.execute(text("LOCK TABLE audit_event IN SHARE MODE"))
                return int(conn.execute(select(_events.c.id).order_by(_events.c.id.desc()).limit(1)).scalar() or 0)
        except OperationalError:
            return -1  # a long transaction holds inserts open: sequence nothing now, the next run will

    def _sequence_batch(self) -> tuple[int, bool]:
        ceiling = self._committed_ceiling()
        with self.engine.begin() as conn:
            # Lock the state row first: sequencers take turns, and on SQLite this takes the write lock.
            conn.execute(update(_state).where(_state.c.id == 1).values(size=_state.c.size))
            size, last = conn.execute(select(_state.c.size, _state.c.last_event_id).where(_state.c.id == 1)).one()
            query = select(*(_events.c[c] for c in COLUMNS)).where(_events.c.id > last)
            if ceiling is not None:
                query = query.where(_events.c.id <= ceiling)
            rows = conn.execute(query.order_by(_events.c.id).limit(SEQUENCE_BATCH)).mappings().all()
            if not rows:
                return size, True
            leaves = [(int(r["id"]), merkle.leaf_hash(canonical_entry(r))) for r in rows]
            new_size = append_leaves(conn, size, leaves)
            conn.execute(update(_state).where(_state.c.id == 1).values(size=new_size, last_event_id=leaves[-1][0]))
        return new_size, len(rows) < SEQUENCE_BATCH

    # -- reading ---------------------------------------------------------------------------------------------

    def size(self) -> int:
        with self.engine.connect() as conn:
            return _size(conn)

    def root(self, size: int | None = None) -> bytes:
        with self.engine.connect() as conn:
            return merkle.root(StoredTree(conn), _checked_size(conn, size))

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        with self.engine.connect() as conn:
            size = _checked_size(conn, size)
            if not 0 <= index < size:
                raise ValueError(f"index {index} is outside the tree of size {size}")
            tree = StoredTree(conn)
            ranges = merkle.inclusion_ranges(index, size)
            # One fetch for the path and the root: the root's pieces and the path's overlap heavily.
            hashes = merkle.range_hashes(tree, [*ranges, (0, size), (index, index + 1)])
        return InclusionProof(index, size, hashes[-1], hashes[:-2], hashes[-2])

    def consistency_proof(self, old: int, new: int | None = None) -> ConsistencyProof:
        with self.engine.connect() as conn:
            new = _checked_size(conn, new)
            if not 0 <= old <= new:
                raise ValueError(f"no consistency proof from size {old} to size {new}")
            tree = StoredTree(conn)
            ranges = merkle.consistency_ranges(old, new)
            roots = [(0, s) for s in (old, new) if s]
            hashes = merkle.range_hashes(tree, [*ranges, *roots])
        proof = hashes[: len(ranges)]
        old_root = hashes[len(ranges)] if old else merkle.EMPTY_ROOT
        new_root = hashes[-1] if new else merkle.EMPTY_ROOT
        return ConsistencyProof(old, new, proof, old_root, new_root)

    def entries(self, start: int, end: int) -> list[str]:
        """The canonical entries of leaves ``[start, end)``, for witnesses to recompute the leaves."""
        leaf = leaf_table
        query = (
            select(leaf.c.leaf_index, *(_events.c[c] for c in COLUMNS))
            .select_from(leaf.join(_events, _events.c.id == leaf.c.event_id))
            .where(leaf.c.leaf_index >= start, leaf.c.leaf_index < end)
            .order_by(leaf.c.leaf_index)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        if [r["leaf_index"] for r in rows] != list(range(start, start + len(rows))):
            raise LogCorrupted(f"entries in [{start}, {end}) have no event: run `hygie audit verify`")
        return [canonical_entry(r).decode("ascii") for r in rows]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        with self.engine.connect() as conn:
            return leaf_hashes(conn, start, end)

    # -- checkpoints -----------------------------------------------------------------------------------------

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_checkpoints).order_by(_checkpoints.c.id.desc()).limit(1)).first()
        return None if row is None else _signed(row)

    def checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint, issuing a new one first if the log grew since."""
        self.sequence()
        with self._issue_lock:
            latest = self.latest_checkpoint()
            with self.engine.connect() as conn:
                size = _size(conn)
                if latest is not None and latest.size >= size:
                    return latest
                tree = StoredTree(conn)
                root = merkle.root(tree, size)
                if latest is not None and latest.size:
                    # Never sign a tree that does not extend the last signed one (storage damaged or forked).
                    proof = merkle.range_hashes(tree, merkle.consistency_ranges(latest.size, size))
                    if not merkle.verify_consistency(latest.size, size, latest.root, root, proof):
                        raise LogCorrupted(f"the tree of size {size} does not extend checkpoint #{latest.id}")
            note = self.signer.sign(Checkpoint(self.signer.name, size, root))
            with self.engine.begin() as conn:
                issued_at = datetime.now(UTC)
                new_id = conn.execute(
                    _checkpoints.insert()
                    .values(size=size, root_hash=root, note=note, issued_at=issued_at)
                    .returning(_checkpoints.c.id)
                ).scalar_one()
            return SignedCheckpoint(new_id, size, root, note, issued_at)

    def verify(self, verifier_key: str | None = None) -> VerifyReport:
        """Recompute everything from the events (see :mod:`hygie.audit.verify`)."""
        from hygie.audit.verify import verify_log

        self.sequence()
        return verify_log(self.engine, verifier_key or self.verifier_key)


def _size(conn: Connection) -> int:
    return int(conn.execute(select(_state.c.size).where(_state.c.id == 1)).scalar_one())


def _checked_size(conn: Connection, size: int | None) -> int:
    current = _size(conn)
    if size is None:
        return current
    if not 0 <= size <= current:
        raise ValueError(f"size {size} is outside the log (size {current})")
    return size


def _signed(row: Any) -> SignedCheckpoint:
    return SignedCheckpoint(row.id, row.size, bytes(row.root_hash), row.note, row.issued_at)
