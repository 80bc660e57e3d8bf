"""The single entry point: an output table in, a releasable table, its reasons and a verdict out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from hygie.disclosure.cellkey import StickyRounding, magnitude_factor, stream
from hygie.disclosure.complementary import HypercubeSuppressor, Protection
from hygie.disclosure.policy import DisclosurePolicy
from hygie.disclosure.primary import Finding, dominated, is_small, quantile_too_close_to_an_end, refusals
from hygie.disclosure.table import Cell, CellKey, Measure, MeasureKind, OutputTable


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
    including refusal, is in the returned verdict and findings."""
    policy = policy or DisclosurePolicy()
    table.validate()
    dims = tuple(d.name for d in table.dimensions)

    refused = refusals(table, policy)
    if any(c.people > 0 and (c.cell_key is None or c.anchor_key is None) for c in table.cells):
        refused.append(Finding("no-cell-key", "cells without cell keys cannot be protected against differencing"))
    if refused:
        return ProtectedOutput(Verdict.REFUSE, dims, table.measures, (), tuple(refused), (), table.release_people)

    findings: list[Finding] = []
    magnitudes = [m for m in table.measures if m.kind.is_magnitude]
    undecidable: set[str] = set()
    sensitive: list[CellKey] = []
    suppressed: set[CellKey] = set()

    for cell in table.cells:
        if is_small(cell, policy):
            sensitive.append(cell.key)
            findings.append(
                Finding("small-cell", f"{_show(dims, cell.key)}: fewer than {policy.threshold} people", cell.key)
            )
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
                        f"{_show(dims, cell.key)}: {m.name} is dominated by its largest contributors "
                        f"(p% rule, p={policy.dominance_p})",
                        cell.key,
                        m.name,
                    )
                )
                break
    for name in sorted(undecidable):
        findings.append(
            Finding(
                "no-contributions",
                f"{name}: largest contributions not supplied, so neither the dominance rule nor scaled noise can be "
                "applied; an output checker must look at it",
                measure=name,
            )
        )

    rounding = StickyRounding(policy.rounding_base)
    released_people: dict[CellKey, int] = {}
    sensitive_set = set(sensitive)
    for cell in table.cells:
        if cell.key in sensitive_set or cell.people == 0:
            continue
        assert cell.anchor_key is not None  # checked above for every non-empty cell
        count = rounding.release(cell.people, cell.anchor_key)
        if count < policy.threshold:
            suppressed.add(cell.key)
            findings.append(
                Finding("perturbed-small", f"{_show(dims, cell.key)}: perturbed count under the threshold", cell.key)
            )
        released_people[cell.key] = count

    before = suppressed | sensitive_set
    suppressed |= sensitive_set
    protections = HypercubeSuppressor(table, policy.required_width, policy.max_hypercubes_per_cell).protect(
        sensitive, suppressed
    )
    seen = set(before)
    for p in protections:
        for partner in sorted(p.partners - seen, key=repr):
            findings.append(
                Finding(
                    "complementary",
                    f"{_show(dims, partner)}: suppressed so that {_show(dims, p.target)} cannot be recomputed "
                    "from the margins",
                    partner,
                )
            )
        seen |= p.partners
        if not p.protected:
            findings.append(
                Finding(
                    "unprotected",
                    f"{_show(dims, p.target)}: no suppression pattern found that leaves an attacker an interval of "
                    f"width {p.required} (best: {p.width:g}); an output checker must decide",
                    p.target,
                )
            )

    cells = tuple(_release(cell, table, policy, suppressed, released_people, findings) for cell in table.cells)
    review_codes = {"no-contributions", "unprotected"}
    verdict = Verdict.REVIEW if any(f.code in review_codes for f in findings) else Verdict.RELEASE
    return ProtectedOutput(
        verdict, dims, table.measures, cells, tuple(findings), tuple(protections), table.release_people
    )


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
    values: dict[str, float | None] = {}
    for m in table.measures:
        value = cell.values.get(m.name)
        if value is None or cell.people == 0:
            values[m.name] = value
        elif m.kind is MeasureKind.QUANTILE:
            if quantile_too_close_to_an_end(cell, m, policy):
                values[m.name] = None
                findings.append(
                    Finding(
                        "quantile-extreme",
                        f"{_show(table_dims(table), cell.key)}: {m.name} withheld, fewer than {policy.threshold} "
                        "people on one side of it",
                        cell.key,
                        m.name,
                    )
                )
            else:
                values[m.name] = value
        else:
            values[m.name] = _perturb_magnitude(cell, m, value, policy)
    return ReleasedCell(cell.key, released_people.get(cell.key, 0), values, False)


def _perturb_magnitude(cell: Cell, measure: Measure, value: float, policy: DisclosurePolicy) -> float:
    """Noise of at most magnitude_noise times the largest single contribution, the same for the same people.
    Without contributions the value is left as is (the output then goes to review)."""
    top = cell.top_contributions.get(measure.name)
    if not top or cell.cell_key is None:
        return value
    factor = magnitude_factor(stream(cell.cell_key, measure.name))
    noise = policy.magnitude_noise * abs(top[0]) * factor
    if measure.kind is MeasureKind.MEAN:
        noise /= cell.people
    out = value + noise
    if value >= 0 > out:
        out = 0.0  # a non-negative quantity is never released negative
    if measure.kind is MeasureKind.COUNT:
        out = float(round(out))
    return out


def table_dims(table: OutputTable) -> tuple[str, ...]:
    return tuple(d.name for d in table.dimensions)


def _show(dims: tuple[str, ...], key: CellKey) -> str:
    return "(" + ", ".join(f"{d}={v}" for d, v in zip(dims, key, strict=True)) + ")"
