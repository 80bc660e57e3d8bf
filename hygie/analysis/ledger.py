# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The release ledger: what a project has released, and the checks a new aggregate passes against it.

For every aggregate output that may leave (released, or pending in the airlock), the ledger keeps its population
and, per cell, the exact set of contributors (record keys in a roaring bitmap), the published people count and
whether the cell was suppressed. Entries are sealed (AES-256-GCM) under a data key wrapped by the project's view
key, like released rows: nothing in clear in the database, shredded with the project.

Before an aggregate leaves, :func:`guard_release` runs two checks against every earlier entry of the project:

1. **Differencing** (exact, from the bitmaps): two populations, or a published cell of the candidate and any
   published cell of the project (earlier releases, or the candidate itself), whose contributors differ by between
   1 and ``threshold - 1`` people (symmetric difference). Candidates are pruned by people counts first
   (``|A Δ B| >= ||A| - |B||``). Any such pair refuses the **whole** release: suppressing only the offending cells
   would tell the author which cells the differing people are in (in the issue's attack, the months the target
   had care). The author sees a refusal like any other; the reason is in the release's findings (output checkers)
   and on the audit log.
2. **Audit across releases** (``hygie.disclosure.lpaudit``): linear programs over the atoms of people of all the
   project's entries plus the candidate; a candidate that narrows any small suppressed cell of any release below
   the protection width is refused.

Either check beyond its bounds (settings ``ledger_max_contributions``, ``lpaudit_max_*``) sends the output to the
airlock with a finding: it is never released unchecked (its population is still kept, so later outputs are compared
with it).

A refusal is itself a yes/no answer the author can steer. The first ledger finding of a project (a refusal, or a
check not completed) *holds* it (:func:`hold_of`): every later aggregate is checked, then waits for output checkers,
until they decide one of them; the DPO's ``ledger_hold`` alert fires on that first finding. Small groups of people
(*atoms* of 1 to ``threshold - 1``) are audit targets too, and empty cells suppressed as sensitive keep their small
margins (:func:`empty_margins`).

People are numbered by a dense per-project index (``Roster``, table ``analysis_ledger_roster``, sealed like the
entries): the record keys (32-bit HMAC of the project pseudonym under the project's cell-key secret,
``hygie.analysis.cellkeys``) in the order they first appeared, a person's index being the position of their key.
Record keys are stable across view generations (a rank in the current view would shift when the view is rebuilt or
someone objects), and dense indices keep the bitmaps small (random 32-bit keys cost about 20 times more). Two people
of a project share a record key with probability about ``n^2 / 2^33`` (1 expected pair at 90,000 people): they then
count as one in the ledger, which can only make two sets look closer by one person.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import itertools
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyroaring import BitMap
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hygie.analysis.contributors import Contributors, ContributorSets, sorted_bitmap
from hygie.analysis.models import AnalysisRelease, LedgerEntry, LedgerRoster
from hygie.audit import Outcome, record
from hygie.disclosure import CellKey, DisclosurePolicy, OutputTable, ProtectedOutput
from hygie.disclosure.lpaudit import AuditCell, AuditResult, audit, published_interval
from hygie.governance.accounts import SYSTEM
from hygie.governance.models import Project
from hygie.governance.views import project_view_key
from hygie.hub import Hub
from hygie.i18n import N_, Message, term
from hygie.keys import KeyPurpose

_LABEL = "hygie/analysis/ledger/v1"
NONCE_BYTES = 12
COUNTED = ("released", "pending")
"""Release statuses whose ledger entries count: pending ones may be approved later, so later outputs are checked
against them already."""


@dataclass(frozen=True)
class LedgerCell:
    key: CellKey
    members: BitMap
    published: int | None
    """The released people count (None when suppressed or when the release publishes no people column)."""
    suppressed: bool
    people: int
    """True distinct people (sealed; never shown)."""
    margin: BitMap | None = None
    """For an empty cell suppressed as sensitive (empty under a margin of fewer than the threshold): the people of
    those small margins (the record's population when the output has no such margin cell). The audit cannot bound
    an empty cell (no atom holds it), so a later output publishing new cells over these people goes to checkers."""


@dataclass
class Record:
    job_id: int
    release_people: bool
    threshold: int
    base: int
    population: BitMap
    cells: list[LedgerCell]


@dataclass
class Guard:
    refuse: bool = False
    review: bool = False
    findings: list[str] = field(default_factory=list)
    """Catalogued messages (``hygie.i18n``), said in French on the airlock's pages."""
    entry: LedgerEntry | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    unchecked: bool = False
    """A check could not be completed (bounds, a stopped query, a platform inconsistency): checkers decide."""
    state: str = "checked"
    """``summary["ledger"]`` of the release: checked, refused, unchecked, held (:func:`hold_of`), not reached."""


# -- sealing ----------------------------------------------------------------------------------------------------


