# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The single entry point: an output table in, a releasable table, its reasons and a verdict out."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from hygie.disclosure.cellkey import AnchoredRounding, StickyRounding
from hygie.disclosure.complementary import HypercubeSuppressor, Protection
from hygie.disclosure.policy import DisclosurePolicy
from hygie.disclosure.primary import Finding, dominated, is_small, quantile_has_people_on_each_side, refusals
from hygie.disclosure.table import Cell, CellKey, Dimension, DimValue, Measure, MeasureKind, OutputTable, listed_codes
from hygie.i18n import N_


class Verdict(StrEnum):
    RELEASE = "release"
    """Every automatic check passed: the output may leave without a human."""
    REVIEW = "review"
    """The checks could not clear something: two output checkers must approve."""
    REFUSE = "refuse"
    """Nothing may leave."""


@dataclass(frozen=True)
class ReleasedCell:
    key: CellKey
    people: int | None
    """Perturbed (and rounded) count of people; None when the cell is suppressed."""
    values: Mapping[str, float | None]
    """Measure name -> released value; None when suppressed."""
    suppressed: bool
    """The whole cell is withheld. Primary and complementary suppressions look the same on purpose."""


@dataclass(frozen=True)
class ProtectedOutput:
    verdict: Verdict
    dimensions: tuple[str, ...]
    measures: tuple[Measure, ...]
    cells: tuple[ReleasedCell, ...]
    """Empty when refused."""
    findings: tuple[Finding, ...]
    """Why: for output checkers and the audit log, not for the requester."""
    protections: tuple[Protection, ...]
    """For each cell suppressed as sensitive, the interval an attacker provably cannot narrow."""
    include_people: bool = True

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.text for f in self.findings)

    @property
    def suppressed(self) -> frozenset[CellKey]:
        return frozenset(c.key for c in self.cells if c.suppressed)

    def rows(self) -> list[dict[str, object]]:
        """The output as records, suppressed values as None, for CSV or JSON once released."""
        out: list[dict[str, object]] = []
        for cell in self.cells:
            row: dict[str, object] = dict(zip(self.dimensions, cell.key, strict=True))
            if self.include_people:
                row["people"] = cell.people
            row.update(cell.values)
            row["suppressed"] = cell.suppressed
            out.append(row)
        return out


def protect(table: OutputTable, policy: DisclosurePolicy | None = None) -> ProtectedOutput:
    """Applies every check to ``table``. Raises ValueError only on a malformed table; every disclosure decision,
    including refusal, is in the returned verdict and findings.

    The released cells are the full grid of the listed codes (``listed_codes``), in a fixed order, whatever cells
    the table holds: empty and small cells are both suppressed and marked alike."""
    policy = policy or DisclosurePolicy()
    table.validate()
    dims = table_dims(table)
    plan = _plan(table, policy)
    if isinstance(plan, list):
        return ProtectedOutput(Verdict.REFUSE, dims, table.measures, (), tuple(plan), (), table.release_people)
    grid, suppressed, protections, findings = plan

    rounding = StickyRounding(policy.rounding_base)
    released_people: dict[CellKey, int] = {}
    for cell in grid.cells:
        if cell.key in suppressed:
            continue
        assert cell.anchor_key is not None  # checked by _plan for every non-empty cell
        count = rounding.release(cell.people, cell.anchor_key)
        if count < policy.threshold:
            why = N_("{cell}: rounded count under the threshold", cell=_show(dims, cell.key))
            findings.append(Finding("perturbed-small", why, cell.key))
        released_people[cell.key] = count
    suppressed |= {k for k, n in released_people.items() if n < policy.threshold}

    cells = tuple(_release(cell, grid, policy, suppressed, released_people, findings) for cell in grid.cells)
    review_codes = {"no-contributions", "unprotected"}
    verdict = Verdict.REVIEW if any(f.code in review_codes for f in findings) else Verdict.RELEASE
    return ProtectedOutput(
        verdict, dims, table.measures, cells, tuple(findings), tuple(protections), table.release_people
    )


def full_grid(table: OutputTable) -> OutputTable:
    """The table over the full grid of its listed codes, missing cells empty, in the grid's order."""
    by_key = {c.key: c for c in table.cells}
    cells = tuple(by_key.get(key, Cell(key, 0)) for key in itertools.product(*listed_codes(table)))
    return OutputTable(
        table.dimensions,
        table.measures,
        cells,
        table.release_people,
        table.people_additive,
        table.bounds_threshold,
    )


