# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The DP release mechanism (hygie.disclosure.dp): OpenDP's noise has the stated scale, intervals cover, one person
moves a cell by at most the bound. OpenDP's sampler takes no seed (it is the secure one): the statistical tests use
enough draws and thresholds loose enough (p > 1e-4, 6 standard errors) never to flake."""

from __future__ import annotations

import math

import pytest
from scipy import stats  # type: ignore[import-untyped]

from hygie.config import Settings
from hygie.disclosure import dp

DRAWS = 4000


def test_noise_matches_its_stated_scale() -> None:
    settings = Settings()
    rho = settings.dp_rho_per_statistic
    scale = dp.noise_scale(1.0, rho)
    assert scale == pytest.approx(1.0 / math.sqrt(2 * rho))  # sigma = sensitivity / sqrt(2 rho)
    assert dp.privacy_loss(1.0, rho) <= rho * (1 + 1e-12)  # OpenDP's own privacy map
    released = dp.release_vector([100.0] * DRAWS, 1.0, rho, 0.95)
    assert {r.scale for r in released} == {scale}
    noise = [r.value - 100.0 for r in released]
    assert stats.kstest(noise, "norm", args=(0.0, scale)).pvalue > 1e-4
    # the variance within 6 standard errors of the stated one (chi-square: se of s^2 is sigma^2 * sqrt(2/(n-1)))
    variance = sum(x * x for x in noise) / DRAWS
    assert abs(variance - scale**2) < 6 * scale**2 * math.sqrt(2 / (DRAWS - 1))
    # the 95 % intervals hold the true value 95 % of the time (binomial, 6 standard errors)
    covered = sum(1 for r in released if r.low is not None and r.high is not None and r.low <= 100.0 <= r.high)
    assert abs(covered / DRAWS - 0.95) < 6 * math.sqrt(0.95 * 0.05 / DRAWS)
    # a larger sensitivity, the same rho: the noise grows in proportion
    assert dp.noise_scale(50.0, rho) == pytest.approx(50 * scale)


def test_contribution_bounding() -> None:
    bounds = dp.Bounds(events=5, amount_lower=0.0, amount_upper=300.0)
    # a person with 1000 events in cell 'a', others with one each: the count moves by at most the bound
    crowd = [("a", f"p{i}", 1.0) for i in range(20)] + [("b", f"q{i}", 1.0) for i in range(7)]
    heavy = [("a", "heavy", 1.0)] * 1000
    without = dp.bounded_cells(crowd, 0, bounds.events, cells=["a", "b", "c"])
    with_heavy = dp.bounded_cells(crowd + heavy, 0, bounds.events, cells=["a", "b", "c"])
    assert without == {"a": 20.0, "b": 7.0, "c": 0.0}
    assert with_heavy["a"] - without["a"] == bounds.events
    assert with_heavy["b"] == without["b"] and with_heavy["c"] == 0.0
    # amounts: a person's rows are added before the clamp (1000 rows of 10 count as 300, not 1000 * 10 nor 10)
    amounts = dp.bounded_cells([("a", "heavy", 10.0)] * 1000 + [("a", "neg", -50.0)], 0.0, 300.0)
    assert amounts == {"a": 300.0}
    assert bounds.amount_sensitivity == 300.0
    with pytest.raises(dp.DPError):
        dp.Bounds(events=0, amount_lower=0, amount_upper=1)
    with pytest.raises(dp.DPError):
        dp.Bounds(events=1, amount_lower=5, amount_upper=1)
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(dp.DPError):
            dp.noise_scale(1.0, bad)


def test_margins_and_means_are_post_processing_with_honest_intervals() -> None:
    confidence = 0.95
    cells = dp.release_vector([10.0, 20.0, 30.0], 1.0, 0.01, confidence)
    total = dp.add(cells, confidence)
    assert total.value == pytest.approx(sum(c.value for c in cells))
    assert total.scale == pytest.approx(math.sqrt(3) * cells[0].scale)
    # a mean = noisy sum / noisy count: its interval holds the true mean at least 95 % of the time
    true_sum, true_count = 50_000.0, 400.0
    sums = dp.release_vector([true_sum] * (DRAWS // 2), 300.0, 0.005, confidence)
    counts = dp.release_vector([true_count] * (DRAWS // 2), 5.0, 0.005, confidence)
    means = [dp.ratio(s, c, confidence) for s, c in zip(sums, counts, strict=True)]
    held = sum(1 for m in means if m.low is not None and m.high is not None and m.low <= 125.0 <= m.high)
    assert held / len(means) >= 0.95 - 6 * math.sqrt(0.95 * 0.05 / len(means))
    # a count that may be zero gives no bounded interval rather than a false one
    unbounded = dp.ratio(dp.Noisy(5.0, 7.0, None, None), dp.Noisy(3.0, 7.0, None, None), confidence)
    assert unbounded.low is None and unbounded.high is None
    assert dp.epsilon_for(0.5, 1e-6) == pytest.approx(0.5 + 2 * math.sqrt(0.5 * math.log(1e6)))


def test_a_mean_over_a_count_that_may_be_empty_is_shown_empty_never_infinite() -> None:
    import json
    import math

    from hygie.disclosure.dp import Noisy, ratio

    empty = ratio(Noisy(120.0, 3.0, None, None), Noisy(-0.4, 1.0, None, None), 0.95)
    shown = empty.as_dict("mean_amount")
    assert shown == {"mean_amount": None, "mean_amount_noise_sd": None, "mean_amount_ci_low": None,
                     "mean_amount_ci_high": None}  # fmt: skip
    json.loads(json.dumps(shown, allow_nan=False))  # a download must be valid JSON
    assert math.isinf(empty.scale)
