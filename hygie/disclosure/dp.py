# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Differential-privacy releases: the Gaussian mechanism of OpenDP over a grid of cells, under zero-concentrated DP.

The privacy definition is stated once, in the settings (``hygie.config``): zCDP, costs and budgets in rho. A
released statistic is one measure over a whole grid of cells (a histogram), computed from per-person contributions
that were first reduced per person and cell, then clamped to named bounds (:class:`Bounds`): so adding or removing
one person changes the vector of cells by at most the bound, in one cell when every person has one code per
dimension (the L2 sensitivity). OpenDP's ``make_gaussian`` measurement, built for that sensitivity and the
statistic's rho, adds the noise (its own secure sampler; nothing here draws a random number). Everything after the
noise (margins as sums of noisy cells, a mean as a noisy sum over a noisy count, intervals) is post-processing and
costs nothing more.

Each released value carries its noise scale (the standard deviation of the noise) and an interval at the level of
``dp_confidence``: value +- z * scale, which holds the exact (clamped) statistic with that probability over the
noise. The interval says nothing about sampling error nor about what the clamping cut off.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist
from typing import Any

from hygie.i18n import N_

DEFINITION = "zCDP"
"""The privacy definition of every DP release: zero-concentrated differential privacy, cost and budget in rho."""


class DPError(ValueError):
    """A DP release that cannot be made as asked (a bad rho, bounds or sensitivity)."""


@dataclass(frozen=True)
class Bounds:
    """How much one person may contribute to one cell (settings ``dp_events_per_person``, ``dp_amount_lower`` and
    ``dp_amount_upper``)."""

    events: int
    """Events (care lines) of one person counted in a cell at most."""
    amount_lower: float
    amount_upper: float
    """One person's total amount in a cell is clamped to [amount_lower, amount_upper]."""

    def __post_init__(self) -> None:
        if self.events < 1:
            raise DPError(N_("the events bound must be at least 1"))
        if not (math.isfinite(self.amount_lower) and math.isfinite(self.amount_upper)):
            raise DPError(N_("amount bounds must be finite"))
        if self.amount_lower >= self.amount_upper:
            raise DPError(N_("the amount's lower bound must be below its upper bound"))

    @property
    def amount_sensitivity(self) -> float:
        """The most one person's clamped amount moves a cell's sum: max(|lower|, |upper|)."""
        return max(abs(self.amount_lower), abs(self.amount_upper))


@dataclass(frozen=True)
class Noisy:
    """One released value with its noise."""

    value: float
    scale: float
    """Standard deviation of the noise added (for a mean, its delta-method approximation)."""
    low: float | None
    high: float | None
    """The interval at the release's confidence level; None when unbounded (a mean over a count that may be 0)."""

    def as_dict(self, name: str, digits: int = 2) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else round(x, digits)

        # A mean over a count whose noisy value is 0 or less has no estimate: shown empty, never as 0 with an
        # infinite noise (which JSON cannot carry either).
        value = self.value if math.isfinite(self.scale) else None
        return {name: r(value), f"{name}_noise_sd": r(self.scale), f"{name}_ci_low": r(self.low),
                f"{name}_ci_high": r(self.high)}  # fmt: skip


def _opendp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")  # make_gaussian is in OpenDP's contrib set (vetted proofs, not yet core)
    return dp


def check_rho(rho: float) -> float:
    if isinstance(rho, bool) or not isinstance(rho, int | float) or not math.isfinite(rho) or rho <= 0:
        raise DPError(N_("rho must be a positive, finite number"))
    return float(rho)


@cache
def gaussian(sensitivity: float, rho: float) -> tuple[Any, float]:
    """OpenDP's Gaussian measurement over float vectors (L2 distance) whose privacy loss for an input change of
    ``sensitivity`` is at most ``rho`` (zCDP). The scale is sensitivity / sqrt(2 rho), checked against OpenDP's own
    privacy map, and found by OpenDP's binary search if float rounding puts it over. Returns (measurement, scale)."""
    rho = check_rho(rho)
    if not math.isfinite(sensitivity) or sensitivity <= 0:
        raise DPError(N_("the sensitivity must be a positive, finite number"))
    dp = _opendp()
    domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
    metric = dp.l2_distance(T=float)
    scale = sensitivity / math.sqrt(2.0 * rho)
    measurement = dp.m.make_gaussian(domain, metric, scale=scale)
    if measurement.map(sensitivity) > rho:
        scale = dp.binary_search_param(
            lambda s: dp.m.make_gaussian(domain, metric, scale=s), d_in=sensitivity, d_out=rho
        )
        measurement = dp.m.make_gaussian(domain, metric, scale=scale)
    return measurement, float(scale)


