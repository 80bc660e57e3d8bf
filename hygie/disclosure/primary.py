# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Rules that look at one cell or one output at a time: refusals, small cells, dominance, quantiles."""

from __future__ import annotations

from dataclasses import dataclass

from hygie.disclosure.policy import DisclosurePolicy
from hygie.disclosure.table import Cell, CellKey, Measure, MeasureKind, OutputTable, grid_size
from hygie.i18n import N_, term


@dataclass(frozen=True)
class Finding:
    """One reason, addressed to the output checkers (never to the requester: telling which cells were small and
    which were only partners would hand an attacker extra constraints)."""

    code: str
    text: str
    """A catalogued message (``hygie.i18n.N_``): English here, said in French on the airlock's pages."""
    cell: CellKey | None = None
    measure: str | None = None


def refusals(table: OutputTable, policy: DisclosurePolicy) -> list[Finding]:
    """Reasons to release nothing at all."""
    out: list[Finding] = []
    for m in table.measures:
        if m.kind in (MeasureKind.MIN, MeasureKind.MAX):
            kind = term("statistic", "min") if m.kind is MeasureKind.MIN else term("statistic", "max")
            why = N_("{measure}: a {kind} is one person's value", measure=m.name, kind=kind)
            out.append(Finding("single-person-statistic", why, measure=m.name))
        elif m.kind is MeasureKind.QUANTILE and (m.quantile is None or not 0 < m.quantile < 1):
            out.append(
                Finding(
                    "single-person-statistic",
                    N_(
                        "{measure}: quantile {quantile} is not strictly between 0 and 1 (0 and 1 are min and max)",
                        measure=m.name,
                        quantile=repr(m.quantile),
                    ),
                    measure=m.name,
                )
            )
    size = grid_size(table)
    if size > policy.max_cells:
        out.append(
            Finding(
                "too-many-cells",
                N_(
                    "the full grid of the listed codes has {cells} cells, more than the limit of {limit} per output",
                    cells=size,
                    limit=policy.max_cells,
                ),
            )
        )
    return out


def is_small(cell: Cell, policy: DisclosurePolicy) -> bool:
    return 0 < cell.people < policy.threshold


def dominated(cell: Cell, measure: Measure, policy: DisclosurePolicy) -> bool | None:
    """p% rule on a magnitude: True when the others' contributions are too small to hide the largest one from the
    second-largest contributor. None when the largest contributions were not given (cannot decide)."""
    if policy.dominance_p is None:
        return False
    top = cell.top_contributions.get(measure.name)
    value = cell.values.get(measure.name)
    if value is None:
        return False
    if top is None or not top:
        return None
    # Contributions are per person and the attacker's knowledge is about sizes, so signs are set aside:
    # a regularisation (negative amount) hides nothing. Contributions are in the measure's own units (for a mean,
    # each person's share of it), so they add up to the value.
    total = abs(value)
    largest = abs(top[0])
    second = abs(top[1]) if len(top) > 1 else 0.0
    return total - largest - second < policy.dominance_p / 100 * largest


def quantile_has_people_on_each_side(
    cell: Cell, measure: Measure, value: float, table: OutputTable, policy: DisclosurePolicy
) -> bool:
    """A quantile is one person's value, and it is taken over lines, not people: it may leave only when at least
    ``threshold`` distinct people have a value strictly below the released value and as many strictly above it.
    Decided exactly from the bounds the runner computed (``Cell.quantile_bounds``); without them, never."""
    if table.bounds_threshold is None or table.bounds_threshold < policy.threshold:
        return False
    low, high = cell.quantile_bounds.get(measure.name, (None, None))
    return low is not None and high is not None and low < value < high
