# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The audit across releases (``hygie.disclosure.lpaudit``) on hand-made systems, checked against the exact
simplex of ``tests/disclosure/attacker.py`` where they overlap."""

from __future__ import annotations

import math

import pytest

from hygie.disclosure import Cell, Dimension, OutputTable
from hygie.disclosure.lpaudit import AuditCell, Narrowed, audit, published_interval
from tests.disclosure.attacker import intervals

LIMITS = {"max_atoms": 1000, "max_cells": 1000, "max_targets": 100}


def test_published_interval_is_what_rounding_leaves_the_attacker() -> None:
    # r = 5 * floor((n + u) / 5), u in 0..4 unknown: every n in [r - 4, r + 4] can give r, nothing outside can.
    base = 5
    for n in range(1, 60):
        for u in range(base):
            r = (n + u) // base * base
            if r == 0:
                continue
            low, high = published_interval(r, base)
            assert low <= n <= high
    assert published_interval(20, base) == (16.0, 24.0)
    reachable = {(n + u) // base * base for n in (16, 24) for u in range(base)}
    assert 20 in reachable  # both ends are reachable: the interval is exact, not loose
    assert published_interval(0, base) == (0.0, 0.0)
    assert published_interval(None, base) == (1.0, math.inf)


def margin_and_two(total: int, b: int, *, b_published: bool, target_true: int = 2) -> list[AuditCell]:
    """A suppressed small cell A (atom 0) and B (atom 1) under a published total; B published by a second release."""
    cells = [
        AuditCell("r1 A", (0,), *published_interval(None, 5), target=True),
        AuditCell("r1 B", (1,), *published_interval(None, 5)),
        AuditCell("r1 Total", (0, 1), *published_interval(total, 5)),
    ]
    if b_published:
        cells.append(AuditCell("r2 B", (1,), *published_interval(b, 5), candidate=True))
    return cells


def test_a_second_release_that_publishes_the_partner_narrows_the_small_cell() -> None:
    alone = audit(margin_and_two(100, 100, b_published=False), 2, 11, **LIMITS)
    assert not alone.narrowed and not alone.refuses
    # Total 100 in [96, 104], B 100 in [96, 104]: A = Total - B lies in [1, 8], narrower than 11.
    both = audit(margin_and_two(100, 100, b_published=True), 2, 11, **LIMITS)
    assert [(n.ref, n.low, n.high, n.already) for n in both.narrowed] == [("r1 A", 1, 8, False)]
    assert both.refuses
    # The rounding is real protection: with a partner published 10 lower the interval is [1, 18], wide enough.
    wide = audit(margin_and_two(100, 90, b_published=True), 2, 11, **LIMITS)
    assert not wide.narrowed


def test_a_cell_already_narrowed_by_earlier_releases_is_recorded_not_blamed_on_the_candidate() -> None:
    cells = margin_and_two(100, 100, b_published=True)
    cells[-1] = AuditCell("r2 B", (1,), *published_interval(100, 5))  # published earlier, not by the candidate
    cells.append(AuditCell("r3 Total", (0, 1), *published_interval(100, 5), candidate=True))
    result = audit(cells, 2, 11, **LIMITS)
    assert [n.already for n in result.narrowed] == [True] and not result.refuses


def test_bounds_send_to_checkers_instead_of_skipping() -> None:
    cells = margin_and_two(100, 100, b_published=True)
    for limit, value in (("max_atoms", 1), ("max_cells", 2), ("max_targets", 0)):
        result = audit(cells, 2, 11, **{**LIMITS, limit: value})
        assert result.too_large and not result.checked and not result.refuses, limit
    assert not audit([c for c in cells if not c.target], 2, 11, max_atoms=0, max_cells=0, max_targets=0).too_large


def test_contradicting_values_are_flagged() -> None:
    cells = [AuditCell("x", (0,), 20, 24), AuditCell("y", (0,), 40, 44), AuditCell("t", (0,), 1, math.inf, True)]
    assert audit(cells, 1, 11, **LIMITS).infeasible


@pytest.mark.parametrize("published", [True, False])
def test_on_one_table_the_audit_agrees_with_the_exact_attacker(published: bool) -> None:
    """A 2 x 3 table with margins, each leaf its own atom, exact values (interval of width 0): the audit's
    intervals are the exact simplex's."""
    leaves = {("a", "x"): 3, ("a", "y"): 40, ("a", "z"): 25, ("b", "x"): 30, ("b", "y"): 2, ("b", "z"): 28}
    suppressed = {("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")}
    cells = [Cell(k, v) for k, v in leaves.items()]
    rows = {r: sum(v for (rr, _), v in leaves.items() if rr == r) for r in "ab"}
    cols = {c: sum(v for (_, cc), v in leaves.items() if cc == c) for c in "xyz"}
    cells += [Cell((r, "T"), v) for r, v in rows.items()] + [Cell(("T", c), v) for c, v in cols.items()]
    cells.append(Cell(("T", "T"), sum(leaves.values())))
    table = OutputTable((Dimension("r", total="T"), Dimension("c", total="T")), (), tuple(cells))
    exact = intervals(table, suppressed)
    atom = {k: i for i, k in enumerate(leaves)}
    audit_cells = []
    for c in cells:
        atoms = tuple(atom[k] for k in leaves if c.key[0] in (k[0], "T") and c.key[1] in (k[1], "T"))
        small = c.key in suppressed and c.people < 11
        if c.key in suppressed:
            audit_cells.append(AuditCell(repr(c.key), atoms, 0, math.inf, target=small))
        elif published:
            audit_cells.append(AuditCell(repr(c.key), atoms, c.people, c.people))
    result = audit(audit_cells, len(leaves), 100, **LIMITS)  # width 100: every target reports its exact interval
    found = {n.ref: (n.low, n.high) for n in result.narrowed}
    expected = {repr(k): exact[k] for k in suppressed if leaves[k] < 11} if published else {}
    assert found == {k: (int(lo), int(hi)) for k, (lo, hi) in expected.items()}


