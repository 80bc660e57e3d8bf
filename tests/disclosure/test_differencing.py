"""Differencing across releases: two queries whose populations differ by exactly one person."""

from __future__ import annotations

import random

import pytest

from hygie.disclosure import (
    Cell,
    Dimension,
    DisclosurePolicy,
    OutputTable,
    StickyRounding,
    anchor_key,
    cell_key,
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
