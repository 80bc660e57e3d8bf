# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""What the analysis runner hands over: an aggregate table whose people counts the platform computed itself.

A table is a set of cells over a product of dimensions. A dimension may publish margins: an overall total code
(``Dimension.total``) and subtotals (``Dimension.parents``, e.g. département -> région). Margins are ordinary cells
whose key carries the total or subtotal code, which is how an attacker sees them too: as linear relations between
published numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

DimValue = str | int
CellKey = tuple[DimValue, ...]


class MeasureKind(StrEnum):
    COUNT = "count"
    """Additive count of events (care sheets, acts...). One person may contribute many: treated as a magnitude."""
    SUM = "sum"
    MEAN = "mean"
    QUANTILE = "quantile"
    MIN = "min"
    MAX = "max"

    @property
    def is_magnitude(self) -> bool:
        """Built from per-person contributions that add up: dominance checks and scaled noise apply."""
        return self in (MeasureKind.COUNT, MeasureKind.SUM, MeasureKind.MEAN)


@dataclass(frozen=True)
class Measure:
    name: str
    kind: MeasureKind
    quantile: float | None = None
    """For QUANTILE: the probability, e.g. 0.5 for the median."""


@dataclass(frozen=True)
class Dimension:
    name: str
    total: DimValue | None = None
    """Code of the overall margin along this dimension; None when the table publishes none."""
    parents: Mapping[DimValue, DimValue] = field(default_factory=dict)
    """Subtotal hierarchy: code -> code of the subtotal it adds into. Codes without an entry add into ``total``."""
    codes: tuple[DimValue, ...] | None = None
    """The codes this dimension lists (without its total and subtotal codes). The released table is the full grid
    of every dimension's codes, whatever the cells hold, so which rows are listed says nothing about small counts.
    The runner must take them from something that does not depend on small counts (reference lists, or codes held
    by at least ``threshold`` people of the whole project view, the rest folded into an 'other' code). None: the
    codes seen in the cells, which is only safe for tables built by hand."""

    def parent(self, code: DimValue) -> DimValue | None:
        if code in self.parents:
            return self.parents[code]
        if self.total is not None and code != self.total:
            return self.total
        return None

    @property
    def has_margins(self) -> bool:
        return self.total is not None or bool(self.parents)


@dataclass(frozen=True)
class Cell:
    key: CellKey
    """One code per dimension, in the table's dimension order."""
    people: int
    """Distinct people behind the cell, computed by the platform (never taken from the user's query)."""
    values: Mapping[str, float | None] = field(default_factory=dict)
    """Measure name -> value."""
    cell_key: int | None = None
    """Sum modulo 2**32 of the record keys of the cell's people (see ``cellkey``): drives magnitude noise."""
    anchor_key: int | None = None
    """Smallest record key among the cell's people: drives the rounding of the people count."""
    top_contributions: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """Magnitude measure name -> the largest per-person contributions to it, largest first (two are enough), in the
    measure's own units: they add up to the value (for a mean, a person's amounts divided by the cell's lines)."""
    quantile_bounds: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """Quantile measure name -> (low, high): ``low`` is the ``threshold``-th smallest of the people's smallest values
    in the cell, ``high`` the ``threshold``-th largest of their largest values (None when the cell has fewer people).
    A value r has at least ``threshold`` distinct people strictly below it exactly when r > low, and strictly above
    it exactly when r < high, however many lines each person has. See ``OutputTable.bounds_threshold``."""


@dataclass(frozen=True)
class OutputTable:
    dimensions: tuple[Dimension, ...]
    measures: tuple[Measure, ...]
    cells: tuple[Cell, ...]
    release_people: bool = True
    """Whether the people count itself is a column of the output (it is always used for the checks)."""
    people_additive: bool = True
    """True when every person falls in exactly one code of each dimension, so margins are sums of their cells.
    False when a person can appear under several codes (months, drug classes): margins are then smaller than the
    sums, and the suppression also respects 'a cell never exceeds its margin'."""
    bounds_threshold: int | None = None
    """The threshold the runner computed ``Cell.quantile_bounds`` for. Quantiles are withheld when it is missing or
    below the policy's threshold."""

    def __iter__(self) -> Iterator[Cell]:
        return iter(self.cells)

    def validate(self) -> None:
        """Raises ValueError on a malformed table (a platform bug, not a disclosure decision)."""
        names = [m.name for m in self.measures]
        if len(set(names)) != len(names):
            raise ValueError("measure names must be unique")
        dim_names = [d.name for d in self.dimensions]
        if len(set(dim_names)) != len(dim_names):
            raise ValueError("dimension names must be unique")
        seen: set[CellKey] = set()
        for cell in self.cells:
            if len(cell.key) != len(self.dimensions):
                raise ValueError(f"cell {cell.key!r} does not have one code per dimension")
            if cell.key in seen:
                raise ValueError(f"cell {cell.key!r} appears twice")
            seen.add(cell.key)
            if cell.people < 0:
                raise ValueError(f"cell {cell.key!r} has a negative people count")
            unknown = set(cell.values) - set(names)
            if unknown:
                raise ValueError(f"cell {cell.key!r} has values for unknown measures {sorted(unknown)}")
            for i, dim in enumerate(self.dimensions):
                if dim.codes is not None and cell.key[i] not in dim.codes and cell.key[i] not in margin_codes(dim):
                    raise ValueError(f"cell {cell.key!r}: {cell.key[i]!r} is not a declared code of {dim.name}")
            for k in (cell.cell_key, cell.anchor_key):
                if k is not None and not 0 <= k < 2**32:
                    raise ValueError(f"cell {cell.key!r} has a key outside [0, 2**32)")


def margin_codes(dim: Dimension) -> set[DimValue]:
    """The total and subtotal codes of a dimension."""
    out: set[DimValue] = set(dim.parents.values())
    if dim.total is not None:
        out.add(dim.total)
    return out


def _order(code: DimValue) -> tuple[int, int, str]:
    return (0, code, "") if isinstance(code, int) else (1, 0, code)


def listed_codes(table: OutputTable) -> list[list[DimValue]]:
    """Per dimension, the codes of the released grid: its declared codes (or, for a table built by hand, the codes
    seen in its cells), then its subtotal and total codes."""
    out: list[list[DimValue]] = []
    for i, dim in enumerate(table.dimensions):
        margins = margin_codes(dim)
        if dim.codes is not None:
            codes = [c for c in dim.codes if c not in margins]
        else:
            codes = sorted({c.key[i] for c in table.cells} - margins, key=_order)
        out.append([*codes, *sorted(margins, key=_order)])
    return out


def grid_size(table: OutputTable) -> int:
    size = 1
    for codes in listed_codes(table):
        size *= len(codes)
    return size
