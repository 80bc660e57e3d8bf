# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Property tests of the leak-value parsers: whatever a cell holds, each returns the vault's form or None."""

from __future__ import annotations

import re
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from hygie.breach.normalise import fold, parse_date, postcode, repair_nir
from hygie.identity.nir import is_valid_nir, nir_key


@st.composite
def nirs(draw: st.DrawFn) -> str:
    body = (
        draw(st.sampled_from("12"))
        + f"{draw(st.integers(0, 99)):02d}{draw(st.integers(1, 12)):02d}"
        + draw(st.sampled_from([f"{d:02d}" for d in range(1, 96) if d != 20] + ["2A", "2B"]))
        + f"{draw(st.integers(1, 999)):03d}{draw(st.integers(1, 999)):03d}"
    )
    return body + nir_key(body)


@given(st.text(max_size=40))
def test_repair_nir_gives_a_valid_nir_or_nothing(cell: str) -> None:
    repaired = repair_nir(cell)
    assert repaired is None or is_valid_nir(repaired)


@given(nirs(), st.sampled_from(["{}", " {} ", "{}.0", "spaced", "dotted"]))
def test_repair_nir_recovers_every_printed_form(nir: str, form: str) -> None:
    if form == "spaced":
        cell = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"
    elif form == "dotted":
        cell = ".".join(nir[i : i + 3] for i in range(0, 15, 3))
    elif form == "{}.0" and not nir.isdigit():
        return  # only a number becomes a float in a spreadsheet, and a Corsican NIR is not one
    else:
        cell = form.format(nir)
    assert repair_nir(cell) == nir


@given(nirs())
def test_a_spreadsheet_double_is_recovered_only_when_no_digit_was_lost(nir: str) -> None:
    if not nir.isdigit():
        return  # Corsican NIRs are never numbers to a spreadsheet
    full = f"{nir[0]}.{nir[1:]}E+14"  # 15 significant digits: exact in a double
    assert repair_nir(full) == nir
    short = f"{nir[0]},{nir[1:6]}E+14"  # what a narrow column shows: digits are gone, and so is the key
    assert repair_nir(short) is None


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2025, 12, 31)))
def test_parse_date_reads_the_forms_leaks_use(day: date) -> None:
    for cell in (day.isoformat(), day.strftime("%d/%m/%Y"), day.strftime("%d.%m.%Y"), day.strftime("%Y%m%d"),
                 f" {day.strftime('%d-%m-%Y')} "):  # fmt: skip
        assert parse_date(cell) == day, cell


@given(st.text(max_size=30))
def test_parse_date_never_raises(cell: str) -> None:
    parsed = parse_date(cell)
    assert parsed is None or isinstance(parsed, date)


@given(st.text(max_size=30))
def test_fold_is_idempotent_and_plain(name: str) -> None:
    folded = fold(name)
    assert fold(folded) == folded
    assert re.fullmatch(r"(?:[A-Z0-9]+(?: [A-Z0-9]+)*)?", folded)


@given(st.text(max_size=12))
def test_postcode_is_five_digits_or_nothing(cell: str) -> None:
    code = postcode(cell)
    assert code is None or re.fullmatch(r"[0-9]{5}", code)


@given(st.integers(1000, 99999))
def test_postcode_restores_a_lost_leading_zero(number: int) -> None:
    assert postcode(str(number)) == f"{number:05d}"
    assert postcode(f"{number}.0") == f"{number:05d}"