def _context(project_id: int, job_id: int | None) -> bytes:
    what = "roster" if job_id is None else f"job:{job_id}"
    return f"{_LABEL}|project:{project_id}|{what}".encode()


def _bits(b: BitMap) -> str:
    return base64.b64encode(b.serialize()).decode()


def _unbits(s: str) -> BitMap:
    return BitMap.deserialize(base64.b64decode(s))


def _seal(hub: Hub, project_id: int, job_id: int | None, plain: bytes) -> bytes:
    name = project_view_key(project_id)
    hub.custody.ensure(name, KeyPurpose.WRAP)
    data_key = AESGCM.generate_key(bit_length=256)
    context = _context(project_id, job_id)
    wrapped = hub.custody.wrap(name, data_key, context)
    nonce = os.urandom(NONCE_BYTES)
    return len(wrapped).to_bytes(2, "big") + wrapped + nonce + AESGCM(data_key).encrypt(nonce, plain, context)


def _open(hub: Hub, project_id: int, job_id: int | None, blob: bytes) -> bytes:
    size = int.from_bytes(blob[:2], "big")
    wrapped, nonce, sealed = blob[2 : 2 + size], blob[2 + size : 2 + size + NONCE_BYTES], blob[2 + size + NONCE_BYTES :]
    context = _context(project_id, job_id)
    data_key = hub.custody.unwrap(project_view_key(project_id), wrapped, context)
    return AESGCM(data_key).decrypt(nonce, sealed, context)


def seal(hub: Hub, project_id: int, rec: Record) -> bytes:
    plain = json.dumps(
        {
            "v": 1,
            "people": rec.release_people,
            "threshold": rec.threshold,
            "base": rec.base,
            "population": _bits(rec.population),
            "cells": [
                [
                    list(c.key),
                    _bits(c.members),
                    c.published,
                    c.suppressed,
                    c.people,
                    None if c.margin is None else _bits(c.margin),
                ]
                for c in rec.cells
            ],
        }
    ).encode()
    return _seal(hub, project_id, rec.job_id, plain)


def unseal(hub: Hub, project_id: int, job_id: int, blob: bytes) -> Record:
    data = json.loads(_open(hub, project_id, job_id, blob))
    cells = [LedgerCell(tuple(c[0]), _unbits(c[1]), c[2], bool(c[3]), int(c[4]),
                        _unbits(c[5]) if len(c) > 5 and c[5] is not None else None)
             for c in data["cells"]]  # fmt: skip
    return Record(job_id, bool(data["people"]), int(data["threshold"]), int(data["base"]),
                  _unbits(data["population"]), cells)  # fmt: skip


class Roster:
    """The project's dense person index: record keys in the order they first appeared; a person's index is the
    position of their key. Stable across view generations (the record key is), append-only."""

    def __init__(self, keys: Any) -> None:
        import numpy as np

        self.keys = np.asarray(keys, dtype=np.uint32)
        self.grown = False
        self._index()

    def _index(self) -> None:
        import numpy as np

        self._order = np.argsort(self.keys, kind="stable")
        self._sorted = self.keys[self._order]

    def _find(self, q: Any) -> tuple[Any, Any]:
        import numpy as np

        pos = np.searchsorted(self._sorted, q)
        inside = pos < len(self._sorted)
        found = np.zeros(len(q), dtype=bool)
        found[inside] = self._sorted[pos[inside]] == q[inside]
        return pos, found

    def add(self, people: BitMap) -> None:
        """Gives an index to every record key of ``people`` that has none yet."""
        import numpy as np

        q = np.asarray(people.to_array(), dtype=np.uint32)
        _, found = self._find(q)
        if not found.all():
            self.keys = np.concatenate([self.keys, q[~found]])
            self.grown = True
            self._index()

    def dense(self, people: BitMap) -> BitMap:
        """``people`` (record keys, all added) as dense indices."""
        import numpy as np

        return self.dense_keys(np.asarray(people.to_array(), dtype=np.uint32))

    def dense_keys(self, keys: Any) -> BitMap:
        """Record keys (a uint32 array, all added; repeats allowed) as a set of dense indices."""
        import numpy as np

        # Searched in sorted order: the same positions, found about five times faster than in list order.
        pos, found = self._find(np.sort(keys))
        if not found.all():
            # Never an assert: numbering a stranger's key as someone else's would check the release against the
            # wrong people. A platform bug: the release fails rather than pass unchecked.
            raise RuntimeError("a record key was numbered before it was added to the project's roster")
        return sorted_bitmap(self._order[pos])


def load_roster(hub: Hub, session: Session, project_id: int) -> tuple[Roster, LedgerRoster | None]:
    import numpy as np

    row = session.scalar(select(LedgerRoster).where(LedgerRoster.project_id == project_id))
    if row is None:
        return Roster(np.zeros(0, dtype=np.uint32)), None
    return Roster(np.frombuffer(_open(hub, project_id, None, row.sealed), dtype=np.uint32)), row


