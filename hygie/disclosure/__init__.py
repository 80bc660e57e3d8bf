"""Statistical disclosure control: what may leave the platform from an aggregate output.

``protect(table, policy)`` applies, in order: refusals (min, max, extreme quantiles, too many cells), primary
suppression (small cells, dominated magnitudes), keyed rounding and noise (the same people always get the same
released numbers), complementary suppression by hypercubes (no suppressed cell can be pinned from the margins),
and returns a verdict. See docs/disclosure.md.
"""

from hygie.disclosure.cellkey import StickyRounding, anchor_key, cell_key, record_key, record_keys
from hygie.disclosure.complementary import Protection
from hygie.disclosure.policy import DisclosurePolicy
from hygie.disclosure.primary import Finding
from hygie.disclosure.protect import ProtectedOutput, ReleasedCell, Verdict, protect
from hygie.disclosure.table import Cell, CellKey, Dimension, DimValue, Measure, MeasureKind, OutputTable

__all__ = [
    "Cell",
    "CellKey",
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
    "protect",
    "record_key",
    "record_keys",
]
