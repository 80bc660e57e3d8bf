# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from hygie.audit import merkle
from tests.audit import rfc9162


@st.composite
def trees(draw: st.DrawFn) -> merkle.MemoryTree:
    n = draw(st.integers(1, 300))
    return merkle.MemoryTree(rfc9162.leaf(i.to_bytes(4, "big")) for i in range(n))


@settings(max_examples=200, deadline=None)
@given(trees(), st.data())
def test_inclusion_round_trip(tree: merkle.MemoryTree, data: st.DataObject) -> None:
    size = data.draw(st.integers(1, len(tree.leaves)))
    index = data.draw(st.integers(0, size - 1))
    proof = tree.inclusion_proof(index, size)
    assert proof == rfc9162.path(index, tree.leaves[:size])
    assert tree.root(size) == rfc9162.mth(tree.leaves[:size])
    assert rfc9162.root_from_inclusion(index, size, tree.leaves[index], proof) == tree.root(size)
    assert merkle.verify_inclusion(tree.leaves[index], index, size, proof, tree.root(size))
    if proof:
        bad = [*proof[:-1], os.urandom(32)]
        assert not merkle.verify_inclusion(tree.leaves[index], index, size, bad, tree.root(size))
    assert not merkle.verify_inclusion(os.urandom(32), index, size, proof, tree.root(size))


@settings(max_examples=200, deadline=None)
@given(trees(), st.data())
def test_consistency_round_trip(tree: merkle.MemoryTree, data: st.DataObject) -> None:
    new = data.draw(st.integers(1, len(tree.leaves)))
    old = data.draw(st.integers(1, new))
    proof = tree.consistency_proof(old, new)
    assert proof == rfc9162.proof(old, tree.leaves[:new])
    assert rfc9162.roots_from_consistency(old, new, tree.root(old), proof) == (tree.root(old), tree.root(new))
    assert merkle.verify_consistency(old, new, tree.root(old), tree.root(new), proof)
    if proof:
        bad = [os.urandom(32), *proof[1:]]
        assert not merkle.verify_consistency(old, new, tree.root(old), tree.root(new), bad)
    if old < new:
        assert not merkle.verify_consistency(old, new, os.urandom(32), tree.root(new), proof)


def test_empty_tree_and_known_vector() -> None:
    assert merkle.root_of([]) == rfc9162.h(b"")
    # RFC 6962/9162 test vector: the tree over the 8 entries used by certificate-transparency-go.
    entries = [
        bytes.fromhex(x)
        for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
    ]
    tree = merkle.MemoryTree()
    for e in entries:
        tree.append(e)
    assert tree.root().hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
