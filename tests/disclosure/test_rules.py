# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Refusals, small cells, dominance and quantiles."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hygie.disclosure import (
    Cell,
    Dimension,
    DisclosurePolicy,
    Measure,
    MeasureKind,
    OutputTable,
    ReleasedCell,
    Verdict,
    protect,
)
from tests.disclosure.attacker import intervals
from tests.disclosure.tables import with_margins

REGION = Dimension("region")


def cell(code: str, people: int, **values: float) -> Cell:
    return Cell((code,), people, values, cell_key=people * 7919 % 2**32, anchor_key=people * 104729 % 2**32)


@pytest.mark.parametrize("kind", [MeasureKind.MIN, MeasureKind.MAX])
def test_min_and_max_are_refused(kind: MeasureKind) -> None:
    table = OutputTable((REGION,), (Measure("amount", kind),), (cell("11", 500, amount=3.0),))
    out = protect(table)
    assert out.verdict is Verdict.REFUSE
    assert out.cells == ()
    assert any("one person's value" in r for r in out.reasons)


@pytest.mark.parametrize("q", [0.0, 1.0, None])
def test_quantiles_at_the_ends_are_refused(q: float | None) -> None:
    table = OutputTable((REGION,), (Measure("p", MeasureKind.QUANTILE, q),), (cell("11", 500, p=3.0),))
    assert protect(table).verdict is Verdict.REFUSE


def test_a_quantile_needs_threshold_people_on_each_side() -> None:
    # Bounds from the runner: the 11th smallest of the people's smallest values is 2.0, the 11th largest of their
    # largest values 8.5 (p90 = 9.0 lies above it: fewer than 11 people strictly above). Released values are
    # rounded from the anchor, and withheld when the rounded value leaves the bounds.
    median = Measure("median", MeasureKind.QUANTILE, 0.5)
    p90 = Measure("p90", MeasureKind.QUANTILE, 0.9)
    bounds = {"median": (2.0, 8.5), "p90": (2.0, 8.5)}
    c = cell("11", 30, median=4.0, p90=9.0)
    c = Cell(c.key, c.people, c.values, c.cell_key, c.anchor_key, quantile_bounds=bounds)
    out = protect(OutputTable((REGION,), (median, p90), (c,), bounds_threshold=11))
    (released,) = out.cells
    assert released.values["p90"] is None
    value = released.values["median"]
    assert value is not None and 2.0 < value < 8.5 and abs(value - 4.0) <= 5 * 6.5 / 30
    assert any(f.code == "quantile-extreme" for f in out.findings)
    # Without bounds (or bounds computed for a lower threshold) no quantile leaves: the rule cannot be checked.
    assert protect(OutputTable((REGION,), (median, p90), (c,), bounds_threshold=5)).cells[0].values["median"] is None
    assert protect(OutputTable((REGION,), (median,), (cell("11", 30, median=4.0),))).cells[0].values["median"] is None


def test_the_cell_cap_is_enforced() -> None:
    cells = tuple(cell(str(i), 20) for i in range(11))
    table = OutputTable((REGION,), (), cells)
    out = protect(table, DisclosurePolicy(max_cells=10))
    assert out.verdict is Verdict.REFUSE
    assert any("has 11 cells, more than the limit of 10" in r for r in out.reasons)
    assert protect(table, DisclosurePolicy(max_cells=11)).verdict is Verdict.RELEASE


def test_cells_without_keys_are_refused() -> None:
    table = OutputTable((REGION,), (), (Cell(("11",), 20),))
    assert protect(table).verdict is Verdict.REFUSE


def test_a_malformed_table_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        protect(OutputTable((REGION,), (), (cell("11", 20), cell("11", 30))))


def test_a_dominated_sum_is_suppressed() -> None:
    amount = Measure("amount", MeasureKind.SUM)
    dominated = Cell(("11",), 40, {"amount": 10_000.0}, 1, 1, {"amount": (9_500.0, 100.0)})
    spread = Cell(("24",), 40, {"amount": 10_000.0}, 2, 2, {"amount": (500.0, 400.0)})
    out = protect(OutputTable((REGION,), (amount,), (dominated, spread)))
    assert out.verdict is Verdict.RELEASE
    assert out.suppressed == {("11",)}
    (_, released) = out.cells
    value = released.values["amount"]
    assert value is not None and abs(value - 10_000.0) <= 500.0  # noise bounded by the largest contribution