def _plan(
    table: OutputTable, policy: DisclosurePolicy
) -> list[Finding] | tuple[OutputTable, set[CellKey], list[Protection], list[Finding]]:
    """The part of ``protect`` that does not depend on the project's secret: refusals (a list of findings), or the
    full grid, the suppression pattern (primary, empty, complementary) and the findings so far."""
    dims = table_dims(table)
    refused = refusals(table, policy)
    if any(c.people > 0 and (c.cell_key is None or c.anchor_key is None) for c in table.cells):
        refused.append(Finding("no-cell-key", N_("cells without cell keys cannot be protected against differencing")))
    if refused:
        return refused
    grid = full_grid(table)

    findings: list[Finding] = []
    magnitudes = [m for m in grid.measures if m.kind.is_magnitude]
    undecidable: set[str] = set()
    sensitive: list[CellKey] = []
    people = {c.key: c.people for c in grid.cells}
    empty = {c.key for c in grid.cells if c.people == 0}

    for cell in grid.cells:
        if cell.people == 0:
            if _under_a_small_margin(cell.key, grid.dimensions, people, policy):
                sensitive.append(cell.key)
                why = N_(
                    "{cell}: empty, under a margin of fewer than {threshold} people",
                    cell=_show(dims, cell.key),
                    threshold=policy.threshold,
                )
                findings.append(Finding("empty-cell", why, cell.key))
            continue
        if is_small(cell, policy):
            sensitive.append(cell.key)
            why = N_("{cell}: fewer than {threshold} people", cell=_show(dims, cell.key), threshold=policy.threshold)
            findings.append(Finding("small-cell", why, cell.key))
            continue
        for m in magnitudes:
            decision = dominated(cell, m, policy)
            if decision is None:
                undecidable.add(m.name)
            elif decision:
                sensitive.append(cell.key)
                findings.append(
                    Finding(
                        "dominance",
                        N_(
                            "{cell}: {measure} is dominated by its largest contributors (p% rule, p={p})",
                            cell=_show(dims, cell.key),
                            measure=m.name,
                            p=policy.dominance_p,
                        ),
                        cell.key,
                        m.name,
                    )
                )
                break
    for name in sorted(undecidable):
        findings.append(
            Finding(
                "no-contributions",
                N_(
                    "{measure}: largest contributions not supplied, so the dominance rule cannot be applied; an "
                    "output checker must look at it",
                    measure=name,
                ),
                measure=name,
            )
        )

    suppressed = set(sensitive) | empty
    before = set(suppressed)
    protections = HypercubeSuppressor(grid, policy.required_width, policy.max_hypercubes_per_cell).protect(
        sensitive, suppressed
    )
    seen = set(before)
    for p in protections:
        for partner in sorted(p.partners - seen, key=repr):
            findings.append(
                Finding(
                    "complementary",
                    N_(
                        "{cell}: suppressed so that {target} cannot be recomputed from the margins",
                        cell=_show(dims, partner),
                        target=_show(dims, p.target),
                    ),
                    partner,
                )
            )
        seen |= p.partners
        if not p.protected:
            findings.append(
                Finding(
                    "unprotected",
                    N_(
                        "{cell}: no suppression pattern found that leaves an attacker an interval of width {width} "
                        "(best: {best}); an output checker must decide",
                        cell=_show(dims, p.target),
                        width=p.required,
                        best=format(p.width, "g"),  # text: JSON (PostgreSQL) has no infinity
                    ),
                    p.target,
                )
            )
    return grid, suppressed, protections, findings


def _under_a_small_margin(
    key: CellKey, dimensions: Iterable[Dimension], people: Mapping[CellKey, int], policy: DisclosurePolicy
) -> bool:
    """An empty cell matters when a margin above it describes fewer than ``threshold`` people: then 'empty' would
    tell what that small group does not have. Under large margins only it tells nothing about fewer than
    ``threshold`` people; under an empty margin it tells nothing the margin does not (nobody has that code)."""
    paths: list[list[DimValue]] = []
    for code, dim in zip(key, dimensions, strict=True):
        path: list[DimValue] = [code]
        while (parent := dim.parent(path[-1])) is not None and parent not in path:
            path.append(parent)
        paths.append(path)
    margins = [people.get(m, 0) for m in itertools.product(*paths) if m != key]
    return 0 not in margins and any(n < policy.threshold for n in margins)


def _release(
    cell: Cell,
    table: OutputTable,
    policy: DisclosurePolicy,
    suppressed: set[CellKey],
    released_people: Mapping[CellKey, int],
    findings: list[Finding],
) -> ReleasedCell:
    if cell.key in suppressed:
        return ReleasedCell(cell.key, None, dict.fromkeys((m.name for m in table.measures), None), True)
    assert cell.anchor_key is not None and cell.people > 0  # empty cells are always suppressed
    values: dict[str, float | None] = {}
    for m in table.measures:
        value = cell.values.get(m.name)
        if value is None:
            values[m.name] = None
            continue
        out: float | None = release_magnitude(cell, m, value, policy)
        if (
            out is not None
            and m.kind is MeasureKind.QUANTILE
            and not quantile_has_people_on_each_side(cell, m, out, table, policy)
        ):
            out = None
            findings.append(
                Finding(
                    "quantile-extreme",
                    N_(
                        "{cell}: {measure} withheld, fewer than {threshold} distinct people strictly on one side of it",
                        cell=_show(table_dims(table), cell.key),
                        measure=m.name,
                        threshold=policy.threshold,
                    ),
                    cell.key,
                    m.name,
                )
            )
        values[m.name] = out
    return ReleasedCell(cell.key, released_people.get(cell.key, 0), values, False)


