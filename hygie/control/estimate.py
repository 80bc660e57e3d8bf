# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The improper-payment rate: sample design and the stratified ratio estimator with its 95 % interval.

Pure arithmetic on numbers the platform already holds (no data access here; :mod:`hygie.control.sample` and
:mod:`hygie.control.review` bring the numbers in through the project's view and the review queue).

The rate is a ratio of two totals over the paid claims of the control project's view: the amount paid in error
``Y`` over the amount paid ``X``. With strata ``h`` of ``N_h`` claims, a simple random sample of ``n_h`` claims in
each, and for each sampled claim its paid amount ``x`` and amount in error ``y`` (0 when proper), the combined
ratio estimator (Cochran, *Sampling Techniques*, 3rd ed., §6.11) is::

    R = sum_h N_h mean(y)_h / sum_h N_h mean(x)_h

with the linearised variance::

    V(R) = 1/X^2 * sum_h N_h^2 (1 - n_h/N_h) s2_dh / n_h,    d = y - R x

where ``X`` is the known total paid (every claim's amount is in the view, so ``X`` is not estimated) and ``s2_dh``
the sample variance of ``d`` in stratum ``h``. The interval is ``R ± t * sqrt(V)`` with Student's ``t`` at
``sum n_h - H`` degrees of freedom (slightly wider than the normal quantile on small samples). The improper amount
is ``R X`` with the same interval scaled by ``X``.

Every function takes arrays whose last axis is the stratum, so the coverage simulation computes a thousand
replicate estimates in one call (a survey library computes one design at a time: see docs/control.md).

Sample size (:func:`design`): under the planning model "a claim is improper with probability ``p``, and then its
whole amount is in error", the variance of ``d`` in a stratum is ``p (1 - p)`` times the mean square of its amounts,
which the view gives exactly. Neyman allocation on those standard deviations (``n_h`` proportional to
``N_h S_h``) minimises the variance for a total ``n``, and ``n`` is the smallest giving the target half-width
``e`` (Cochran §5.9)::

    n = (sum N_h S_h)^2 / (X^2 e^2 / z^2 + sum N_h S_h^2)

then each ``n_h`` is rounded up, raised to the minimum per stratum and capped at ``N_h`` (a stratum smaller than
its share is taken whole).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hygie.i18n import N_

FloatArray = npt.NDArray[np.float64]

CONFIDENCE = 0.95
"""The level of every interval Hygie reports for this rate (the CERT convention)."""


class EstimateError(ValueError):
    """The numbers do not allow an estimate; the message says which stratum and what is missing."""


@dataclass(frozen=True)
class StratumFrame:
    """One stratum of the sampling frame, as the view gives it: counts and sums, never a claim."""

    name: str
    claims: int
    """N_h: paid claims in the stratum."""
    amount: float
    """X_h: total paid in the stratum (EUR)."""
    mean_square: float
    """Mean of the squared paid amounts of the stratum (EUR²): its spread, for Neyman allocation."""


def design(
    frame: list[StratumFrame],
    *,
    half_width: float,
    expected_rate: float,
    min_per_stratum: int,
    confidence: float = CONFIDENCE,
) -> dict[str, int]:
    """Claims to draw per stratum for a ``confidence`` interval of about ``±half_width`` (a fraction, 0.01 = one
    percentage point) around a rate near ``expected_rate``, Neyman allocation (see the module docstring)."""
    if not 0 < half_width < 1:
        raise EstimateError(N_("the target half-width is a fraction between 0 and 1 (0.01 = one percentage point)"))
    if not 0 < expected_rate < 1:
        raise EstimateError(N_("the expected rate is a fraction strictly between 0 and 1"))
    if min_per_stratum < 2:
        raise EstimateError(N_("at least 2 claims per stratum are needed to estimate a variance"))
    live = [s for s in frame if s.claims > 0 and s.amount > 0]
    if not live:
        raise EstimateError(N_("the view holds no paid claim: there is nothing to sample"))
    from scipy import stats  # type: ignore[import-untyped]  # here, not at the top: 2 s, and the schema imports us

    z = float(stats.norm.ppf(0.5 + confidence / 2))
    total = sum(s.amount for s in live)
    spread = {s.name: math.sqrt(expected_rate * (1 - expected_rate) * s.mean_square) for s in live}
    weighted = sum(s.claims * spread[s.name] for s in live)
    n = weighted**2 / (total**2 * half_width**2 / z**2 + sum(s.claims * spread[s.name] ** 2 for s in live))
    out: dict[str, int] = {}
    for s in live:
        share = n * s.claims * spread[s.name] / weighted if weighted > 0 else n / len(live)
        out[s.name] = min(s.claims, max(min_per_stratum, math.ceil(share)))
    return out


@dataclass(frozen=True)
class Estimates:
    """Rate and improper amount with their intervals; arrays when computed for many replicates at once."""

    rate: FloatArray
    low: FloatArray
    high: FloatArray
    se: FloatArray
    improper_amount: FloatArray
    amount_low: FloatArray
    amount_high: FloatArray
    reviewed: int
    degrees_of_freedom: int


def ratio_estimate(
    claims: FloatArray,
    total_amount: float,
    n: FloatArray,
    sum_x: FloatArray,
    sum_y: FloatArray,
    sum_xx: FloatArray,
    sum_yy: FloatArray,
    sum_xy: FloatArray,
    *,
    confidence: float = CONFIDENCE,
) -> Estimates:
    """The combined ratio estimate from per-stratum sample sums (last axis: strata; leading axes: replicates).

    ``claims`` is N_h, ``n`` the reviewed claims n_h, ``sum_*`` the sums of x, y, x², y², xy over them, and
    ``total_amount`` the known X. A stratum reviewed whole (n_h = N_h) adds no variance; any other needs n_h >= 2.
    """
    claims, n = np.asarray(claims, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if np.any(n > claims):
        raise EstimateError(N_("a stratum has more reviewed claims than claims"))
    if np.any(n < 1):
        raise EstimateError(N_("every stratum needs reviewed claims; a stratum has none"))
    partial = n < claims
    if np.any(partial & (n < 2)):
        raise EstimateError(
            N_("a stratum sampled in part has fewer than 2 reviewed claims: no variance can be estimated")
        )
    xbar, ybar = sum_x / n, sum_y / n
    x_hat = np.sum(claims * xbar, axis=-1)
    if np.any(x_hat <= 0):
        raise EstimateError(N_("the reviewed claims carry no paid amount"))
    rate = np.sum(claims * ybar, axis=-1) / x_hat
    r = rate[..., np.newaxis]
    # Sample variance of d = y - R x, from the sums (n - 1 denominator); 0 where the stratum is taken whole.
    ss_d = (sum_yy - sum_y**2 / n) - 2 * r * (sum_xy - sum_x * sum_y / n) + r**2 * (sum_xx - sum_x**2 / n)
    s2_d = np.where(n > 1, np.maximum(ss_d, 0.0) / np.maximum(n - 1, 1), 0.0)
    variance = np.sum(claims**2 * (1 - n / claims) * s2_d / n, axis=-1) / total_amount**2
    se = np.sqrt(variance)
    reviewed = int(np.sum(n, axis=-1).flat[0])
    strata = int(np.asarray(claims).shape[-1])
    df = max(reviewed - strata, 1)
    from scipy import stats  # here, not at the top: 2 s, and the schema imports this module

    t = float(stats.t.ppf(0.5 + confidence / 2, df))
    low, high = np.maximum(rate - t * se, 0.0), rate + t * se
    return Estimates(
        rate=np.asarray(rate),
        low=np.asarray(low),
        high=np.asarray(high),
        se=np.asarray(se),
        improper_amount=np.asarray(rate * total_amount),
        amount_low=np.asarray(low * total_amount),
        amount_high=np.asarray(high * total_amount),
        reviewed=reviewed,
        degrees_of_freedom=df,
    )


def estimate_from_claims(
    frame: list[StratumFrame], reviewed: dict[str, list[tuple[float, float]]], *, confidence: float = CONFIDENCE
) -> Estimates:
    """The estimate from the review queue: for each stratum of ``frame``, its reviewed claims as (paid, in error)."""
    missing = [s.name for s in frame if s.claims > 0 and not reviewed.get(s.name)]
    if missing:
        raise EstimateError(
            N_("no reviewed claim yet in stratum {strata}: review at least 2 in each", strata=", ".join(missing))
        )
    live = [s for s in frame if s.claims > 0]
    few = [s.name for s in live if len(reviewed[s.name]) < min(2, s.claims)]
    if few:
        raise EstimateError(
            N_("stratum {strata} has 1 reviewed claim: review at least 2 in each", strata=", ".join(few))
        )
    sums = []
    for s in live:
        pairs = np.asarray(reviewed[s.name], dtype=np.float64).reshape(-1, 2)
        x, y = pairs[:, 0], pairs[:, 1]
        sums.append((len(pairs), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()))
    cols = np.asarray(sums, dtype=np.float64).T
    return ratio_estimate(
        np.asarray([s.claims for s in live], dtype=np.float64),
        float(sum(s.amount for s in live)),
        *cols,
        confidence=confidence,
    )


@dataclass(frozen=True)
class Coverage:
    """What a coverage simulation found."""

    truth: float
    sample_size: int
    replicates: int
    covered: float
    """Share of replicate intervals holding the true rate."""
    mean_rate: float
    median_half_width: float


def synthetic_population(seed: int) -> tuple[list[FloatArray], list[FloatArray]]:
    """Paid amounts and amounts in error of about 30,000 claims in up to 15 strata (5 amount bands x 3 care types):
    log-normal amounts, an improper share rising with the amount, 40 % of errors partial. Its true rate is known."""
    rng = np.random.default_rng(seed)
    bands = np.asarray([0.0, 20.0, 50.0, 150.0, 500.0])
    xs: list[FloatArray] = []
    ys: list[FloatArray] = []
    for mu, sigma, size, p in ((3.0, 0.6, 14_000, 0.04), (4.0, 1.0, 9_000, 0.07), (2.5, 1.2, 7_000, 0.02)):
        x = np.round(rng.lognormal(mu, sigma, size), 2)
        improper = rng.random(size) < p * (1 + np.log1p(x) / 5)
        share = np.where(rng.random(size) < 0.6, 1.0, rng.uniform(0.1, 0.9, size))
        y = np.round(np.where(improper, x * share, 0.0), 2)
        band = np.searchsorted(bands, x, side="right") - 1
        for b in range(bands.size):
            keep = band == b
            if keep.sum() >= 2:
                xs.append(x[keep].astype(np.float64))
                ys.append(y[keep].astype(np.float64))
    return xs, ys


def simulate_coverage(
    xs: list[FloatArray],
    ys: list[FloatArray],
    *,
    replicates: int,
    seed: int,
    half_width: float,
    expected_rate: float,
    min_per_stratum: int,
) -> Coverage:
    """Draw ``replicates`` stratified samples of the population (designed by :func:`design`) at once and count how
    often the interval holds the true rate: n_h distinct claims per replicate are the n_h smallest of fresh uniform
    keys (simple random sampling without replacement, vectorised)."""
    frame = [StratumFrame(f"s{i}", x.size, float(x.sum()), float((x * x).mean())) for i, x in enumerate(xs)]
    plan = design(frame, half_width=half_width, expected_rate=expected_rate, min_per_stratum=min_per_stratum)
    sizes = [plan[s.name] for s in frame]
    rng = np.random.default_rng(seed)
    sums = np.zeros((6, replicates, len(xs)))
    for h, (x, y) in enumerate(zip(xs, ys, strict=True)):
        picks = np.argpartition(rng.random((replicates, x.size)), sizes[h] - 1, axis=1)[:, : sizes[h]]
        sx, sy = x[picks], y[picks]
        sums[:, :, h] = (np.full(replicates, sizes[h]), sx.sum(1), sy.sum(1), (sx * sx).sum(1), (sy * sy).sum(1),
                         (sx * sy).sum(1))  # fmt: skip
    claims = np.asarray([x.size for x in xs], dtype=np.float64)
    total = float(sum(float(x.sum()) for x in xs))
    truth = float(sum(float(y.sum()) for y in ys)) / total
    est = ratio_estimate(claims, total, *sums)
    return Coverage(
        truth=truth,
        sample_size=int(sum(sizes)),
        replicates=replicates,
        covered=float(np.mean((est.low <= truth) & (truth <= est.high))),
        mean_rate=float(est.rate.mean()),
        median_half_width=float(np.median(est.high - est.low)) / 2,
    )
