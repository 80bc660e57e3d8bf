# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Merkle tree hashing and proofs exactly as RFC 9162 §2.1 (Certificate Transparency v2).

Pure functions over indexes: proofs are first described as the ranges of leaves whose tree hashes they carry
(:func:`inclusion_ranges`, :func:`consistency_ranges`), then a :class:`SubtreeSource` supplies hashes of complete,
aligned subtrees, from which every range hash is folded. Storage only has to keep complete subtrees (they never
change once complete); the right edge of a tree is always recomputed from them.

A complete aligned subtree is named ``(level, index)``: it covers leaves ``[index << level, (index + 1) << level)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""RFC 9162 §2.1.1: the hash of an empty list is the hash of an empty string."""

Subtree = tuple[int, int]
"""``(level, index)`` of a complete aligned subtree."""


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


def complete_root(leaves: Sequence[bytes]) -> bytes:
    """Root of a complete tree (power-of-two leaves), bottom-up without recursion."""
    level = list(leaves)
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the leaf hashes given (any n)."""
    if not leaves:
        return EMPTY_ROOT
    return fold([complete_root(leaves[a:b]) for a, b in _pieces(0, len(leaves))])


def fold(hashes: Sequence[bytes]) -> bytes:
    """Combine the decomposition of a range (largest subtree first) as RFC 9162 does: H(T1, H(T2, ...))."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _pieces(start: int, end: int) -> list[tuple[int, int]]:
    pieces = []
    while start < end:
        size = 1 << ((end - start).bit_length() - 1)
        pieces.append((start, start + size))
        start += size
    return pieces


def decompose(start: int, end: int) -> list[Subtree]:
    """The complete aligned subtrees whose fold is MTH(D[start:end]), largest first.

    Every range an RFC 9162 tree is built from starts on a multiple of its largest piece, so the binary
    decomposition of its length is made of aligned subtrees; anything else is a caller error.
    """
    if end <= start:
        raise ValueError(f"empty range [{start}, {end})")
    out = []
    for a, b in _pieces(start, end):
        level = (b - a).bit_length() - 1
        if a % (b - a):
            raise ValueError(f"range [{start}, {end}) is not a subtree of an RFC 9162 tree")
        out.append((level, a >> level))
    return out


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.3.1 PATH(index, D[size]) as leaf ranges, in audit path order (leaf side first)."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    ranges = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index - lo < k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    return ranges[::-1]


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """RFC 9162 §2.1.4.1 PROOF(old, D[new]) as leaf ranges, in proof order. Empty when old is 0 or equals new."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from size {old} to size {new}")
    if old in (0, new):
        return []
    ranges = []
    lo, hi, m, whole = 0, new, old, True
    while hi - lo != m:
        k = split_point(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            m -= k
            whole = False
    if not whole:
        ranges.append((lo, hi))
    return ranges[::-1]


class SubtreeSource(Protocol):
    """Whatever can hand over hashes of complete aligned subtrees (stored, cached or computed)."""

    def subtrees(self, wanted: Iterable[Subtree]) -> Mapping[Subtree, bytes]: ...


def range_hashes(source: SubtreeSource, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """MTH of each range, fetching every needed subtree from the source in one call."""
    pieces: list[list[Subtree]] = []
    for a, b in ranges:
        n = b - a
        if n > 0 and not n & (n - 1) and not a % n:  # most ranges of a proof are one complete aligned subtree
            level = n.bit_length() - 1
            pieces.append([(level, a >> level)])
        else:
            pieces.append(decompose(a, b))
    known = source.subtrees({p for ps in pieces for p in ps})
    return [known[ps[0]] if len(ps) == 1 else fold([known[p] for p in ps]) for ps in pieces]


def root(source: SubtreeSource, size: int) -> bytes:
    return EMPTY_ROOT if size == 0 else range_hashes(source, [(0, size)])[0]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], expected_root: bytes) -> bool:
    """RFC 9162 §2.1.3.2: check an audit path; for witnesses and for self-checks."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected_root


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2: check that the tree of size ``new`` extends the tree of size ``old``."""
    if not 0 <= old <= new:
        return False
    if old == new:
        return not proof and old_root == new_root
    if old == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is itself the first node
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class MemoryTree:
    """A whole tree in memory (tests, witnesses, small logs): every subtree computed from the leaf hashes."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self.leaves: list[bytes] = list(leaves)

    def append(self, entry: bytes) -> int:
        self.leaves.append(leaf_hash(entry))
        return len(self.leaves) - 1

    def subtrees(self, wanted: Iterable[Subtree]) -> dict[Subtree, bytes]:
        return {(lv, i): complete_root(self.leaves[i << lv : (i + 1) << lv]) for lv, i in wanted}

    def root(self, size: int | None = None) -> bytes:
        return root(self, len(self.leaves) if size is None else size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return range_hashes(self, inclusion_ranges(index, len(self.leaves) if size is None else size))

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        return range_hashes(self, consistency_ranges(old, len(self.leaves) if new is None else new))
