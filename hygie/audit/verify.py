# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Full verification: recompute the whole tree from the events and check every checkpoint ever issued.

One pass, linear in the log: events (by id) and leaves (by index) are streamed side by side. Each event is
re-serialised and re-hashed as its leaf format says (format 2: its salted commitment, with the stored salt,
and the public fields taken from the event; format 1: the entry in clear); that hash, not the stored one, builds
the tree, so the signed roots are checked against the events themselves. Also checked: leaves are dense and in
event id order, every event below the sequencer's mark has a leaf, every stored subtree hash, every checkpoint's
signature, origin and root at its size, and that no two checkpoints of one size disagree (a fork).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from hygie.audit import merkle
from hygie.audit.entry import COLUMNS
from hygie.audit.events import AuditEvent
from hygie.audit.leaf import stored_leaf_hash
from hygie.audit.note import NoteError, open_note, parse_verifier_key
from hygie.audit.storage import LEVEL_SHIFT, STORED_MIN_LEVEL, AuditCheckpoint, AuditLeaf, AuditLogState, AuditNode

MAX_PROBLEMS = 100
_STREAM = 10_000


@dataclass(frozen=True)
class Problem:
    kind: str
    message: str
    leaf_index: int | None = None
    """The entry concerned, when one can be named."""


@dataclass
class VerifyReport:
    size: int = 0
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_entry(self) -> int | None:
        indexes = [p.leaf_index for p in self.problems if p.leaf_index is not None]
        return min(indexes) if indexes else None

    def add(self, kind: str, message: str, leaf_index: int | None = None) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(kind, message, leaf_index))
        else:
            self.truncated = True

    def summary(self) -> str:
        if self.ok:
            return f"audit log intact: {self.size} entries, {self.checkpoints} checkpoints verified"
        first = self.first_bad_entry
        head = f"audit log damaged: first bad entry {first}" if first is not None else "audit log damaged"
        lines = [head, *(f"- {p.kind}: {p.message}" for p in self.problems)]
        if self.truncated:
            lines.append(f"- (only the first {MAX_PROBLEMS} problems are listed)")
        return "\n".join(lines)


def _stream(engine: Engine, query: Any) -> Iterator[Any]:
    with engine.connect() as conn:
        yield from conn.execution_options(stream_results=True, yield_per=_STREAM).execute(query)


