# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Staging groups rows by care month on its writing thread: each staged file holds its month's rows and only them,
every row once, in the order they were given within a month."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hygie.hub import Hub

UNKNOWN = "unknown"
SCHEMA = pa.schema([("n", pa.int64()), ("label", pa.string())])
MONTHS = st.sampled_from(["2024-01", "2024-02", "2023-12", UNKNOWN])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=st.lists(st.lists(MONTHS, max_size=40), min_size=1, max_size=4))
def test_rows_land_in_their_months_file_in_order(hub: Hub, chunks: list[list[str]]) -> None:
    expected: dict[str | None, list[int]] = defaultdict(list)
    n = 0
    with hub.warehouse.staging(uuid.uuid4().hex, {"T": SCHEMA}) as staging:
        for months in chunks:
            numbers = list(range(n, n + len(months)))
            n += len(months)
            data = pa.table({"n": numbers, "label": [f"row {i}" for i in numbers]}, schema=SCHEMA)
            staging.append_by_month("T", data, pa.array(months, pa.string()), UNKNOWN)
            for month, number in zip(months, numbers, strict=True):
                expected[None if month == UNKNOWN else month].append(number)
        staged = staging.close()
        found: dict[str | None, list[int]] = defaultdict(list)
        decryption = hub.warehouse.crypto.decryption_properties()
        for f in staged:
            rows = pq.read_table(f.path, decryption_properties=decryption)
            assert rows.num_rows == f.rows
            assert rows.column("label").to_pylist() == [f"row {i}" for i in rows.column("n").to_pylist()]
            found[f.care_month] += rows.column("n").to_pylist()
    assert found == expected
