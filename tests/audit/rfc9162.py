# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A verifier written from RFC 9162 §2.1 alone, by its recursive definitions, apart from hygie.audit.merkle."""

from __future__ import annotations

import hashlib


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaf(entry: bytes) -> bytes:
    return h(b"\x00" + entry)


def node(left: bytes, right: bytes) -> bytes:
    return h(b"\x01" + left + right)


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """§2.1.1 over leaf hashes."""
    if not leaves:
        return h(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = k_of(len(leaves))
    return node(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """§2.1.3.1 PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = k_of(len(leaves))
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], b: bool) -> list[bytes]:
    """§2.1.4.1 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if b else [mth(leaves)]
    k = k_of(n)
    if m <= k:
        return [*subproof(m, leaves[:k], b), mth(leaves[k:])]
    return [*subproof(m - k, leaves[k:], False), mth(leaves[:k])]


def proof(m: int, leaves: list[bytes]) -> list[bytes]:
    return subproof(m, leaves, True)


def root_from_inclusion(index: int, size: int, leaf_hash: bytes, audit_path: list[bytes]) -> bytes:
    """Rebuild the root the path claims, following the tree shape of §2.1.1 (last path element = top sibling)."""
    if size == 1:
        assert not audit_path, "path too long"
        return leaf_hash
    assert audit_path, "path too short"
    k = k_of(size)
    sibling, rest = audit_path[-1], audit_path[:-1]
    if index < k:
        return node(root_from_inclusion(index, k, leaf_hash, rest), sibling)
    return node(sibling, root_from_inclusion(index - k, size - k, leaf_hash, rest))


def roots_from_consistency(m: int, n: int, old_root: bytes, consistency: list[bytes]) -> tuple[bytes, bytes]:
    """(old root, new root) that a consistency proof from m to n implies, given the old root for the b=True case."""

    def walk(m: int, n: int, items: list[bytes], b: bool) -> tuple[bytes, bytes, list[bytes]]:
        if m == n:
            if b:
                return old_root, old_root, items
            assert items, "proof too short"
            return items[-1], items[-1], items[:-1]
        assert items, "proof too short"
        k = k_of(n)
        last, rest = items[-1], items[:-1]
        if m <= k:
            old, new, left = walk(m, k, rest, b)
            return old, node(new, last), left
        old, new, left = walk(m - k, n - k, rest, False)
        return node(last, old), node(last, new), left

    old, new, left = walk(m, n, list(consistency), True)
    assert not left, "proof too long"
    return old, new
