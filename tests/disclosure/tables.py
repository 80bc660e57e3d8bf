# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Builders for test tables: interior counts in, a table with every margin the dimensions declare out."""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Mapping, Sequence

from hygie.disclosure import Cell, CellKey, Dimension, DimValue, Measure, OutputTable


def _path(dim: Dimension, code: DimValue) -> list[DimValue]:
    out = [code]
    while (p := dim.parent(out[-1])) is not None:
        out.append(p)
    return out


def key_of(key: CellKey, salt: str) -> int:
    return zlib.crc32(f"{salt}|{key!r}".encode())


def with_margins(
    dims: Sequence[Dimension],
    interior: Mapping[CellKey, int],
    measures: tuple[Measure, ...] = (),
    values: Mapping[CellKey, Mapping[str, float]] | None = None,
) -> OutputTable:
    """Every combination of codes and their ancestors, people summed from the interior (an additive table)."""
    nodes = []
    for d, dim in enumerate(dims):
        found: list[DimValue] = []
        for key in interior:
            for n in _path(dim, key[d]):
                if n not in found:
                    found.append(n)
        nodes.append(found)
    cells = []
    for key in itertools.product(*nodes):
        people = sum(v for ik, v in interior.items() if all(key[d] in _path(dim, ik[d]) for d, dim in enumerate(dims)))
        cells.append(
            Cell(
                key,
                people,
                dict((values or {}).get(key, {})),
                cell_key=key_of(key, "sum"),
                anchor_key=key_of(key, "min"),
            )
        )
    return OutputTable(tuple(dims), measures, tuple(cells))