def save_roster(hub: Hub, session: Session, project_id: int, roster: Roster, row: LedgerRoster | None) -> None:
    """In the caller's transaction, with the ledger entry; a concurrent first write fails on the unique project."""
    if not roster.grown:
        return
    sealed = _seal(hub, project_id, None, roster.keys.astype("<u4").tobytes())
    if row is None:
        session.add(LedgerRoster(project_id=project_id, sealed=sealed, updated_at=datetime.now(UTC)))
    else:
        row.sealed, row.updated_at = sealed, datetime.now(UTC)


def load(hub: Hub, session: Session, project_id: int, memo: LedgerMemo | None = None) -> list[tuple[int, Record]]:
    """(entry id, record) of the project's entries that count (their release is released or pending), oldest first;
    with ``memo``, only the entries it does not hold yet are read and unsealed (an entry never changes once
    written)."""
    counted = session.execute(
        select(LedgerEntry.id, LedgerEntry.job_id)
        .join(AnalysisRelease, AnalysisRelease.job_id == LedgerEntry.job_id)
        .where(LedgerEntry.project_id == project_id, AnalysisRelease.status.in_(COUNTED))
        .order_by(LedgerEntry.seq)
    ).all()
    # An entry id names the same record while its row lives; a row replaced under the same id (a restore under a
    # running process) is read again rather than trusted.
    jobs = dict(counted)
    known = {e: rec for e, rec in (memo.records if memo is not None else {}).items() if rec.job_id == jobs.get(e)}
    missing = [entry_id for entry_id, _ in counted if entry_id not in known]
    read: dict[int, Record] = {}
    for start in range(0, len(missing), 100):
        rows = session.execute(
            select(LedgerEntry.id, LedgerEntry.job_id, LedgerEntry.sealed).where(
                LedgerEntry.id.in_(missing[start : start + 100])
            )
        ).all()
        read.update({entry_id: unseal(hub, project_id, job_id, blob) for entry_id, job_id, blob in rows})
    # The memo keeps them once ``signatures`` has summed them (the check does, under the same lock).
    return [(entry_id, known[entry_id] if entry_id in known else read[entry_id]) for entry_id, _ in counted]


class LedgerMemo:
    """A project's ledger as this process last read it: the unsealed entries and the running signatures of their
    sets (:class:`Signatures`), so that a check reads, unseals and sums only what changed since the previous one.
    At 1.4 million people and some thirty releases, unsealing every entry and summing every set again took 13 to 24 s
    of each check. Decrypted data: kept with the project's decrypted views (``ViewCache.attached``: memory only,
    dropped with the view, at idle expiry and at close), and none when that cache is off."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        """Held for a whole check (checks of one project are serialised by the database anyway)."""
        self.running = Signatures(os.urandom(32))
        self.records: dict[int, Record] = {}
        """By entry id: the unsealed records whose sets ``running`` sums (those that counted at the last check)."""

    def signatures(self, entries: list[tuple[int, Record]]) -> Signatures:
        """The running signatures brought to exactly the sets of ``entries`` (taking out the entries that stopped
        counting, adding the new ones)."""
        try:
            wanted = dict(entries)
            # Out: entries that stopped counting, and any read again as another record (a row replaced under its id).
            for entry_id in [e for e, rec in self.records.items() if wanted.get(e) is not rec]:
                for tag, members in record_sets(self.records.pop(entry_id)):
                    self.running.add(tag, members, -1)
            for entry_id, rec in wanted.items():
                if entry_id not in self.records:
                    for tag, members in record_sets(rec):
                        self.running.add(tag, members)
                    self.records[entry_id] = rec
        except BaseException:  # a half-summed record would corrupt every later check: start again next time
            self.running, self.records = Signatures(os.urandom(32)), {}
            raise
        return self.running


def ledger_memo(hub: Hub, project_id: int) -> LedgerMemo | None:
    return hub.view_cache.attached(project_id, "ledger", LedgerMemo)


# -- the checks -------------------------------------------------------------------------------------------------


def make_record(
    job_id: int, table: OutputTable, out: ProtectedOutput, contributors: Contributors, policy: DisclosurePolicy
) -> Record:
    released = {c.key: c for c in out.cells}
    sensitive_empty = {f.cell for f in out.findings if f.code == "empty-cell" and f.cell is not None}
    people = {c.key: c.people for c in table.cells}
    cells: list[LedgerCell] = []
    for c in table.cells:
        r = released.get(c.key)
        suppressed = r is None or r.suppressed
        published = None if suppressed or r is None or not table.release_people else r.people
        members = contributors.cells.get(c.key, BitMap())
        cells.append(LedgerCell(c.key, members, published, suppressed, c.people))
    for key in sensitive_empty:  # empty cells of the full grid (table.cells may not list them)
        paths: list[list[Any]] = []
        for code, dim in zip(key, table.dimensions, strict=True):
            path = [code]
            while (parent := dim.parent(path[-1])) is not None and parent not in path:
                path.append(parent)
            paths.append(path)
        margins = [m for m in itertools.product(*paths) if m != key and 0 < people.get(m, 0) < policy.threshold]
        margin = BitMap.union(*(contributors.cells.get(m, BitMap()) for m in margins)) if margins else BitMap()
        cells = [x for x in cells if x.key != key]
        cells.append(LedgerCell(key, BitMap(), None, True, 0, margin or contributors.population))
    return Record(job_id, table.release_people, policy.threshold, policy.rounding_base, contributors.population,
                  cells)  # fmt: skip


def _show(key: CellKey) -> str:
    return "(" + ", ".join(str(k) for k in key) + ")"


RETIRED = (
    N_(
        "ledger: the contributors of the cells could not be computed ({reason}): not checked against the "
        "project's other releases; an output checker must decide"
    ),
    term("query stop", "timeout"),
    term("query stop", "memory"),
    term("query stop", "invalid"),
    term("query stop", "runtime"),
)
"""Findings (and the words they quoted) no new release says (the contributors came from a second query, which
could stop on its own), kept in the catalogue so that releases which said them are still shown in the checker's
language."""


def is_ledger(finding: str) -> bool:
    """A finding of the ledger's checks, known by its message identifier (its English text for an older release)."""
    return (finding.msgid if isinstance(finding, Message) else finding).startswith("ledger")


