# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The release ledger's atoms (groups of people lying in exactly the same cells) against their definition."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap

from hygie.analysis.ledger import (
    LedgerCell,
    LedgerMemo,
    Record,
    Signatures,
    atoms_and_sizes,
    audit_cells,
    number_atoms,
    record_sets,
)
from hygie.disclosure.lpaudit import audit

memberships = st.lists(st.frozensets(st.integers(0, 200), max_size=40), max_size=12)


@settings(max_examples=200, deadline=None)
@given(memberships)
def test_atoms_are_the_groups_of_people_with_the_same_cells(sets: list[frozenset[int]]) -> None:
    assert_atoms(sets, *atoms_and_sizes([BitMap(s) for s in sets]))


def assert_atoms(sets: list[frozenset[int]], atoms: list[tuple[int, ...]] | None, count: int, sizes: list[int]) -> None:
    assert atoms is not None
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


records = st.lists(
    st.tuples(st.lists(st.tuples(st.frozensets(st.integers(0, 60), max_size=15), st.booleans()), max_size=5),
              st.frozensets(st.integers(0, 60), max_size=30)),
    min_size=1, max_size=4,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(records, st.integers(0, 40))
def test_an_audit_beyond_its_atoms_answers_as_the_whole_audit(
    given_records: list[tuple[list[tuple[frozenset[int], bool]], frozenset[int]]], max_atoms: int
) -> None:
    """Past ``lpaudit_max_atoms`` the ledger builds no cells (the audit stops at its size): the audit's answer, and
    whether there was anything to bound, must be those of the whole list of cells."""
    built = []
    for job, (cells, population) in enumerate(given_records):
        ledger_cells = [
            LedgerCell((str(i),), BitMap(members), None if hidden else len(members), hidden, len(members), BitMap())
            for i, (members, hidden) in enumerate(cells)
        ]
        built.append(Record(job, True, 5, 5, BitMap(population | frozenset().union(*(m for m, _ in cells))),
                            ledger_cells))  # fmt: skip
    *earlier, candidate = built
    whole, count = audit_cells(earlier, candidate)
    short, same = audit_cells(earlier, candidate, max_atoms)
    assert same == count
    limits = {"max_atoms": max_atoms, "max_cells": 10**6, "max_targets": 10**6}
    a, b = audit(whole, count, 3, **limits), audit(short, count, 3, **limits)
    assert (a.too_large is None) == (b.too_large is None) and a.refuses == b.refuses
    assert any(c.target for c in whole) == any(c.target for c in short)
    if count <= max_atoms:
        assert short == whole


@settings(max_examples=100, deadline=None)
@given(records, st.data())
def test_running_signatures_are_the_sums_of_the_entries_that_count(
    given_records: list[tuple[list[tuple[frozenset[int], bool]], frozenset[int]]], data: st.DataObject
) -> None:
    """A project's memo adds the entries that start counting and takes out those that stop (a rejected release):
    its signatures are then exactly those summed afresh over the entries that count, and number the same atoms."""
    built = {}
    for job, (cells, population) in enumerate(given_records):
        ledger_cells = [LedgerCell((str(i),), BitMap(m), None, hidden, len(m)) for i, (m, hidden) in enumerate(cells)]
        built[100 + job] = Record(job, True, 5, 5, BitMap(population), ledger_cells)
    memo = LedgerMemo()
    for _ in range(3):
        counting = sorted(data.draw(st.sets(st.sampled_from(sorted(built)))))
        entries = [(entry_id, built[entry_id]) for entry_id in counting]
        running = memo.signatures(entries)
        assert_sums_of(running, [rec for _, rec in entries])
        sets = [members for _, rec in entries for _, members in record_sets(rec)]
        assert_atoms([frozenset(m) for m in sets], *number_atoms(running, sets))
        # A check through the memo answers as one that sums everything afresh (atoms numbered otherwise).
        earlier = [rec for _, rec in entries]
        last = built[max(built)]
        candidate = Record(999, True, 5, 5, last.population, last.cells)
        whole, count = audit_cells(earlier, candidate)
        memo_cells, memo_count = audit_cells(earlier, candidate, None, running)
        limits = {"max_atoms": 10**6, "max_cells": 10**6, "max_targets": 10**6}
        a, b = audit(whole, count, 3, **limits), audit(memo_cells, memo_count, 3, **limits)
        assert memo_count == count and len(memo_cells) == len(whole)
        assert (a.refuses, len(a.narrowed), a.infeasible) == (b.refuses, len(b.narrowed), b.infeasible)


def assert_sums_of(running: Signatures, records: list[Record]) -> None:
    """``running`` holds exactly the sums of the records' sets, as a fresh sum gives them (up to its length)."""
    fresh = Signatures(running.key)
    for rec in records:
        for tag, members in record_sets(rec):
            fresh.add(tag, members)
    size = max(len(fresh.count), len(running.count))
    for name in ("count", "first", "second"):
        assert (pad(getattr(running, name), size) == pad(getattr(fresh, name), size)).all(), name


def pad(values: Any, size: int) -> Any:
    import numpy as np

    return np.concatenate([values, np.zeros(size - len(values), dtype=values.dtype)])


def test_an_entry_read_again_as_another_record_is_summed_anew() -> None:
    """A ledger row replaced under the same id (a restore under a running process) is read again by ``load``; the
    memo must then take the old record's sets out and add the new one's, not keep summing the old."""
    old = Record(1, True, 5, 5, BitMap(range(10)), [LedgerCell(("a",), BitMap(range(5)), None, False, 5)])
    new = Record(2, True, 5, 5, BitMap(range(3, 12)), [LedgerCell(("a",), BitMap(range(3, 7)), None, False, 4)])
    memo = LedgerMemo()
    memo.signatures([(7, old)])
    assert_sums_of(memo.signatures([(7, new)]), [new])
