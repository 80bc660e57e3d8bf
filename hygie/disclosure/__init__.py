# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Statistical disclosure control: what may leave the platform from an aggregate output.

``protect(table, policy)`` releases the full grid of the listed codes and applies, in order: refusals (min, max,
extreme quantiles, too many cells), primary suppression (small and empty cells, dominated magnitudes),
complementary suppression by hypercubes (no suppressed cell can be pinned from the margins), anchored rounding of
every released number (the same people always get the same numbers; ``differencing_bound`` states what one person
can change in a whole table), quantiles only with ``threshold`` distinct people strictly on each side, and returns
a verdict. See docs/disclosure.md.
"""

from hygie.disclosure.cellkey import AnchoredRounding, StickyRounding, anchor_key, cell_key, record_key, record_keys
from hygie.disclosure.complementary import Protection
from hygie.disclosure.policy import DisclosurePolicy
from hygie.disclosure.primary import Finding
from hygie.disclosure.protect import (
    DifferencingBound,
    ProtectedOutput,
    ReleasedCell,
    Verdict,
    differencing_bound,
    protect,
)
from hygie.disclosure.table import Cell, CellKey, Dimension, DimValue, Measure, MeasureKind, OutputTable

__all__ = [
    "AnchoredRounding",
    "Cell",
    "CellKey",
    "DifferencingBound",
    "DimValue",
    "Dimension",
    "DisclosurePolicy",
    "Finding",
    "Measure",
    "MeasureKind",
    "OutputTable",
    "ProtectedOutput",
    "Protection",
    "ReleasedCell",
    "StickyRounding",
    "Verdict",
    "anchor_key",
    "cell_key",
    "differencing_bound",
    "protect",
    "record_key",
    "record_keys",
]
