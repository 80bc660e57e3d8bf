# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The attacker of tests/disclosure/attacker.py against the complementary suppression."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hygie.disclosure import Cell, CellKey, Dimension, DisclosurePolicy, OutputTable, ProtectedOutput, Verdict, protect
from tests.disclosure.attacker import intervals
from tests.disclosure.tables import with_margins

POLICY = DisclosurePolicy(threshold=5, rounding_base=1)

counts = st.one_of(st.integers(0, 6), st.integers(0, 40))


def check_against_attacker(table: OutputTable, out: ProtectedOutput, policy: DisclosurePolicy) -> None:
    people = {c.key: c.people for c in table.cells}
    # No released cell describes 1..threshold-1 people, and no released count is small or negative.
    for cell in out.cells:
        if not cell.suppressed:
            assert people[cell.key] == 0 or people[cell.key] >= policy.threshold
            assert cell.people is not None
            assert cell.people == 0 or cell.people >= policy.threshold
    suppressed = set(out.suppressed)
    if not suppressed:
        return
    sensitive = {k for k, v in people.items() if 0 < v < policy.threshold}
    protected = {p.target: p for p in out.protections}
    attack = intervals(table, suppressed, sensitive | set(protected))
    assert sensitive <= set(protected)
    for key, p in protected.items():
        lo, hi = attack[key]
        value = people[key]
        # The attacker can never do better than the hypercube the suppressor exhibited.
        assert lo <= value - p.down
        assert hi >= value + p.up
        if p.protected:
            assert hi - lo >= policy.required_width
            # A small cell may be 0; an empty cell (under a small margin) may be 1 or more: they look alike.
            assert (lo < value or value == 0) and value < hi
    if out.verdict is Verdict.RELEASE:
        for key in sensitive:
            lo, hi = attack[key]
            assert hi - lo >= policy.required_width, (key, lo, hi)


def test_the_attacker_pins_a_lone_suppressed_cell() -> None:
    # A sanity check of the attacker itself: one hidden cell in a row with its total is recomputed exactly.
    rows = Dimension("sex", total="all")
    table = with_margins([rows], {("F",): 3, ("M",): 20})
    assert intervals(table, {("F",)}) == {("F",): (3.0, 3.0)}
    assert intervals(table, {("F",), ("M",)})[("F",)] == (0.0, 23.0)


def test_a_naive_pattern_is_caught_by_the_attacker() -> None:
    # Two suppressions in every row and column that holds one is not enough when they form a bridge between two
    # cycles... the simplest failure: hiding a cell and its row partner leaves the column total to pin both.
    rows, cols = Dimension("r", total="T"), Dimension("c", total="T")
    interior = {(r, c): 20 for r in "ab" for c in "xy"}
    interior[("a", "x")] = 2
    table = with_margins([rows, cols], interior)
    assert intervals(table, {("a", "x"), ("a", "y")})[("a", "x")] == (2.0, 2.0)


def test_a_one_dimensional_table_with_total() -> None:
    dim = Dimension("region", total="France")
    table = with_margins([dim], {("11",): 2, ("24",): 30, ("84",): 12})
    out = protect(table, POLICY)
    assert out.verdict is Verdict.RELEASE
    assert out.suppressed == {("11",), ("84",)}  # the smallest partner that leaves width >= 5
    check_against_attacker(table, out, POLICY)


def test_nothing_to_protect_without_margins() -> None:
    dim = Dimension("region")
    table = with_margins([dim], {("11",): 2, ("24",): 30})
    out = protect(table, POLICY)
    assert out.suppressed == {("11",)}
    assert out.verdict is Verdict.RELEASE


def test_margins_are_the_last_resort_partners() -> None:
    # With a total, hiding the total with the cell always protects it (the attacker is left unbounded above), but
    # totals are large, so cheaper partners come first.
    dim = Dimension("region", total="France")
    # Empty cells are suppressed too (they must look like small ones), but are no partners: they cannot move down.
    table = with_margins([dim], {("11",): 3, ("24",): 0, ("84",): 0, ("93",): 6})
    out = protect(table, POLICY)
    assert out.suppressed == {("11",), ("93",), ("24",), ("84",)}
    table = with_margins([dim], {("11",): 3, ("24",): 0, ("84",): 40})
    out = protect(table, POLICY)
    assert out.suppressed == {("11",), ("84",), ("24",)}


def test_a_table_that_cannot_be_cleared_goes_to_review() -> None:
    # Not additive: the 3 January patients all came back in February, so the year total (16) equals February.
    # No move of the hidden cells keeps every published relation (a cell never exceeds its margin) in both
    # directions; the automatic check cannot clear it and hands it to output checkers.
    months = Dimension("month", total="year")
    cells = (
        Cell(("jan",), 3, cell_key=1, anchor_key=1),
        Cell(("feb",), 16, cell_key=2, anchor_key=2),
        Cell(("year",), 16, cell_key=2, anchor_key=2),
    )
    table = OutputTable((months,), (), cells, people_additive=False)
    out = protect(table, POLICY)
    assert out.verdict is Verdict.REVIEW
    assert any(f.code == "unprotected" for f in out.findings)
    assert ("jan",) in out.suppressed


@st.composite
def two_way(draw: st.DrawFn) -> OutputTable:
    r = draw(st.integers(1, 4))
    c = draw(st.integers(1, 4))
    row_total = draw(st.sampled_from(["T", None]))
    col_total = draw(st.sampled_from(["T", None]))
    interior: dict[CellKey, int] = {(f"r{i}", f"c{j}"): draw(counts) for i in range(r) for j in range(c)}
    return with_margins([Dimension("row", total=row_total), Dimension("col", total=col_total)], interior)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(two_way())
def test_two_way_tables_resist_the_attacker(table: OutputTable) -> None:
    out = protect(table, POLICY)
    check_against_attacker(table, out, POLICY)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hierarchical_tables_resist_the_attacker(data: st.DataObject) -> None:
    # Départements within régions within France, crossed (or not) with sex and its total.
    geo = Dimension("geo", total="FR", parents={"75": "IDF", "92": "IDF", "93": "IDF", "13": "PACA", "06": "PACA"})
    crossed = data.draw(st.booleans())
    dims = [geo, Dimension("sex", total="all")] if crossed else [geo]
    sexes = ["F", "M"] if crossed else [None]
    interior: dict[CellKey, int] = {}
    for dep in ["75", "92", "93", "13", "06"]:
        for s in sexes:
            interior[(dep, s) if crossed else (dep,)] = data.draw(counts)
    table = with_margins(dims, interior)
    out = protect(table, POLICY)
    check_against_attacker(table, out, POLICY)


def test_default_policy_on_a_realistic_table() -> None:
    # Age band x sex with both margins, threshold 11: small cells get partners, the attacker is left >= 11 wide.
    policy = DisclosurePolicy()
    interior = {(a, s): 40 + 7 * i + 3 * j for i, a in enumerate("ABCDE") for j, s in enumerate("FM")}
    interior[("A", "F")] = 3
    interior[("C", "M")] = 8
    table = with_margins([Dimension("age", total="all"), Dimension("sex", total="all")], interior)
    out = protect(table, policy)
    assert out.verdict is Verdict.RELEASE
    assert len(out.suppressed) >= 4
    check_against_attacker(table, out, policy)