def test_a_sum_without_contributions_goes_to_review() -> None:
    amount = Measure("amount", MeasureKind.SUM)
    out = protect(OutputTable((REGION,), (amount,), (cell("11", 40, amount=1e4),)))
    assert out.verdict is Verdict.REVIEW
    assert any(f.code == "no-contributions" for f in out.findings)


def test_project_thresholds_only_tighten() -> None:
    base = DisclosurePolicy()
    assert base.tightened_by(5) is base
    assert base.tightened_by(20).threshold == 20


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=8),
    st.integers(2, 20),
    st.sampled_from([1, 2, 5, 10]),
    st.booleans(),
)
def test_no_released_cell_describes_fewer_than_threshold_people(
    counts: list[int], threshold: int, base: int, total: bool
) -> None:
    policy = DisclosurePolicy(threshold=threshold, rounding_base=base)
    dim = Dimension("region", total="FR" if total else None)
    mean = Measure("mean_amount", MeasureKind.MEAN)
    interior = {(str(i),): n for i, n in enumerate(counts)}
    values = {(str(i),): {"mean_amount": 50.0} for i in range(len(counts))}
    table = with_margins([dim], interior, (mean,), values)
    table = OutputTable(
        table.dimensions,
        table.measures,
        tuple(
            Cell(c.key, c.people, c.values, c.cell_key, c.anchor_key, {"mean_amount": (60.0, 55.0)})
            for c in table.cells
        ),
    )
    out = protect(table, policy)
    people = {c.key: c.people for c in table.cells}
    for released in out.cells:
        if released.suppressed:
            assert released.people is None and set(released.values.values()) == {None}
            continue
        assert people[released.key] == 0 or people[released.key] >= threshold
        assert released.people is not None
        assert released.people == 0 or released.people >= threshold
        assert all(v is None or v >= 0 for v in released.values.values())


def test_the_listed_rows_do_not_depend_on_which_cells_exist() -> None:
    # The label attack: the rows listed must be the same whoever is in the population; empty and small cells are
    # suppressed and look exactly alike.
    dims = (Dimension("sex", codes=("1", "2", "other")), Dimension("atc", codes=("A10", "C10", "N02", "other")))
    one = OutputTable(dims, (), (Cell(("1", "A10"), 1, cell_key=5, anchor_key=5), Cell(("2", "C10"), 40, {}, 9, 3)))
    other = OutputTable(dims, (), (Cell(("2", "N02"), 3, cell_key=7, anchor_key=7),))
    first, second = protect(one), protect(other)
    assert (
        [c.key for c in first.cells]
        == [c.key for c in second.cells]
        == [(s, a) for s in ("1", "2", "other") for a in ("A10", "C10", "N02", "other")]
    )
    shown = {c.key: c for c in first.cells}
    assert shown[("1", "A10")] == ReleasedCell(("1", "A10"), None, {}, True)  # small
    assert shown[("1", "C10")] == ReleasedCell(("1", "C10"), None, {}, True)  # empty: the same
    assert not shown[("2", "C10")].suppressed
    with pytest.raises(ValueError, match="not a declared code"):
        protect(OutputTable(dims, (), (Cell(("1", "B01"), 40, cell_key=1, anchor_key=1),)))
    assert protect(one, DisclosurePolicy(max_cells=11)).verdict is Verdict.REFUSE  # the grid has 12 cells


def test_an_empty_cell_under_a_small_margin_cannot_be_told_from_a_small_one() -> None:
    # One person alone in age group "90": their drug class A10 is small, C10 empty. With margins, the attacker
    # must not be able to prove C10 empty (that would say the person does not take C10).
    interior = {("90", "A10"): 1, ("90", "C10"): 0, ("50", "A10"): 30, ("50", "C10"): 25, ("60", "A10"): 20}
    interior[("60", "C10")] = 35
    table = with_margins([Dimension("age", total="all"), Dimension("atc", total="all")], interior)
    out = protect(table)
    assert out.verdict is Verdict.RELEASE
    assert {("90", "A10"), ("90", "C10")} <= out.suppressed
    bounds = intervals(table, set(out.suppressed), {("90", "A10"), ("90", "C10")})
    low, high = bounds[("90", "C10")]
    assert low == 0 and high >= 11
    low, high = bounds[("90", "A10")]
    assert low == 0 and high - low >= 11
