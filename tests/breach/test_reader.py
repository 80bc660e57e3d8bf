# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Reading a leaked file as found: separators and encodings guessed, rows kept in order, nothing invented."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hygie.breach.reader import UnreadableFile, read_table

HEADER = ["Nom", "Prénom", "Ville", "Commentaires"]
_CELL = st.text(alphabet="abcdefghijklmnopqrstuvwxyzéèçàô -'ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12)


@given(
    st.lists(st.lists(_CELL, min_size=4, max_size=4), min_size=1, max_size=30),
    st.sampled_from([",", ";", "\t", "|"]),
    st.sampled_from(["utf-8", "utf-8-sig", "cp1252"]),
)
def test_a_csv_reads_back_row_for_row(rows: list[list[str]], sep: str, encoding: str) -> None:
    rows = [[c.strip() or "x" for c in r] for r in rows]
    out = io.StringIO()
    csv.writer(out, delimiter=sep).writerows([HEADER, *rows])
    table = read_table("fuite.csv", out.getvalue().encode(encoding))
    assert table.header == HEADER
    assert table.rows == rows


def test_a_header_without_data_rows_is_refused() -> None:
    with pytest.raises(UnreadableFile, match="no data rows"):
        read_table("fuite.csv", ";".join(HEADER).encode() + b"\n")
    with pytest.raises(UnreadableFile, match="no rows"):
        read_table("fuite.csv", b"\n\n")