# -- atoms as targets: differencing by disjoint halves (A - B - C) ----------------------------------------------------


def halves_attack(triples: int, *, atom_targets: bool, seed: int = 1) -> tuple[int, float, float, int]:
    """The reviewer's simulation: A_j holds the target and 70% of 100 people, B_j and C_j are two disjoint halves
    of A_j without her; each table has one cell (care in a month, about 60% of people), published by keyed rounding.
    Every pair differs by at least the threshold, yet A_j - B_j - C_j is her. Releases go through the ledger's audit
    in order (``atom_targets``: small atoms are targets, the fix; without, only suppressed cells, as before).
    Returns (tables released, the attacker's min and max of her count over the released tables, programs)."""
    import random

    from pyroaring import BitMap

    from hygie.analysis.ledger import LedgerCell, Record, audit_cells
    from hygie.disclosure.cellkey import StickyRounding

    rng = random.Random(seed)
    rounding = StickyRounding(5)
    n, target = 100, 100
    keys = [rng.getrandbits(32) for _ in range(n + 1)]
    in_month = {i for i in range(n) if rng.random() < 0.6} | {target}

    def rec(job: int, population: list[int]) -> Record:
        cell = [i for i in population if i in in_month]
        published = rounding.release(len(cell), min(keys[i] for i in cell))
        return Record(job, True, 11, 5, BitMap(population),
                      [LedgerCell(("m",), BitMap(cell), published, False, len(cell))])  # fmt: skip

    released: list[Record] = []
    programs = 0
    for j in range(triples):
        a = [i for i in range(n) if rng.random() < 0.7]
        b = [i for i in a if rng.random() < 0.5]
        c = sorted(set(a) - set(b))
        for k, people in enumerate(([*a, target], b, c)):
            candidate = rec(3 * j + k, people)
            cells, atoms = audit_cells(released, candidate)
            if not atom_targets:
                cells = [x for x in cells if not x.ref.startswith("a group")]
            result = audit(cells, atoms, 11, max_atoms=1000, max_cells=1000, max_targets=400)
            programs += result.lps
            if not result.refuses and result.too_large is None and not result.infeasible:
                released.append(candidate)
    # The attacker's interval for her, over what was released (width 1000: the exact interval is reported).
    cells, count = audit_cells(released, Record(-1, True, 11, 5, BitMap([target]), []))
    cells = [AuditCell(x.ref, x.atoms, x.low, x.high, target=x.ref == "population of analysis -1") for x in cells]
    result = audit(cells, count, 1000, max_atoms=1000, max_cells=1000, max_targets=400)
    her = result.narrowed[0] if result.narrowed else Narrowed("her", 0, 1000, False)
    return len(released), her.low, her.high, programs


