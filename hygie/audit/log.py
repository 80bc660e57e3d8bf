# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The transparency log over ``audit_event``: sequencing, roots, proofs, signed checkpoints.

Sequencing gives each committed event the next leaf index, in event id order, and never skips one:

- on SQLite there is one writer at a time, so under the sequencer's write lock every event with an id below the
  largest one is committed;
- on PostgreSQL ids are taken at insert time but committed in any order, so the sequencer first takes a SHARE lock
  on ``audit_event`` (it waits for transactions that are inserting events, and new inserts wait for it), reads the
  largest id, and releases the lock at once: every id up to that one is now committed or rolled back for good,
  and later inserts get larger ids. It then sequences up to that id without holding up writers.

One sequencer runs at a time: it locks the ``audit_log_state`` row first (under a process-wide lock per engine,
see :func:`hygie.audit.storage.appending`). :class:`~hygie.audit.recorder.BatchRecorder` sequences its own
events in the transaction that inserts them, under the same two locks, after catching up with any committed
event not yet sequenced: both paths extend one tree, one after the other, and can never assign an index twice.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Engine, Table, select, text
from sqlalchemy.exc import OperationalError

from hygie.audit import merkle
from hygie.audit.entry import COLUMNS, canonical_entry, utc_text
from hygie.audit.events import AuditEvent
from hygie.audit.leaf import CLEAR, new_leaf, parse_public, salted_leaf_data
from hygie.audit.note import Checkpoint
from hygie.audit.signing import Signer, load_signer
from hygie.audit.storage import (
    FastTree,
    appending,
    checked_size,
    checkpoint_table,
    leaf_hashes,
    leaf_table,
    read_size,
    reading,
    shared,
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
    """The note as the log signed it (its own signature only): what is sent to witnesses."""
    issued_at: datetime
    cosignatures: tuple[str, ...] = ()
    """Witnesses' cosignature lines received so far (c2sp.org/tlog-cosignature), see :mod:`hygie.audit.witnessing`."""

    @property
    def cosigned_note(self) -> str:
        """The note with every cosignature received: what is shown and served."""
        return self.note + "".join(self.cosignatures)


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

    def _pending(self) -> tuple[int, bool]:
        """The size, and whether any event may wait for a leaf (a read, no lock)."""
        with reading(self.engine) as dbapi:
            cur = dbapi.cursor()
            cur.execute(
                "SELECT size, last_event_id, (SELECT max(id) FROM audit_event) FROM audit_log_state WHERE id = 1"
            )
            size, last, top = cur.fetchone()
        return int(size), top is not None and int(top) > int(last)

    def _sequence_batch(self) -> tuple[int, bool]:
        size, pending = self._pending()
        if not pending:
            return size, True
        ceiling = self._committed_ceiling()
        with appending(self.engine) as log:
            # Lock the state row first: sequencers take turns, and on SQLite this takes the write lock.
            size, last = log.lock_state()
            query = select(*(_events.c[c] for c in COLUMNS)).where(_events.c.id > last)
            if ceiling is not None:
                query = query.where(_events.c.id <= ceiling)
            rows = log.conn.execute(query.order_by(_events.c.id).limit(SEQUENCE_BATCH)).mappings().all()
            if not rows:
                return size, True
            new_size = log.append([new_leaf(r) for r in rows])
        return new_size, len(rows) < SEQUENCE_BATCH

    # -- reading ---------------------------------------------------------------------------------------------

    def size(self) -> int:
        return read_size(self.engine)

    def root(self, size: int | None = None) -> bytes:
        return merkle.root(FastTree(self.engine), checked_size(self.engine, size))

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        size = checked_size(self.engine, size)
        if not 0 <= index < size:
            raise ValueError(f"index {index} is outside the tree of size {size}")
        ranges = merkle.inclusion_ranges(index, size)
        # One fetch for the path, the root and the leaf: the root's pieces and the path's overlap heavily.
        hashes = merkle.range_hashes(FastTree(self.engine), [*ranges, (0, size), (index, index + 1)])
        return InclusionProof(index, size, hashes[-1], hashes[:-2], hashes[-2])

    def consistency_proof(self, old: int, new: int | None = None) -> ConsistencyProof:
        new = checked_size(self.engine, new)
        if not 0 <= old <= new:
            raise ValueError(f"no consistency proof from size {old} to size {new}")
        ranges = merkle.consistency_ranges(old, new)
        roots = [(0, s) for s in (old, new) if s]
        hashes = merkle.range_hashes(FastTree(self.engine), [*ranges, *roots])
        proof = hashes[: len(ranges)]
        old_root = hashes[len(ranges)] if old else merkle.EMPTY_ROOT
        new_root = hashes[-1] if new else merkle.EMPTY_ROOT
        return ConsistencyProof(old, new, proof, old_root, new_root)

    def _leaf_rows(self, where: Any) -> list[Any]:
        leaf = leaf_table
        query = (
            select(leaf.c.leaf_index, leaf.c.leaf_hash, leaf.c.format, leaf.c.salt, *(_events.c[c] for c in COLUMNS))
            .select_from(leaf.join(_events, _events.c.id == leaf.c.event_id))
            .where(where)
            .order_by(leaf.c.leaf_index)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).mappings().all())

    def _range_rows(self, start: int, end: int) -> list[Any]:
        leaf = leaf_table
        rows = self._leaf_rows((leaf.c.leaf_index >= start) & (leaf.c.leaf_index < end))
        if [r["leaf_index"] for r in rows] != list(range(start, end)):
            raise LogCorrupted(f"entries in [{start}, {end}) have no event: run `hygie audit verify`")
        return rows

    def entries(self, start: int, end: int) -> list[dict[str, Any]]:
        """The public form of leaves ``[start, end)`` (:func:`public_entry`): what a witness needs to recompute
        the leaves, and nothing the register does not show. ``end`` must not pass the log's size."""
        return [public_entry(r) for r in self._range_rows(start, end)]

    def full_entries(self, start: int, end: int) -> list[dict[str, Any]]:
        """Leaves ``[start, end)`` with their events and salts (:func:`full_entry`): for auditors only."""
        return [full_entry(r) for r in self._range_rows(start, end)]

    def entries_of_events(self, event_ids: list[int]) -> list[dict[str, Any]]:
        """The full entries of these events that are in the log already (:func:`full_entry`), by leaf index."""
        if not event_ids:
            return []
        return [full_entry(r) for r in self._leaf_rows(leaf_table.c.event_id.in_(event_ids))]

    def public_entries_of_events(self, event_ids: list[int]) -> list[dict[str, Any]]:
        """The public form of these events' leaves (those already in the log), by leaf index."""
        if not event_ids:
            return []
        return [public_entry(r) for r in self._leaf_rows(leaf_table.c.event_id.in_(event_ids))]

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        with self.engine.connect() as conn:
            return leaf_hashes(conn, start, end)

    # -- checkpoints -----------------------------------------------------------------------------------------

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(_checkpoints).order_by(_checkpoints.c.id.desc()).limit(1)).first()
        if row is None:
            return None
        from hygie.audit.witnessing import cosignature_lines

        return replace(_signed(row), cosignatures=tuple(cosignature_lines(self.engine, row.id)))

    def checkpoint(self) -> SignedCheckpoint:
        """The latest signed checkpoint, issuing a new one first if the log grew since."""
        self.sequence()
        with self._issue_lock:
            latest = self.latest_checkpoint()
            size = read_size(self.engine)
            if latest is not None and latest.size >= size:
                return latest
            # From storage, in one query: the root and the consistency proof from the last checkpoint.
            old, old_root = (latest.size, latest.root) if latest is not None else (0, merkle.EMPTY_ROOT)
            if size == 0:  # a new hub: the empty tree is signed like any other (RFC 6962 empty root)
                hashes, root = [], merkle.EMPTY_ROOT
            else:
                ranges = merkle.consistency_ranges(old, size)
                hashes = merkle.range_hashes(FastTree(self.engine), [*ranges, (0, size)])
                root = hashes[-1]
            # Never sign a tree that does not extend the last signed one (storage damaged or forked).
            if old and not merkle.verify_consistency(old, size, old_root, root, hashes[:-1]):
                assert latest is not None
                raise LogCorrupted(f"the tree of size {size} does not extend checkpoint #{latest.id}")
            note = self.signer.sign(Checkpoint(self.signer.name, size, root))
            with shared(self.engine).lock, self.engine.begin() as conn:
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


