# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The numbers that decide what may leave the platform, in one frozen place.

The platform reads them from ``hygie.config.Settings`` and a project may only tighten them (a higher threshold,
a larger protection width); :meth:`DisclosurePolicy.tightened_by` enforces that direction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hygie.i18n import N_


@dataclass(frozen=True)
class DisclosurePolicy:
    threshold: int = 11
    """Fewest people a released cell may describe (French custodians CASD/ATIH: 11)."""

    max_cells: int = 10_000
    """Most cells in one output: beyond this an output is a microdata extract in disguise, and refused."""

    protection_width: int | None = None
    """Narrowest interval an attacker may be left with for a cell suppressed because it is small, when solving the
    released table and its margins. None means the threshold: the attacker cannot tell a 1 from a 'threshold'."""

    magnitude_noise: float = 1.0
    """Event counts, sums, means and quantiles are randomly rounded to a step of ``rounding_base * magnitude_noise``
    typical per-person contributions (``AnchoredRounding``), drawn from the cell's anchor like the people count, so
    one more person moves a release with probability about ``1 / (rounding_base * magnitude_noise)`` per measure.
    0 releases them unrounded (no differencing bound for magnitudes)."""

    dominance_p: float | None = 10.0
    """p% rule for magnitudes: a cell is sensitive when the contributions other than the two largest add up to less
    than p% of the largest (the second-largest contributor would estimate the largest within p%). None: off."""

    rounding_base: int = 5
    """People counts are released as multiples of this, randomly rounded with an offset fixed by the cell's people
    (OpenSAFELY rounds to 5). One person changes a released count with probability at most
    1/rounding_base + 1/(people+1); with magnitudes, a whole table's bound is ``protect.differencing_bound``."""

    max_hypercubes_per_cell: int = 20_000
    """Search budget of the complementary suppression per sensitive cell (candidate hypercubes examined)."""

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(N_("threshold must be at least 1"))
        if self.max_cells < 1:
            raise ValueError(N_("max_cells must be at least 1"))
        if self.rounding_base < 1:
            raise ValueError(N_("rounding_base must be at least 1"))
        if self.magnitude_noise < 0:
            raise ValueError(N_("magnitude_noise must not be negative"))
        if self.protection_width is not None and self.protection_width < 1:
            raise ValueError(N_("protection_width must be at least 1"))

    @property
    def required_width(self) -> int:
        return self.threshold if self.protection_width is None else self.protection_width

    def tightened_by(self, project_threshold: int | None) -> DisclosurePolicy:
        """The policy for a project: its own threshold applies only when stricter than the platform's."""
        if project_threshold is None or project_threshold <= self.threshold:
            return self
        return replace(self, threshold=project_threshold)
