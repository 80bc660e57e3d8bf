# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A citizen's extract, built column-wise in Arrow, reads back as exactly the rows the warehouse holds: same
people, same rows in the same order, same values (a float stays the same float, whatever its spelling)."""

from __future__ import annotations

import itertools
import json
import math
from datetime import date
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from hygie.governance.citizen_index import PAD_BYTES, extract_documents
from hygie.ingest.contract import PSEUDONYM_COLUMN
from hygie.ingest.rules import stored_schema

COLUMNS = ("EXE_SOI_DTD", "PRS_NAT_REF", "PRS_ACT_QTE", "PRS_PAI_MNT", "BSE_REM_MNT")
amounts = st.none() | st.floats(allow_nan=True, allow_infinity=True)
rows = st.tuples(
    st.sampled_from(["p1", "p2", "p3", "p4"]),
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


def _decoded(document: bytes) -> list[tuple[Any, ...]]:
    out = []
    for d, act, *numbers in json.loads(document):
        out.append(
            (None if d is None else date.fromisoformat(d), act, *(None if n is None else float(n) for n in numbers))
        )
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(rows, min_size=1, max_size=30), st.integers(1, 5))
def test_documents_read_back_as_the_rows(data: list[tuple[Any, ...]], chunk: int) -> None:
    schema = stored_schema("ER_PRS_F")
    names = (PSEUDONYM_COLUMN, *COLUMNS)
    table = pa.table({n: pa.array([r[i] for r in data], schema.field(n).type) for i, n in enumerate(names)})
    table = pa.Table.from_batches(table.to_batches(max_chunksize=chunk))  # several chunks, as files give
    people, documents = extract_documents(table)
    expected = {
        p: [r[1:] for r in group] for p, group in itertools.groupby(sorted(data, key=lambda r: r[0]), lambda r: r[0])
    }
    assert people == sorted(expected)
    for person, document in zip(people, documents, strict=True):
        assert len(document) % PAD_BYTES == 0
        got = _decoded(document)
        assert len(got) == len(expected[person])
        for got_row, want_row in zip(got, expected[person], strict=True):
            assert all(_same(g, w) for g, w in zip(got_row, want_row, strict=True)), (got_row, want_row)