def _signed(row: Any) -> SignedCheckpoint:
    return SignedCheckpoint(row.id, row.size, bytes(row.root_hash), row.note, row.issued_at)


def public_entry(row: Any) -> dict[str, Any]:
    """One leaf as anyone may see it.

    ``{"index", "format", "leaf_hash", "leaf", "register"}``: ``leaf_hash`` is the stored RFC 9162 leaf hash
    (base64); ``leaf`` the leaf data of a salted leaf (format 2; ASCII JSON, ``SHA-256(0x00 || leaf)`` is the leaf
    hash), rebuilt from the stored event and salt, so damage to an event shows as a leaf that no longer hashes to
    ``leaf_hash`` or to the signed root; ``register`` its clear fields (``action``, ``at``, ``project_id``) when the
    register shows the act, else null. A leaf of format 1 (entry in clear, before salted leaves) is served by its
    hash alone: ``leaf`` and ``register`` are null.
    """
    out: dict[str, Any] = {
        "index": int(row["leaf_index"]),
        "format": int(row["format"]),
        "leaf_hash": b64(bytes(row["leaf_hash"])),
        "leaf": None,
        "register": None,
    }
    if out["format"] != CLEAR:
        data = _leaf_data(row)
        out["leaf"] = data
        parsed = parse_public(data)
        if "action" in parsed:
            out["register"] = {k: parsed[k] for k in ("action", "at", "project_id")}
    return out


def full_entry(row: Any) -> dict[str, Any]:
    """One leaf with everything behind it (auditors; a citizen for their own events): the public form plus
    ``event_id``, ``entry`` (the canonical entry, hygie-audit-entry/v1), ``salt`` (base64, null for format 1) and
    ``event`` (its fields). Check: format 2, ``SHA-256(COMMITMENT_TAG || salt || entry)`` is the leaf's ``c``;
    format 1, ``SHA-256(0x00 || entry)`` is the leaf hash."""
    out = public_entry(row)
    salt = row["salt"]
    out["event_id"] = int(row["id"])
    out["salt"] = None if salt is None else b64(bytes(salt))
    out["entry"] = canonical_entry(row).decode("ascii")
    detail = row["detail"]
    out["event"] = {
        "id": int(row["id"]),
        "at": utc_text(row["at"]),
        **{c: row[c] for c in ("actor", "role", "action", "object", "project_id", "purpose", "outcome")},
        "detail": json.loads(detail) if isinstance(detail, str) else (detail or {}),
    }
    return out


def _leaf_data(row: Any) -> str:
    salt = row["salt"]
    if salt is None:
        raise LogCorrupted(f"salted leaf {row['leaf_index']} has no salt: run `hygie audit verify`")
    return salted_leaf_data(row, bytes(salt)).decode("ascii")
