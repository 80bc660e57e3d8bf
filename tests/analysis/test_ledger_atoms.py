# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The release ledger's atoms (groups of people lying in exactly the same cells) against their definition."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from hygie.analysis.ledger import atoms_and_sizes

memberships = st.lists(st.frozensets(st.integers(0, 200), max_size=40), max_size=12)


@settings(max_examples=200, deadline=None)
@given(memberships)
def test_atoms_are_the_groups_of_people_with_the_same_cells(sets: list[frozenset[int]]) -> None:
    atoms, count, sizes = atoms_and_sizes([BitMap(s) for s in sets])
    people = set().union(*sets) if sets else set()
    by_cells: dict[frozenset[int], set[int]] = {}
    for person in people:
        by_cells.setdefault(frozenset(i for i, s in enumerate(sets) if person in s), set()).add(person)
    assert count == len(by_cells) and sorted(sizes) == sorted(len(g) for g in by_cells.values())
    assert len(atoms) == len(sets)
    # Each group of people has one atom: in every atom list of its cells and in no other; sets are unions of atoms.
    atom_people: dict[int, set[int]] = {}
    for cells, group in by_cells.items():
        inside = set.intersection(*(set(atoms[i]) for i in cells))
        outside = set().union(*(set(atoms[j]) for j in range(len(sets)) if j not in cells))
        (index,) = inside - outside
        atom_people[index] = group
    assert len(atom_people) == count
    for i, s in enumerate(sets):
        assert set().union(*(atom_people[a] for a in atoms[i])) == set(s)
        assert list(atoms[i]) == sorted(set(atoms[i]))
    assert all(sizes[a] == len(g) for a, g in atom_people.items())