def magnitude_scale(cell: Cell, measure: Measure) -> float:
    """A measure's typical per-person contribution in a cell, which sets its rounding step: ``|value| / people``
    for every magnitude (event counts, sums, means, quantiles), so the relative error is about base / people."""
    if cell.people <= 0:
        return 0.0
    value = cell.values.get(measure.name)
    return 0.0 if value is None else abs(value) / cell.people


def magnitude_rounding(policy: DisclosurePolicy) -> AnchoredRounding | None:
    base = policy.rounding_base * policy.magnitude_noise
    return AnchoredRounding(base) if base > 0 else None


def release_magnitude(cell: Cell, measure: Measure, value: float, policy: DisclosurePolicy) -> float:
    """Randomised rounding to ``rounding_base * magnitude_noise`` typical per-person contributions, drawn from the
    cell's anchor like the people count (see ``AnchoredRounding``). A non-negative value stays non-negative."""
    rounding = magnitude_rounding(policy)
    if rounding is None or cell.anchor_key is None:
        return value
    out = rounding.release(value, magnitude_scale(cell, measure), cell.anchor_key, measure.name)
    if measure.kind is MeasureKind.COUNT:
        out = float(round(out))
    return out


@dataclass(frozen=True)
class DifferencingBound:
    """What one person's presence can change in a whole released table, over the draw of the project's secret.

    For two tables computed over populations that differ by one person: ``cells[key]`` bounds the probability that
    the release of that cell moves (zero for cells the person is not in: they are computed over the same people and
    release the same numbers); ``pattern_changed`` says the suppression pattern (which depends on the truth only)
    differs, in which case the releases differ for sure."""

    cells: Mapping[CellKey, float]
    pattern_changed: bool

    @property
    def expected_cells(self) -> float:
        """Bound on the expected number of cells whose release moves: what an attacker who reads 'moved' as 'the
        person is in this cell' learns on average (the person's cells are all they can find, never a wrong one)."""
        return sum(self.cells.values()) + (1.0 if self.pattern_changed else 0.0)

    @property
    def table(self) -> float:
        """Bound on the probability that the two released tables differ at all (a union bound over the cells)."""
        return 1.0 if self.pattern_changed else min(1.0, sum(self.cells.values()))


def differencing_bound(
    before: OutputTable, after: OutputTable, policy: DisclosurePolicy | None = None
) -> DifferencingBound:
    """The stated bound for the pair (``before``, ``after``) of true tables whose populations differ by one person
    (either way round). Per cell the person is in, the release moves only if

    - the person holds the cell's smallest record key (the anchor, re-drawing every rounding): 1/(n+1), n the
      people of the cell without them;
    - the people count crosses a multiple of ``rounding_base``: 1/base;
    - a magnitude crosses its step or its step moves (``AnchoredRounding.change_bound``);
    - a quantile's bounds move (the person is among the ``threshold`` extreme people of the cell): counted as 1;

    and the union over the cells of the table bounds the whole table. Everything here is computed from the truths;
    the probability is over the secret."""
    policy = policy or DisclosurePolicy()
    plans = [_plan(t, policy) for t in (before, after)]
    plan_a, plan_b = plans
    if isinstance(plan_a, list) or isinstance(plan_b, list):
        return DifferencingBound({}, isinstance(plan_a, list) != isinstance(plan_b, list))
    grid_a, pattern_a, _, _ = plan_a
    grid_b, pattern_b, _, _ = plan_b
    if pattern_a != pattern_b or [c.key for c in grid_a.cells] != [c.key for c in grid_b.cells]:
        return DifferencingBound({}, True)
    rounding = magnitude_rounding(policy)
    bounds: dict[CellKey, float] = {}
    for a, b in zip(grid_a.cells, grid_b.cells, strict=True):
        if a.key in pattern_a or _same_truth(a, b):
            continue
        small, large = (a, b) if a.people <= b.people else (b, a)
        bound = 1 / (small.people + 1) + (1 / policy.rounding_base if a.people != b.people else 0.0)
        for m in grid_a.measures:
            x, y = small.values.get(m.name), large.values.get(m.name)
            if x is None or y is None:
                bound += 0.0 if x is None and y is None else 1.0
            elif m.kind is MeasureKind.QUANTILE and small.quantile_bounds.get(m.name) != large.quantile_bounds.get(
                m.name
            ):
                bound += 1.0
            elif rounding is None:
                bound += 0.0 if x == y else 1.0
            else:
                bound += rounding.change_bound(x, magnitude_scale(small, m), y, magnitude_scale(large, m))
        bounds[a.key] = min(1.0, bound)
    return DifferencingBound(bounds, False)


def _same_truth(a: Cell, b: Cell) -> bool:
    return (a.people, dict(a.values), dict(a.quantile_bounds), dict(a.top_contributions)) == (
        b.people,
        dict(b.values),
        dict(b.quantile_bounds),
        dict(b.top_contributions),
    )


def table_dims(table: OutputTable) -> tuple[str, ...]:
    return tuple(d.name for d in table.dimensions)


def _show(dims: tuple[str, ...], key: CellKey) -> str:
    return "(" + ", ".join(f"{d}={v}" for d, v in zip(dims, key, strict=True)) + ")"
