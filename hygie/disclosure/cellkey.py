# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Cell-key perturbation (the ABS TableBuilder / Eurostat method) against differencing between releases.

Every person carries a persistent record key: 32 bits of an HMAC of their project pseudonym under a key the caller
takes from key custody. A cell's key is the sum of its people's record keys modulo 2**32 (exact integer arithmetic,
order-free, and computable in SQL as ``SUM(rkey) % 4294967296`` over the cell's distinct people). Noise is a fixed
function of (count, cell key), so:

- asking the same question again returns the same numbers: averaging repeated releases learns nothing;
- two populations that differ by one person have cell keys that differ by that person's record key, an HMAC output
  the requester cannot compute: their noises look independent.

Counts use the keys differently (``StickyRounding``): see its docstring and docs/disclosure.md for why.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable

KEY_BITS = 32
KEY_MODULUS = 1 << KEY_BITS
_RECORD_LABEL = b"hygie/cell-key/record/v1|"
_STREAM_LABEL = b"hygie/cell-key/stream/v1|"


def record_key(pseudonym: str, project_key: bytes) -> int:
    """A person's record key in [0, 2**32): stable for the life of the project key, unguessable without it."""
    if len(project_key) < 16:
        raise ValueError("the cell-key secret must be at least 128 bits")
    digest = hmac.new(project_key, _RECORD_LABEL + pseudonym.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:4], "big")


def record_keys(pseudonyms: Iterable[str], project_key: bytes) -> list[int]:
    return [record_key(p, project_key) for p in pseudonyms]


def cell_key(keys: Iterable[int]) -> int:
    """The key of a cell from the record keys of its distinct people."""
    return sum(keys) % KEY_MODULUS


def stream(cell_key_value: int, label: str) -> int:
    """Another 32-bit value derived from a cell key, for a second noise (a magnitude measure) that must not
    simply repeat the count's noise."""
    data = _STREAM_LABEL + label.encode("utf-8") + b"|" + cell_key_value.to_bytes(4, "big")
    return int.from_bytes(hashlib.sha256(data).digest()[:4], "big")


class StickyRounding:
    """Released people counts: randomised rounding to a multiple of ``base``, with the offset drawn from the
    cell's anchor key (the smallest record key among its people), so

    - the same people always get the same count (no averaging over repeats);
    - the count is unbiased: for n = q*base + j it is q*base + base with probability j/base;
    - adding or removing one person changes the released count only if it crosses a rounding boundary
      (probability 1/base) or if that person holds the smallest record key of the cell (probability
      1/(n+1)): in every other case the two releases are identical and the difference is exactly zero.
      These probabilities are over the project's secret for one fixed pair of populations. Within a project the
      offset is fixed by the anchor, so pairs sharing an anchor are not independent trials: see 'Walks' in
      docs/disclosure.md for the attack this allows and why it is left to the audit log and checkers.

    Noise drawn from the sum of the record keys (the textbook cell key) is re-drawn by every added person, so
    'the two releases are equal' would betray 'the person is not in the cell' (see docs/disclosure.md).
    """

    def __init__(self, base: int) -> None:
        if base < 1:
            raise ValueError("base must be at least 1")
        self.base = base

    def offset(self, anchor: int) -> int:
        # The anchor is the minimum of n uniform keys, so it is small: hash it to get a uniform offset.
        return stream(anchor, "round") % self.base

    def release(self, count: int, anchor: int) -> int:
        if count == 0:
            return 0
        return (count + self.offset(anchor)) // self.base * self.base

    def differencing_advantage(self, people: int) -> float:
        """Upper bound, over the project's secret, on the probability that the release changes when one person
        joins a cell of ``people``: the best attacker on that one pair guesses right with probability at most
        1/2 + advantage/2."""
        return min(1.0, 1 / self.base + 1 / (people + 1))


LOG_STEP_FACTOR = 1.0613
"""max over f in [0, 1) of 2**f * (1 - f/2): the mean of scale / 2**floor(log2 scale + V) over a uniform V, at worst."""


def uniform(key: int) -> float:
    """A value in [0, 1), uniform, from a 32-bit stream value."""
    return key / KEY_MODULUS


class AnchoredRounding:
    """Released magnitudes (event counts, sums, means, quantiles): randomised rounding to a step of about ``base``
    times the cell's typical per-person contribution, both random draws fixed by the cell's anchor.

    For a value x with per-person scale s > 0 (``|x| / people``, for every kind of magnitude):

    - the step is ``h = base * 2**e`` with ``e = floor(log2 s + V)``: s rounded to a power of two, randomly, so that
      a small change of s moves the step with probability ``|log2 s' - log2 s|``;
    - the release is ``h * floor(x / h + U)``: unbiased, within one step of x;
    - U and V are hashes of the cell's anchor (smallest record key), as for people counts: the same people always
      get the same release, and a person who joins a cell without holding its smallest key changes the release only
      if the step moves or x + their contribution crosses a multiple of h.

    Over the project's secret, that probability is at most ``|log2(s'/s)| + LOG_STEP_FACTOR * |x' - x| / (base * s)``
    (:meth:`change_bound`): about ``1/base`` for a person contributing like the others.
    """

    def __init__(self, base: float) -> None:
        if base <= 0:
            raise ValueError("base must be positive")
        self.base = base

    def step(self, scale: float, anchor: int, label: str) -> float:
        v = uniform(stream(anchor, f"scale|{label}"))
        return self.base * 2.0 ** math.floor(math.log2(scale) + v)

    def release(self, value: float, scale: float, anchor: int, label: str) -> float:
        if not scale > 0 or not math.isfinite(scale):
            return value  # only when the value is 0: released as 0
        h = self.step(scale, anchor, label)
        return h * math.floor(value / h + uniform(stream(anchor, f"round|{label}")))

    def change_bound(self, value: float, scale: float, value_after: float, scale_after: float) -> float:
        """Upper bound, over the secret, on the probability that the release moves when (value, scale) becomes
        (value_after, scale_after) with the same anchor."""
        if value == value_after and scale == scale_after:
            return 0.0
        if not (scale > 0 and scale_after > 0):
            return 1.0
        moved = abs(math.log2(scale_after / scale)) + LOG_STEP_FACTOR * abs(value_after - value) / (self.base * scale)
        return min(1.0, moved)


def magnitude_factor(key: int) -> float:
    """A value in [-1, 1), uniform, from a 32-bit stream value: the direction and size of a magnitude's noise."""
    return 2.0 * key / KEY_MODULUS - 1.0


def anchor_key(keys: Iterable[int]) -> int:
    """The anchor of a cell: the smallest record key among its people (``MIN(rkey)`` in SQL)."""
    return min(keys)