def test_disjoint_halves_isolate_one_person_unless_small_atoms_are_targets() -> None:
    triples = 8
    before = halves_attack(triples, atom_targets=False)
    after = halves_attack(triples, atom_targets=True)
    print(f"\nA - B - C over {triples} triples: before {before[0]} of {3 * triples} released, her count in "
          f"[{before[1]}, {before[2]}]; after {after[0]} released, in [{after[1]}, {after[2]}], "
          f"{after[3]} programs")  # fmt: skip
    assert before[0] == 3 * triples and before[2] - before[1] < 11  # every pair passes, yet she is narrowed
    assert after[2] - after[1] >= 11  # with small atoms as targets, the release that would narrow her is refused


def test_new_counts_over_an_earlier_empty_sensitive_cell_go_to_checkers() -> None:
    """An empty cell under a small margin is suppressed by ``protect`` ('empty' would tell what a few people do not
    have); the audit has no atom for it, so a later output publishing new counts over that margin goes to checkers."""
    from pyroaring import BitMap

    from hygie.analysis.contributors import Contributors
    from hygie.analysis.ledger import LedgerCell, Record, empty_margins, make_record
    from hygie.disclosure import DisclosurePolicy, protect
    from tests.disclosure.tables import with_margins

    dims = (Dimension("r", total="T"), Dimension("c", total="T"))
    interior = {("a", "x"): 5, ("b", "x"): 30, ("b", "y"): 40}  # ("a", "y") is empty under a margin of 5
    table = with_margins(dims, interior)
    ids = {k: range(sum(list(interior.values())[:i]), sum(list(interior.values())[: i + 1]))
           for i, k in enumerate(interior)}  # fmt: skip
    members = {c.key: BitMap(p for k, r in ids.items() if all(x in (y, "T") for x, y in zip(c.key, k, strict=True))
                             for p in r) for c in table.cells}  # fmt: skip
    policy = DisclosurePolicy()
    out = protect(table, policy)
    earlier = make_record(1, table, out, Contributors(BitMap(range(75)), members), policy)
    guarded = [c for c in earlier.cells if c.margin is not None]
    assert [c.key for c in guarded] == [("a", "y")] and guarded[0].margin == BitMap(range(5))
    overlapping = Record(2, True, 11, 5, BitMap(range(20)), [LedgerCell(("all",), BitMap(range(20)), 20, False, 20)])
    assert empty_margins(overlapping, [earlier])  # new people counts over her margin: checkers decide
    apart = Record(3, True, 11, 5, BitMap(range(5, 40)), [LedgerCell(("b",), BitMap(range(5, 40)), 35, False, 35)])
    assert not empty_margins(apart, [earlier])
    again = make_record(4, table, out, Contributors(BitMap(range(75)), members), policy)
    assert not empty_margins(again, [earlier])  # the same table again: the same cells, nothing new