def _listed(findings: list[str]) -> str:
    """Findings one after the other, separated by " | ", each kept as the message it was, so that the list is said
    in the checker's language too."""
    if not findings:
        return ""
    joined = findings[-1]
    for finding in reversed(findings[:-1]):
        joined = N_("{first} | {rest}", first=finding, rest=joined)
    return joined


def differencing(candidate: Record, earlier: list[Record], threshold: int) -> list[str]:
    """Findings for every population or published cell pair differing by 1 to threshold-1 people."""
    findings: list[str] = []
    most = threshold - 1
    for rec in earlier:
        d = candidate.population.symmetric_difference_cardinality(rec.population)
        if 0 < d < threshold:
            findings.append(N_("ledger: the population differs by between 1 and {most} people from that of analysis "
                               "{job}: releasing both would describe them by difference",
                               most=most, job=rec.job_id))  # fmt: skip
    pool: list[tuple[int, int, int, LedgerCell]] = []  # (size, job, order, cell) of every published cell
    for rec in [*earlier, candidate]:
        for i, c in enumerate(rec.cells):
            if not c.suppressed and len(c.members) > 0:
                pool.append((len(c.members), rec.job_id, i, c))
    pool.sort(key=lambda t: t[:3])
    sizes = [t[0] for t in pool]
    seen: set[tuple[int, int]] = set()
    for i, c in enumerate(candidate.cells):
        if c.suppressed or len(c.members) == 0:
            continue
        n = len(c.members)
        lo, hi = bisect.bisect_left(sizes, n - threshold + 1), bisect.bisect_right(sizes, n + threshold - 1)
        for _, job, j, other in pool[lo:hi]:
            if job == candidate.job_id and (j == i or (j, i) in seen):
                continue
            d = c.members.symmetric_difference_cardinality(other.members)
            if 0 < d < threshold:
                if job == candidate.job_id:
                    seen.add((i, j))
                if job == candidate.job_id:
                    why = N_("ledger: cell {cell} and another cell of this output, {other}, differ by between 1 and "
                             "{most} people: releasing both would describe them by difference",
                             cell=_show(c.key), other=_show(other.key), most=most)  # fmt: skip
                else:
                    why = N_("ledger: cell {cell} and a cell of analysis {job}, {other}, differ by between 1 and "
                             "{most} people: releasing both would describe them by difference",
                             cell=_show(c.key), job=job, other=_show(other.key), most=most)  # fmt: skip
                findings.append(why)
    return findings


def empty_margins(candidate: Record, earlier: list[Record]) -> list[str]:
    """Findings for candidate cells publishing new numbers over the small margins of an earlier empty cell that was
    suppressed as sensitive (see ``LedgerCell.margin``): the audit cannot bound it, checkers must look."""
    findings: list[str] = []
    published = [c for c in candidate.cells if not c.suppressed and len(c.members) > 0]
    for rec in earlier:
        guarded = [c for c in rec.cells if c.margin is not None and len(c.margin) > 0]
        if not guarded:
            continue
        known = {c.members.serialize() for c in rec.cells if not c.suppressed and len(c.members) > 0}
        for c in published:
            if c.members.serialize() in known:
                continue  # the same people as a cell already published: nothing new about them
            hit = next((e for e in guarded if c.members.intersect(e.margin)), None)  # type: ignore[arg-type]
            if hit is not None:
                findings.append(N_("ledger: cell {cell} publishes a new count over the small margin of an empty cell "
                                   "of analysis {job}, {other}, suppressed as sensitive; the audit cannot bound empty "
                                   "cells: an output checker must decide",
                                   cell=_show(c.key), job=rec.job_id, other=_show(hit.key)))  # fmt: skip
                break
    return findings


