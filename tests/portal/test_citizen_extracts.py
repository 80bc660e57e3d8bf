# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A batch's citizen extracts, built column-wise by bucket of people, read back as exactly the rows the warehouse
holds: every person once, in the bucket their person key names, with the same rows in the same order and the same
values (a float stays the same float)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
from datetime import date
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hygie.governance.citizen_index import (
    BUCKET_PEOPLE,
    MAX_BUCKET_CHARS,
    PAD_BYTES,
    PERSON_KEY_LENGTH,
    bucket_chars,
    extract_buckets,
    rows_in_bucket,
)
from hygie.ingest.contract import PSEUDONYM_COLUMN
from hygie.ingest.rules import stored_schema

COLUMNS = ("EXE_SOI_DTD", "PRS_NAT_REF", "PRS_ACT_QTE", "PRS_PAI_MNT", "BSE_REM_MNT")
amounts = st.none() | st.floats(allow_nan=True, allow_infinity=True)
rows = st.tuples(
    st.sampled_from([f"p{i}" for i in range(12)]),
    st.none() | st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    st.none() | st.integers(-(2**63), 2**63 - 1),
    amounts,
    amounts,
    amounts,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


def keys_of(pseudonyms: list[str]) -> list[str]:
    """Person keys as the custody key gives them (22 characters of base64url), from a plain hash."""
    return [base64.urlsafe_b64encode(hashlib.sha256(p.encode()).digest()[:16]).decode().rstrip("=") for p in pseudonyms]


@settings(max_examples=200, deadline=None)
@given(st.lists(rows, min_size=1, max_size=40), st.integers(1, 5))
def test_buckets_read_back_as_the_rows(data: list[tuple[Any, ...]], chunk: int) -> None:
    schema = stored_schema("ER_PRS_F")
    names = (PSEUDONYM_COLUMN, *COLUMNS)
    table = pa.table({n: pa.array([r[i] for r in data], schema.field(n).type) for i, n in enumerate(names)})
    table = pa.Table.from_batches(table.to_batches(max_chunksize=chunk))  # several chunks, as files give
    people, buckets = extract_buckets(table, keys_of)
    expected = {
        p: [r[1:] for r in group] for p, group in itertools.groupby(sorted(data, key=lambda r: r[0]), lambda r: r[0])
    }
    assert people == len(expected)
    names_of = [bucket for bucket, _ in buckets]
    assert names_of == sorted(set(names_of))  # each bucket once, in key order (one run in the recent table)
    assert all(len(layout) % PAD_BYTES == 0 for _, layout in buckets)
    by_name = dict(buckets)
    for person, key in zip(expected, keys_of(list(expected)), strict=True):
        bucket = key[: bucket_chars(people)]
        got = rows_in_bucket(by_name[bucket], key)
        assert len(got) == len(expected[person])
        for got_row, want_row in zip(got, expected[person], strict=True):
            assert all(_same(g, w) for g, w in zip(got_row, want_row, strict=True)), (got_row, want_row)
        for other, layout in buckets:  # nobody else's bucket gives them anything
            assert other == bucket or rows_in_bucket(layout, key) == []
    stranger = keys_of(["not in the batch"])[0]
    assert all(rows_in_bucket(layout, stranger) == [] for _, layout in buckets)


@pytest.mark.parametrize(
    ("people", "chars"),
    [
        (1, 1),
        (BUCKET_PEOPLE * 8 * 64, 1),
        (BUCKET_PEOPLE * 8 * 64 + 1, 2),
        (BUCKET_PEOPLE * 8 * 64**2, 2),
        (BUCKET_PEOPLE * 8 * 64**2 + 1, 3),
        (10**12, 4),
    ],
)
def test_buckets_grow_with_the_batch_and_stay_shorter_than_a_person_key(people: int, chars: int) -> None:
    assert bucket_chars(people) == chars <= MAX_BUCKET_CHARS < PERSON_KEY_LENGTH


@pytest.mark.parametrize("people", [10, 2_000, 16_385, 400_000, 1_048_576, 1_048_577, 30_000_000, 67_108_864])
def test_average_buckets_stay_within_eight_times_the_set_size_either_way(people: int) -> None:
    average = people / 64 ** bucket_chars(people)
    assert people < BUCKET_PEOPLE * 8 or BUCKET_PEOPLE / 8 <= average <= BUCKET_PEOPLE * 8


def test_a_batch_of_many_people_has_buckets_of_about_the_set_size() -> None:
    n = BUCKET_PEOPLE * 8 * 64 * 3  # two characters: 4,096 buckets
    pseudonyms = [f"person-{i}" for i in range(n)]
    table = pa.table(
        {
            PSEUDONYM_COLUMN: pa.array(pseudonyms, pa.string()),
            **{c: pa.nulls(n, stored_schema("ER_PRS_F").field(c).type) for c in COLUMNS},
        }
    )
    people, buckets = extract_buckets(table, keys_of)
    assert people == n and all(len(bucket) == 2 for bucket, _ in buckets)
    assert BUCKET_PEOPLE / 8 <= n / len(buckets) <= BUCKET_PEOPLE * 8