def noise_scale(sensitivity: float, rho: float) -> float:
    """The standard deviation of the Gaussian noise for this sensitivity and cost."""
    return gaussian(float(sensitivity), float(rho))[1]


def privacy_loss(sensitivity: float, rho: float) -> float:
    """rho of the measurement as OpenDP's privacy map states it for an input change of ``sensitivity``."""
    return float(gaussian(float(sensitivity), float(rho))[0].map(float(sensitivity)))


def z_value(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise DPError(N_("the confidence level must be between 0 and 1"))
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def release_vector(values: Sequence[float], sensitivity: float, rho: float, confidence: float) -> list[Noisy]:
    """Noisy copies of ``values`` (one statistic over a grid): OpenDP's Gaussian measurement, one call."""
    measurement, scale = gaussian(float(sensitivity), float(rho))
    z = z_value(confidence)
    if not values:
        return []
    noisy = measurement([float(v) for v in values])
    return [Noisy(float(v), scale, float(v) - z * scale, float(v) + z * scale) for v in noisy]


def add(cells: Iterable[Noisy], confidence: float) -> Noisy:
    """The sum of noisy cells (a margin): post-processing; independent noise, so variances add."""
    cells = list(cells)
    value = sum(c.value for c in cells)
    scale = math.sqrt(sum(c.scale**2 for c in cells))
    z = z_value(confidence)
    return Noisy(value, scale, value - z * scale, value + z * scale)


def ratio(numerator: Noisy, denominator: Noisy, confidence: float) -> Noisy:
    """A mean as a noisy sum over a noisy count (post-processing). Its interval holds the exact ratio with at least
    ``confidence``: each part's interval is taken at 1 - (1 - confidence) / 2 (a union bound), and the ratio's range
    over that box is its interval; unbounded (None) when the count's interval reaches zero. The scale is the
    delta-method approximation of the ratio's noise."""
    z = z_value(1 - (1 - confidence) / 2)
    s, c = numerator.value, denominator.value
    value = s / c if c > 0 else math.nan
    scale = math.sqrt(numerator.scale**2 + (value * denominator.scale) ** 2) / c if c > 0 else math.inf
    c_low = c - z * denominator.scale
    if c <= 0 or c_low <= 0:
        return Noisy(value if c > 0 else 0.0, scale if c > 0 else math.inf, None, None)
    corners = [
        (s + sign_s * z * numerator.scale) / (c + sign_c * z * denominator.scale)
        for sign_s in (-1, 1)
        for sign_c in (-1, 1)
    ]
    return Noisy(value, scale, min(corners), max(corners))


def clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def bounded_cells(
    rows: Iterable[tuple[Hashable, Hashable, float]], low: float, high: float, cells: Iterable[Hashable] = ()
) -> dict[Hashable, float]:
    """Per-cell sums of per-person contributions: ``rows`` are (cell, person, value) in any number per person; each
    person's values in a cell are added first, that total clamped to [low, high], then the people's totals added.
    ``cells`` lists cells to report even when no row falls in them (the released grid: 0 before noise)."""
    per_person: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for cell, person, value in rows:
        per_person[cell, person] += float(value)
    out: dict[Hashable, float] = dict.fromkeys(cells, 0.0)
    for (cell, _), total in per_person.items():
        out[cell] = out.get(cell, 0.0) + clamp(total, low, high)
    return out


def release_cells(
    true_values: Mapping[Hashable, float], sensitivity: float, rho: float, confidence: float
) -> dict[Hashable, Noisy]:
    """One statistic over a grid of cells, released: every cell of ``true_values`` (the grid, zeros included)."""
    keys = list(true_values)
    return dict(zip(keys, release_vector([true_values[k] for k in keys], sensitivity, rho, confidence), strict=True))


def epsilon_for(rho: float, delta: float) -> float:
    """The (epsilon, delta)-DP guarantee implied by rho-zCDP (Bun & Steinke 2016, Proposition 1.3)."""
    return rho + 2 * math.sqrt(rho * math.log(1 / delta))