def atoms_of(records: list[Record]) -> tuple[list[tuple[int, ...]], int]:
    """For every cell of every record in order, the indices of its atoms; and the number of atoms."""
    atoms, count, _ = atoms_and_sizes([c.members for rec in records for c in rec.cells])
    assert atoms is not None
    return atoms, count


def atoms_and_sizes(
    sets: list[BitMap], max_atoms: int | None = None
) -> tuple[list[tuple[int, ...]] | None, int, list[int]]:
    """For every set in order, the indices of its atoms; the number of atoms; and each atom's size. Beyond
    ``max_atoms`` atoms the sets' atom lists are not built (None): the audit stops at its size anyway.

    An atom is a group of people lying in exactly the same sets. Each person's membership is summed into a 128-bit
    signature of weights (one pair per set, from a keyed hash under this process's key: nobody outside the process
    can choose sets whose weights collide), indexed by the person's dense number directly; atoms are the distinct
    signatures, numbered in sorted order. Everything is sorting and indexing in numpy: a release over 60,000 people
    and 500 cells (2 million memberships) takes 0.2 s (numpy's hash-based ``unique`` and a Python loop over the
    (set, atom) pairs took 2 to 6 s).
    """
    signatures = Signatures(_PROCESS_KEY)
    signatures.reserve(max((m.max() + 1 for m in sets if m), default=0))
    for i, members in enumerate(sets):
        signatures.add(str(i), members)
    return number_atoms(signatures, sets, max_atoms)


_PROCESS_KEY = os.urandom(32)
"""The atoms' weights key when no project memo holds one (fixed for the process: two computations over the same
sets number their atoms alike; a fixed public seed before)."""


