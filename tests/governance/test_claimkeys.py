# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Claim keys of a view build: distinct across the whole build, sorted within a draw, in range."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hygie.governance.claimkeys import ClaimKeys


@settings(max_examples=60, deadline=None)
@given(draws=st.lists(st.integers(0, 40), max_size=8), high=st.integers(1, 400))
def test_keys_are_distinct_across_draws_even_when_repeats_are_likely(draws: list[int], high: int) -> None:
    # A small range makes repeats (within a draw and across draws) the rule, not a one-in-60,000 event.
    keys = ClaimKeys(high=high)
    seen: list[np.ndarray] = []
    for count in draws:
        if keys.drawn + count > high:
            with pytest.raises(ValueError, match="cannot be drawn"):
                keys.draw(count)
            continue
        drawn = keys.draw(count)
        assert len(drawn) == count and drawn.dtype == np.int64
        assert np.all(np.diff(drawn) > 0), "sorted, each once"
        assert np.all((drawn >= 0) & (drawn < high))
        seen.append(drawn)
    everything = np.concatenate(seen) if seen else np.empty(0, dtype=np.int64)
    assert len(np.unique(everything)) == len(everything) == keys.drawn


def test_the_whole_range_can_be_drawn() -> None:
    keys = ClaimKeys(high=50)
    parts = [keys.draw(20), keys.draw(29), keys.draw(1)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(50))


def test_keys_are_not_the_same_from_one_build_to_the_next() -> None:
    first, second = ClaimKeys().draw(1000), ClaimKeys().draw(1000)
    assert first.min() >= 0 and len(np.intersect1d(first, second)) < 2
