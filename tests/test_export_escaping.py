# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Tables Hygie writes out (hygie/tabular.py): a cell a spreadsheet would execute never leaves unescaped, numbers
stay numbers. The HTTP attack on the analysis download is in tests/analysis/test_download_escaping.py."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from hygie.analysis.dummy import _zip
from hygie.tabular import DANGEROUS, safe_cell, safe_table, write_csv, write_dict_csv

ATTACKS = ['=HYPERLINK("http://x","y")', "=cmd|' /C calc'!A0", '+HYPERLINK("http://x")', "-2+3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1", "\n=1+1", "＝1+1"]  # fmt: skip

texts = st.one_of(st.text(max_size=12), st.builds(lambda c, t: c + t, st.sampled_from(DANGEROUS), st.text(max_size=8)))
numbers = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12), st.floats(allow_nan=False, allow_infinity=False)
)
cells = st.one_of(texts, numbers, st.none())


def _read(text: str) -> list[list[Any]]:
    """Parsed back the strict way: an unquoted cell must be a number (float), a quoted one stays text."""
    return list(csv.reader(io.StringIO(text, newline=""), quoting=csv.QUOTE_NONNUMERIC))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=6))
def test_no_written_cell_starts_dangerous_and_numbers_round_trip(rows: list[list[Any]]) -> None:
    back = _read(write_csv(rows))
    assert len(back) == len(rows)
    for written, read in zip(rows, back, strict=True):
        assert len(read) == len(written)
        for value, cell in zip(written, read, strict=True):
            if isinstance(value, str):
                assert isinstance(cell, str) and not cell.startswith(DANGEROUS)
                assert cell == (value if not value.startswith(DANGEROUS) else "'" + value)  # nothing else changes
            elif value is None:
                assert cell == ""
            else:
                assert cell == float(value)  # unquoted: a spreadsheet reads a number, -2.5 stays -2.5


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(texts, st.integers(-(10**9), 10**9), st.floats(allow_nan=False, allow_infinity=False)),
                min_size=1, max_size=8))  # fmt: skip
def test_arrow_tables_are_escaped_the_same_way(rows: list[tuple[str, int, float]]) -> None:
    table = pa.table({"label": [r[0] for r in rows], "-delta": [r[1] for r in rows], "mean": [r[2] for r in rows]})
    out = io.BytesIO()
    pacsv.write_csv(safe_table(table), out)
    back = _read(out.getvalue().decode())
    assert back[0] == ["label", "'-delta", "mean"]
    for (text, number, real), (cell, n, x) in zip(rows, back[1:], strict=True):
        assert cell == safe_cell(text) and not cell.startswith(DANGEROUS)
        assert (n, x) == (number, real)  # unquoted numbers, negative ones readable


def test_each_attack_is_neutralised_and_quoted() -> None:
    text = write_dict_csv([{"=x": a, "n": -3} for a in ATTACKS], ["=x", "n"])
    lines = text.splitlines()
    assert lines[0] == '"\'=x","n"'
    assert '"\'=HYPERLINK(""http://x"",""y"")",-3' in lines
    for row, attack in zip(_read(text)[1:], ATTACKS, strict=True):
        assert row == ["'" + attack, -3.0]
    assert write_csv([[True, None, "a-b", " =1"]]) == '"True","","a-b"," =1"\n'  # not first: nothing to escape


def test_the_dummy_data_zip_escapes_its_csv_files_not_its_parquet_files() -> None:
    table = pa.table({"NOM": ATTACKS, "AGE": list(range(-4, len(ATTACKS) - 4))})
    with zipfile.ZipFile(io.BytesIO(_zip({"T": table}, "readme"))) as archive:
        rows = _read(archive.read("csv/T.csv").decode())
        parquet = archive.read("parquet/T.parquet")
    assert rows[0] == ["NOM", "AGE"]
    assert [r[0] for r in rows[1:]] == ["'" + a for a in ATTACKS]
    assert [r[1] for r in rows[1:]] == [float(a) for a in range(-4, len(ATTACKS) - 4)]
    assert pq.read_table(io.BytesIO(parquet)).column("NOM").to_pylist() == ATTACKS  # data files keep the values
