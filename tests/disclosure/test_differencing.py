# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Differencing across releases: two queries whose populations differ by exactly one person."""

from __future__ import annotations

import random

import pytest

from hygie.disclosure import (
    AnchoredRounding,
    Cell,
    Dimension,
    DisclosurePolicy,
    Measure,
    MeasureKind,
    OutputTable,
    StickyRounding,
    anchor_key,
    cell_key,
    differencing_bound,
    protect,
    record_key,
    record_keys,
)

POLICY = DisclosurePolicy()
TRIALS = 3000


def release(pseudonyms: list[str], project_key: bytes) -> int | None:
    """What the runner does for a one-cell count: record keys of the cell's distinct people, then protect."""
    keys = record_keys(pseudonyms, project_key)
    cells = (Cell(("all",), len(pseudonyms), cell_key=cell_key(keys), anchor_key=anchor_key(keys)),)
    (out,) = protect(OutputTable((Dimension("population"),), (), cells), POLICY).cells
    return out.people


def _pseudonym(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(17))


def _trials(attack: str) -> float:
    """Share of trials where the attacker guesses right whether the target has the attribute (prior 1/2)."""
    rng = random.Random(20240605)
    project_key = rng.randbytes(32)
    right = 0
    for _ in range(TRIALS):
        n = rng.randint(POLICY.threshold, 200)
        with_attribute = [_pseudonym(rng) for _ in range(n)]
        target = _pseudonym(rng)
        has = rng.random() < 0.5
        second = [*with_attribute, target] if has else with_attribute
        if attack == "platform":
            first_count, second_count = release(with_attribute, project_key), release(second, project_key)
        else:
            first_count, second_count = _textbook(with_attribute, project_key), _textbook(second, project_key)
        # The attacker subtracts: any change means the target was added to the cell.
        guess = first_count != second_count
        right += guess == has
    return right / TRIALS


def _textbook(pseudonyms: list[str], project_key: bytes) -> int:
    """The textbook cell-key p-table: uniform noise on -3..3 drawn from the sum of the record keys."""
    key = cell_key(record_keys(pseudonyms, project_key))
    return len(pseudonyms) + ((key * 7) >> 32) - 3


def test_a_differencing_attacker_learns_at_most_the_stated_bound() -> None:
    rounding = StickyRounding(POLICY.rounding_base)
    bound = 0.5 + rounding.differencing_advantage(POLICY.threshold) / 2  # 0.642 at base 5 and threshold 11
    accuracy = _trials("platform")
    # Three standard deviations of a proportion over 3000 trials: 0.027.
    assert accuracy <= bound + 0.027, accuracy
    # And at the sizes drawn (11..200 people) the expected advantage is about 1/5 + 1/60: near 0.61.
    assert accuracy < 0.64


def test_why_counts_are_not_perturbed_from_the_sum_key() -> None:
    # Noise re-drawn by every added person makes 'the two releases are equal' betray 'the target is not in the
    # cell': the textbook cell-key method loses this game about 94% of the time (1/2 + 1/2 * (1 - 6/49)).
    assert _trials("textbook") > 0.9


def test_the_same_people_always_get_the_same_count() -> None:
    rng = random.Random(7)
    key = rng.randbytes(32)
    people = [_pseudonym(rng) for _ in range(57)]
    first = release(people, key)
    rng.shuffle(people)
    assert release(people, key) == first
    assert first is not None and first % POLICY.rounding_base == 0 and abs(first - 57) < POLICY.rounding_base


def test_rounding_is_unbiased() -> None:
    rounding = StickyRounding(5)
    rng = random.Random(3)
    released = [rounding.release(23, rng.getrandbits(32)) for _ in range(20_000)]
    assert set(released) == {20, 25}
    assert abs(sum(released) / len(released) - 23) < 0.1


def test_record_keys_depend_on_the_project_key() -> None:
    assert record_key("ABCDEFGHIJKLMNOPQ", b"k" * 32) != record_key("ABCDEFGHIJKLMNOPQ", b"j" * 32)
    assert 0 <= record_key("ABCDEFGHIJKLMNOPQ", b"k" * 32) < 2**32
    with pytest.raises(ValueError, match="128 bits"):
        record_key("ABCDEFGHIJKLMNOPQ", b"short")


def _sum_cell(key: str, people: list[int], amounts: list[float]) -> Cell:
    return Cell(
        (key,),
        len(people),
        {"events": float(len(amounts)), "amount": sum(amounts)},
        cell_key=cell_key(people),
        anchor_key=anchor_key(people),
        top_contributions={"events": (2.0, 1.0), "amount": tuple(sorted(amounts, reverse=True)[:2])},
    )


def test_magnitudes_are_rounded_without_bias_and_move_as_often_as_stated() -> None:
    # One cell of n people with events and amounts; a target joins. Over fresh keys, the release moves at most as
    # often as differencing_bound says, and the rounding is unbiased.
    rng = random.Random(11)
    measures = (Measure("events", MeasureKind.COUNT), Measure("amount", MeasureKind.SUM))
    amounts = [round(rng.uniform(5, 60), 2) for _ in range(40)]
    moved = 0
    released: list[float] = []
    bound = None
    trials = 2000
    for _ in range(trials):
        keys = [rng.getrandbits(32) for _ in range(41)]
        without = OutputTable((Dimension("all"),), measures, (_sum_cell("x", keys[:40], amounts),))
        with_ = OutputTable((Dimension("all"),), measures, (_sum_cell("x", keys, [*amounts, 30.0]),))
        a, b = protect(without, POLICY).cells, protect(with_, POLICY).cells
        moved += a != b
        value = a[0].values["amount"]
        assert value is not None
        released.append(value)
        bound = bound or differencing_bound(without, with_, POLICY)
    assert bound is not None and set(bound.cells) == {("x",)}
    rate = moved / trials
    sigma = (bound.table * (1 - bound.table) / trials) ** 0.5
    assert rate <= bound.table + 3 * sigma, (rate, bound.table)
    assert rate >= 1 / POLICY.rounding_base - 3 * sigma  # people count alone moves 1 time in 5
    mean = sum(released) / trials
    assert abs(mean - sum(amounts)) < 3 * 5 * 2 * sum(amounts) / 40 / trials**0.5  # unbiased, within 3 sigma


def test_anchored_rounding_change_bound() -> None:
    rounding = AnchoredRounding(5)
    rng = random.Random(2)
    x, s = 1000.0, 25.0
    for dx, ds in ((10.0, 0.0), (25.0, 0.5), (100.0, 2.0)):
        moved = sum(
            rounding.release(x, s, a, "m") != rounding.release(x + dx, s + ds, a, "m")
            for a in (rng.getrandbits(32) for _ in range(4000))
        )
        bound = rounding.change_bound(x, s, x + dx, s + ds)
        assert moved / 4000 <= bound + 3 * (bound / 4000) ** 0.5, (dx, moved, bound)
    assert rounding.change_bound(x, s, x, s) == 0.0 and rounding.change_bound(0.0, 0.0, 1.0, 1.0) == 1.0