class _Rebuild:
    """The compact range of the tree being rebuilt, plus every complete subtree hash it produced."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, bytes]] = []
        self.levels: dict[int, list[bytes]] = {}

    def push(self, leaf: bytes) -> None:
        level, h = 0, leaf
        while self.stack and self.stack[-1][0] == level:
            h = merkle.node_hash(self.stack.pop()[1], h)
            level += 1
            if level >= STORED_MIN_LEVEL:
                self.levels.setdefault(level, []).append(h)
        self.stack.append((level, h))

    def root(self) -> bytes:
        return merkle.fold([h for _, h in self.stack]) if self.stack else merkle.EMPTY_ROOT


def verify_log(engine: Engine, verifier_key: str) -> VerifyReport:
    report = VerifyReport()
    key_name, _ = parse_verifier_key(verifier_key)
    events = _stream(engine, select(*(AuditEvent.__table__.c[c] for c in COLUMNS)).order_by(AuditEvent.id))
    leaves = _stream(engine, select(AuditLeaf.__table__).order_by(AuditLeaf.leaf_index))
    cp = AuditCheckpoint.__table__
    checkpoints = _stream(engine, select(cp).order_by(cp.c.size, cp.c.id))
    with engine.connect() as conn:
        state = conn.execute(select(AuditLogState.__table__)).one()

    tree = _Rebuild()
    pending_event = next(events, None)
    pending_cp = next(checkpoints, None)
    last_cp: Any = None
    previous_event_id = 0
    n = 0

    def check_checkpoints_at(size: int) -> None:
        nonlocal pending_cp, last_cp
        while pending_cp is not None and pending_cp.size == size:
            _check_checkpoint(report, pending_cp, last_cp, tree.root(), verifier_key, key_name)
            last_cp, pending_cp = pending_cp, next(checkpoints, None)
            report.checkpoints += 1

    check_checkpoints_at(0)
    for leaf in leaves:
        if leaf.leaf_index != n:
            report.add("missing-leaf", f"leaf {n} is missing (next stored leaf is {leaf.leaf_index})", n)
            break
        if leaf.event_id <= previous_event_id:
            report.add("order", f"entry {n} (event {leaf.event_id}) is out of event order", n)
        previous_event_id = max(previous_event_id, leaf.event_id)
        while pending_event is not None and pending_event.id < leaf.event_id:
            report.add("unlogged-event", f"event {pending_event.id} was inserted without a leaf", n)
            pending_event = next(events, None)
        if pending_event is not None and pending_event.id == leaf.event_id:
            try:
                entry_hash = stored_leaf_hash(pending_event._mapping, leaf.format, leaf.salt)
            except ValueError as exc:
                report.add("format", f"entry {n} (event {leaf.event_id}): {exc}", n)
                entry_hash = bytes(leaf.leaf_hash)
            else:
                if entry_hash != bytes(leaf.leaf_hash):
                    report.add("altered", f"entry {n} (event {leaf.event_id}) no longer matches its leaf", n)
            pending_event = next(events, None)
        else:
            report.add("deleted", f"entry {n}: event {leaf.event_id} is gone", n)
            entry_hash = bytes(leaf.leaf_hash)  # keep rebuilding, so later damage is told apart
        tree.push(entry_hash)
        n += 1
        check_checkpoints_at(n)
    report.size = n
    if n != state.size:
        report.add("size", f"the sequencer's state says {state.size} entries, storage holds {n}", min(n, state.size))
    while pending_event is not None and pending_event.id <= state.last_event_id:
        report.add("unlogged-event", f"event {pending_event.id} was inserted without a leaf", n)
        pending_event = next(events, None)
    while pending_cp is not None:
        report.checkpoints += 1
        report.add("truncated", f"checkpoint #{pending_cp.id} covers {pending_cp.size} entries, the log has {n}", n)
        pending_cp = next(checkpoints, None)
    _check_nodes(report, engine, tree)
    return report


def _check_checkpoint(report: VerifyReport, row: Any, previous: Any, root: bytes, verifier: str, name: str) -> None:
    label = f"checkpoint #{row.id} (size {row.size})"
    if previous is not None and previous.size == row.size and bytes(previous.root_hash) != bytes(row.root_hash):
        report.add("fork", f"{label} and checkpoint #{previous.id} sign different roots for one size")
    try:
        signed = open_note(row.note, verifier)
    except NoteError as exc:
        report.add("signature", f"{label}: {exc}")
        return
    if signed.origin != name or signed.size != row.size or signed.root != bytes(row.root_hash):
        report.add("checkpoint", f"{label}: the signed note does not match the stored size and root")
    if signed.root != root:
        first = previous.size if previous is not None else 0
        report.add(
            "root", f"{label}: the entries no longer hash to its root (damage in entries {first}..{row.size - 1})"
        )


def _check_nodes(report: VerifyReport, engine: Engine, tree: _Rebuild) -> None:
    seen: dict[int, int] = {}
    node = AuditNode.__table__
    for row in _stream(engine, select(node).order_by(node.c.key)):
        level, index = row.key >> LEVEL_SHIFT, row.key & ((1 << LEVEL_SHIFT) - 1)
        expected = tree.levels.get(level, [])
        if index >= len(expected):
            report.add("node", f"stored subtree ({level}, {index}) lies beyond the tree")
        elif bytes(row.hash) != expected[index]:
            # Stored subtrees only serve proofs; a damaged one names no entry (entries are checked on their own).
            report.add("node", f"stored subtree ({level}, {index}) differs from the one rebuilt from the entries")
        seen[level] = seen.get(level, 0) + 1
    for level, hashes in tree.levels.items():
        if seen.get(level, 0) < len(hashes):
            report.add("node", f"stored subtrees of level {level} are missing")