class Signatures:
    """People's running membership signatures (:func:`atoms_and_sizes`): per dense person index, the sum of the
    weights of the sets holding them (modulo 2^64, twice), and how many sets hold them. Sums are exact in modular
    arithmetic, so a set can be taken out again (an entry that stops counting) by subtracting its weights."""

    def __init__(self, key: bytes) -> None:
        import numpy as np

        self.key = key
        # The two halves in two arrays, not one (people, 2) array: numpy's unbuffered indexed add is an order of
        # magnitude faster on a contiguous array than fancy-indexed rows.
        self.first = np.zeros(0, dtype=np.uint64)
        self.second = np.zeros(0, dtype=np.uint64)
        self.count = np.zeros(0, dtype=np.int32)

    def weight(self, tag: str) -> Any:
        """A set's pair of weights, from its tag under this object's key (a keyed hash: random to anyone without
        the key, the same for the same tag, so that a set added under a tag is taken out under it)."""
        import hashlib

        import numpy as np

        digest = hashlib.blake2b(tag.encode(), key=self.key, digest_size=16).digest()
        return np.frombuffer(digest, dtype=np.uint64).copy()

    def add(self, tag: str, members: BitMap, sign: int = 1) -> None:
        import numpy as np

        if not members:
            return
        weight = self.weight(tag)
        if sign < 0:
            weight = np.negative(weight)  # modulo 2^64: adding it takes the set's weights out
        self.reserve(members.max() + 1)
        index = np.frombuffer(members.to_array(), dtype=np.uint32).astype(np.intp)
        np.add.at(self.first, index, weight[0])
        np.add.at(self.second, index, weight[1])
        self.count[index] += sign  # a set holds each person once: a plain indexed add is exact

    def reserve(self, size: int) -> None:
        """Room for people numbered below ``size`` (grown by at least a quarter: people are added in waves)."""
        import numpy as np

        if size <= len(self.count):
            return
        size = max(size, len(self.count) + len(self.count) // 4)
        first, second = np.zeros(size, dtype=np.uint64), np.zeros(size, dtype=np.uint64)
        first[: len(self.count)], second[: len(self.count)] = self.first, self.second
        count = np.zeros(size, dtype=np.int32)
        count[: len(self.count)] = self.count
        self.first, self.second, self.count = first, second, count

    def copy(self) -> Signatures:
        other = Signatures(self.key)
        other.first, other.second, other.count = self.first.copy(), self.second.copy(), self.count.copy()
        return other


def number_atoms(
    signatures: Signatures, sets: list[BitMap], max_atoms: int | None = None
) -> tuple[list[tuple[int, ...]] | None, int, list[int]]:
    """:func:`atoms_and_sizes` from signatures that sum exactly ``sets``."""
    import numpy as np

    present = signatures.count > 0
    if not present.any():
        return [() for _ in sets], 0, []
    high, low = signatures.first[present], signatures.second[present]
    # Pairs in lexicographic order (as numpy's unique along an axis numbers them, at a fraction of its cost).
    order = np.lexsort((low, high))
    high, low = high[order], low[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (high[1:] != high[:-1]) | (low[1:] != low[:-1])
    atom = np.empty(len(order), dtype=np.int64)
    atom[order] = np.cumsum(first) - 1
    count = int(atom.max()) + 1
    sizes = np.bincount(atom, minlength=count).tolist()
    if max_atoms is not None and count > max_atoms:
        return None, count, sizes
    atom_of = np.zeros(len(present), dtype=np.int64)
    atom_of[present] = atom
    out = [tuple(np.unique(atom_of[np.frombuffer(m.to_array(), dtype=np.uint32)]).tolist()) for m in sets]
    return out, count, sizes


def audit_cells(
    records: list[Record], candidate: Record, max_atoms: int | None = None, running: Signatures | None = None
) -> tuple[list[AuditCell], int]:
    """The audit's cells: every cell of every record, each record's population (it shapes the atoms; it says at
    least the threshold when the record published a non-empty cell), and, as targets, the suppressed small cells
    and every atom of 1 to threshold - 1 people (people lying in exactly the same released cells and populations:
    differencing several releases, A - B - C with B and C disjoint halves of A, isolates them).

    Beyond ``max_atoms`` atoms the audit cannot run (:func:`hygie.disclosure.lpaudit.audit` stops at its size when
    there is anything to bound): only the first target is returned, which is all that answer depends on.

    ``running``: the signatures of the sets of ``records`` (:meth:`LedgerMemo.signatures`), kept from one check to
    the next, so that only the candidate's sets are summed here (the atoms are the same; their numbering differs)."""
    everything = [*records, candidate]
    sets = [c.members for rec in everything for c in rec.cells] + [rec.population for rec in everything]
    if running is None:
        atoms, count, sizes = atoms_and_sizes(sets, max_atoms)
    else:
        signatures = running.copy()
        for tag, members in record_sets(candidate):
            signatures.add(f"candidate|{tag}", members)  # never an earlier entry's tag, whatever its job id
        atoms, count, sizes = number_atoms(signatures, sets, max_atoms)
    if atoms is None:
        return _first_target(everything, sizes, candidate.threshold), count
    cells: list[AuditCell] = []
    single: set[tuple[int, ...]] = set()
    k = 0
    for rec in everything:
        for c in rec.cells:
            a = atoms[k]
            k += 1
            if not a:
                continue
            if c.suppressed:
                low, high = published_interval(None, rec.base)
            elif rec.release_people and c.published is not None:
                low, high = published_interval(c.published, rec.base)
                if c.published > 0:
                    low = max(low, float(rec.threshold))  # every published non-empty cell holds >= threshold
            else:
                low, high = float(rec.threshold), float("inf")
            target = c.suppressed and 0 < c.people < rec.threshold
            if target:
                single.add(a)
            ref = N_("suppressed cell analysis {job} {cell}", job=rec.job_id, cell=_show(c.key))
            cells.append(AuditCell(ref, a, low, high, target=target, candidate=rec is candidate))
    threshold = candidate.threshold
    for rec in everything:
        a = atoms[k]
        k += 1
        if a:
            known = any(c.published for c in rec.cells if c.published is not None) or (
                not rec.release_people and any(not c.suppressed and len(c.members) for c in rec.cells)
            )
            ref = N_("population of analysis {job}", job=rec.job_id)
            cells.append(AuditCell(ref, a, float(threshold if known else 0), float("inf"), candidate=rec is candidate))
    for i, size in enumerate(sizes):
        if 0 < size < threshold and (i,) not in single:
            ref = N_("a group of people lying in the same cells of the project's releases (#{group})", group=i)
            cells.append(AuditCell(ref, (i,), 0.0, float("inf"), target=True))
    return cells, count


def record_sets(rec: Record) -> list[tuple[str, BitMap]]:
    """The sets a record adds to the atoms, each with a tag unique in its project (job ids are)."""
    return [(f"{rec.job_id}:cell:{i}", c.members) for i, c in enumerate(rec.cells)] + [
        (f"{rec.job_id}:population", rec.population)
    ]


def _first_target(everything: list[Record], sizes: list[int], threshold: int) -> list[AuditCell]:
    """The first thing the audit would have to bound, if any (a suppressed small cell, else a small atom)."""
    for rec in everything:
        for c in rec.cells:
            if c.suppressed and 0 < c.people < rec.threshold:
                ref = N_("suppressed cell analysis {job} {cell}", job=rec.job_id, cell=_show(c.key))
                return [AuditCell(ref, (), 0.0, float("inf"), target=True, candidate=rec is everything[-1])]
    for i, size in enumerate(sizes):
        if 0 < size < threshold:
            ref = N_("a group of people lying in the same cells of the project's releases (#{group})", group=i)
            return [AuditCell(ref, (i,), 0.0, float("inf"), target=True)]
    return []


HOLD_TRIGGERS = ("refused", "unchecked")
"""Ledger states (``summary["ledger"]`` of a release) that hold the project's later aggregates for checkers."""
DECIDED = ("released", "rejected")


def hold_of(session: Session, project_id: int) -> AnalysisRelease | None:
    """The release whose ledger finding holds the project's aggregates for output checkers, or None.

    A refusal by the ledger, or a check it could not complete, is a yes/no answer the author may have steered (the
    refusal oracle, docs/disclosure.md): from then on every aggregate of the project waits for checkers, so at most
    one such answer leaves before a person looks. The hold ends when checkers decide (approve or reject) an output
    that carried the hold's finding or was itself unchecked. Findings during a hold do not start another (the author
    sees every output withheld then); the first finding after it does."""
    rows = session.execute(
        select(AnalysisRelease.id, AnalysisRelease.status, AnalysisRelease.summary)
        .where(AnalysisRelease.project_id == project_id)
        .order_by(AnalysisRelease.id.desc())
    ).all()
    for release_id, status, summary in rows:
        state, hold = (summary or {}).get("ledger"), (summary or {}).get("ledger_hold")
        if status in DECIDED and (hold in ("held", "started") or state == "unchecked"):
            return None  # checkers decided an output that showed them the hold's finding, or its own
        if hold == "started":
            return session.get(AnalysisRelease, release_id)
    return None


def not_reached(session: Session, project: Project, job_id: int, author: str) -> None:
    """An aggregate refused before the ledger writes the same record as one checked: the audit log grows alike."""
    _logged(
        session,
        project,
        job_id,
        Guard(state="not reached", detail={"checked": False, "reason": "not reached", "author": author}),
    )


def guard_release(
    hub: Hub,
    session: Session,
    project: Project,
    job_id: int,
    table: OutputTable,
    out: ProtectedOutput,
    policy: DisclosurePolicy,
    found: ContributorSets,
    author: str = "",
) -> Guard:
    """Both checks for a candidate aggregate output, the hold (:func:`hold_of`), and the entry to write with its
    release unless refused (an unchecked output still leaves its population, when known)."""
    # One check per project at a time (PostgreSQL; SQLite serialises writers): two probes checked at once would
    # both see no hold and answer twice.
    session.execute(select(Project.id).where(Project.id == project.id).with_for_update())
    held = hold_of(session, project.id)
    guard = _check(hub, session, project, job_id, table, out, policy, found)
    guard.state = "refused" if guard.refuse else "unchecked" if guard.unchecked else "held" if held else "checked"
    if held is not None and not guard.refuse:
        guard.review = True
        guard.findings.append(held_finding(held))
    guard.detail["author"] = author
    if held is not None:
        guard.detail["hold"] = "held"
    elif guard.state in HOLD_TRIGGERS or guard.review or str(out.verdict) == "review":
        # Any data-dependent withholding (ledger review incl. empty margins, protect's REVIEW) is a steerable bit.
        guard.detail["hold"] = "started"  # the DPO's ledger_hold alert fires on this event
    return _logged(session, project, job_id, guard)


def held_finding(held: AnalysisRelease) -> str:
    """The finding of an output held by ``held`` (:func:`hold_of`), quoting its first ledger findings."""
    earlier = [f for f in held.findings_said if is_ledger(f)][:5]
    return N_(
        "ledger: held for output checkers: analysis {job} had a ledger finding (refused, or not checked), a yes/no "
        "answer the author may have steered; every later aggregate of this project waits for checkers until they "
        "decide one of them. Its findings: {findings}",
        job=held.job_id,
        findings=_listed(earlier),
    )


def _entry(hub: Hub, session: Session, project: Project, roster: Roster, row: LedgerRoster | None,
           rec: Record) -> LedgerEntry:  # fmt: skip
    seq = (session.scalar(select(func.max(LedgerEntry.seq)).where(LedgerEntry.project_id == project.id)) or 0) + 1
    save_roster(hub, session, project.id, roster, row)
    return LedgerEntry(project_id=project.id, job_id=rec.job_id, seq=seq, sealed=seal(hub, project.id, rec),
                       created_at=datetime.now(UTC))  # fmt: skip


def _population_entry(
    hub: Hub, session: Session, project: Project, job_id: int, table: OutputTable, policy: DisclosurePolicy,
    found: ContributorSets,
) -> LedgerEntry:  # fmt: skip
    """An unchecked output's population alone (no cells): later outputs are still compared with it."""
    roster, roster_row = load_roster(hub, session, project.id)
    roster.add(found.population)
    rec = Record(job_id, table.release_people, policy.threshold, policy.rounding_base,
                 roster.dense(found.population), [])  # fmt: skip
    return _entry(hub, session, project, roster, roster_row, rec)


def _check(
    hub: Hub,
    session: Session,
    project: Project,
    job_id: int,
    table: OutputTable,
    out: ProtectedOutput,
    policy: DisclosurePolicy,
    found: ContributorSets,
) -> Guard:
    s = hub.settings
    guard = Guard()
    memberships = sum(c.people for c in table.cells)
    if memberships > s.ledger_max_contributions:
        guard.review = guard.unchecked = True
        guard.findings.append(N_("ledger: {memberships} (cell, person) memberships, more than "
                                 "ledger_max_contributions ({limit}): not checked against the project's other "
                                 "releases; an output checker must decide",
                                 memberships=memberships, limit=s.ledger_max_contributions))  # fmt: skip
        guard.detail = {"checked": False, "reason": "too many memberships"}
        guard.entry = _population_entry(hub, session, project, job_id, table, policy, found)
        return guard
    roster, roster_row = load_roster(hub, session, project.id)
    roster.add(found.population)  # every cell's people are in it (the population is the union of the cells)
    dense = Contributors(roster.dense(found.population), found.dense_cells(roster.dense_keys))
    candidate = make_record(job_id, table, out, dense, policy)
    unmatched = sum(1 for c in candidate.cells if c.people > 0 and len(c.members) == 0)
    if unmatched:  # the members and the cells disagree: a platform bug, never silent
        guard.review = guard.unchecked = True
        guard.findings.append(N_("ledger: the contributors of {cells} cells were not found: not checked against the "
                                 "project's other releases; an output checker must decide",
                                 cells=unmatched))  # fmt: skip
        guard.detail = {"checked": False, "reason": "unmatched cells"}
        population = Record(job_id, table.release_people, policy.threshold, policy.rounding_base, dense.population, [])
        guard.entry = _entry(hub, session, project, roster, roster_row, population)
        return guard
    memo = ledger_memo(hub, project.id)
    with memo.lock if memo is not None else contextlib.nullcontext():
        entries = load(hub, session, project.id, memo)
        earlier = [rec for _, rec in entries]
        pairs = differencing(candidate, earlier, policy.threshold)
        guard.findings += pairs
        empties = empty_margins(candidate, earlier)
        guard.findings += empties
        running = memo.signatures(entries) if memo is not None else None
        cells, atoms = audit_cells(earlier, candidate, s.lpaudit_max_atoms, running)
    result = audit(cells, atoms, policy.required_width, max_atoms=s.lpaudit_max_atoms, max_cells=s.lpaudit_max_cells,
                   max_targets=s.lpaudit_max_targets)  # fmt: skip
    guard.findings += audit_findings(result, policy.required_width)
    guard.refuse = bool(pairs) or result.refuses
    guard.unchecked = not guard.refuse and (result.too_large is not None or result.infeasible)
    guard.review = not guard.refuse and (guard.unchecked or bool(empties))
    guard.detail = {
        "checked": True,
        "earlier": len(earlier),
        "differencing": len(pairs),
        "empty_margins": len(empties),
        "targets": result.checked,
        "narrowed": sum(not n.already for n in result.narrowed),
        "already_narrow": sum(n.already for n in result.narrowed),
        "atoms": atoms,
        "linear_programs": result.lps,
        "audited": result.too_large is None,
    }
    if not guard.refuse:
        guard.entry = _entry(hub, session, project, roster, roster_row, candidate)
    return guard


def audit_findings(result: AuditResult, width: int) -> list[str]:
    """What the audit across releases found, for output checkers."""
    findings: list[str] = []
    for n in result.narrowed:
        if n.already:
            why = N_("ledger audit: {cell} was already narrowed by earlier releases to an interval narrower than "
                     "{width} by linear programming over the project's releases", cell=n.ref, width=width)  # fmt: skip
        else:
            why = N_("ledger audit: {cell} would be narrowed to an interval narrower than {width} by linear "
                     "programming over the project's releases", cell=n.ref, width=width)  # fmt: skip
        findings.append(why)
    if result.too_large:
        findings.append(N_("ledger audit: {what}: not audited across releases; an output checker must decide",
                           what=result.too_large))  # fmt: skip
    if result.infeasible:
        findings.append(N_("ledger audit: the published values contradict the recorded contributors (a platform "
                           "inconsistency); an output checker must decide"))  # fmt: skip
    return findings


def _logged(session: Session, project: Project, job_id: int, guard: Guard) -> Guard:
    """The check on the audit log (counts only; the reasons are in the release's findings)."""
    record(session, actor=SYSTEM.ref, action="analysis.ledger.check",
           outcome=Outcome.DENIED if guard.refuse else Outcome.OK, object=f"analysis:{job_id}",
           project_id=project.id, purpose=project.purpose, detail={"job": job_id, **guard.detail})  # fmt: skip
    return guard
