# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""A leak's rows parsed column by column: what :class:`hygie.breach.matcher.RowParser` does to one row, done to a
chunk of rows at once.

A leak of half a million rows holds a few tens of thousands of distinct names, dates and postcodes: each cleaning
function (strip, fold, date and postcode repair) runs once per distinct value of a column (Arrow dictionary
encoding), and the NIR check — distinct per row — is done in numpy for the common compact form (13 digits and a
key), python only handling the damaged rest. Nothing is written anywhere: the columns live in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from functools import lru_cache
from itertools import zip_longest
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hygie.breach.mapping import CATEGORY, Column, Field
from hygie.breach.normalise import fold, parse_date, postcode, repair_nir

_COMPACT = "^[0-9]{15}$"
IDENTIFYING = frozenset({"nir", "last_name", "first_name", "full_name", "birth_date", "postcode"})
"""The fields matching reads; the others only tell which categories of data a row exposes."""


def per_distinct(values: Sequence[str], fn: Callable[[str], Any]) -> list[Any]:
    """``fn`` of each value, computed once per distinct value."""
    if not values:
        return []
    encoded = pc.dictionary_encode(pa.array(values, pa.string()))
    mapped = np.empty(len(encoded.dictionary), dtype=object)
    mapped[:] = [fn(v) for v in encoded.dictionary.to_pylist()]
    return mapped[encoded.indices.to_numpy()].tolist()  # type: ignore[no-any-return]


def repair_nirs(values: Sequence[str]) -> list[str | None]:
    """:func:`repair_nir` of each cell; 15 plain digits with a right key are checked in numpy."""
    if not values:
        return []
    cells = pa.array(values, pa.string())
    plain = pc.fill_null(pc.match_substring_regex(cells, _COMPACT), False).to_numpy(zero_copy_only=False)
    out: list[str | None] = [None] * len(values)
    if plain.any():
        digits = pc.filter(cells, pa.array(plain))
        body = pc.cast(pc.utf8_slice_codeunits(digits, 0, 13), pa.int64()).to_numpy()
        key = pc.cast(pc.utf8_slice_codeunits(digits, 13, 15), pa.int64()).to_numpy()
        good = (97 - body % 97) == key
        for position, nir, ok in zip(np.flatnonzero(plain).tolist(), digits.to_pylist(), good.tolist(), strict=True):
            if ok:
                out[position] = nir
    for position in np.flatnonzero(~plain).tolist():
        out[position] = repair_nir(values[position]) if values[position] else None
    return out


_STRICT_DATES = (("^[12][0-9]{3}-[0-9]{2}-[0-9]{2}$", "%Y-%m-%d"), ("^[0-9]{2}/[0-9]{2}/[12][0-9]{3}$", "%d/%m/%Y"))
"""The two forms most leaks use, written in full: parsed in Arrow, each date checked by writing it back."""


def parse_dates(values: Sequence[str]) -> list[str | None]:
    """ISO birth dates of cells, as :func:`parse_date` reads them; the strict ISO and French forms are parsed in
    Arrow (a date that does not write back to the same text, such as 30 February, goes to Python), the rest of the
    forms once per distinct value in Python."""
    if not values:
        return []
    cells = pa.array(values, pa.string())
    out = np.empty(len(values), dtype=object)
    done = np.zeros(len(values), dtype=bool)
    for pattern, form in _STRICT_DATES:
        strict = pc.fill_null(pc.match_substring_regex(cells, pattern), False)
        if not pc.any(strict).as_py():
            continue
        candidates = cells.filter(strict)
        parsed = pc.strptime(candidates, format=form, unit="s", error_is_null=True)
        same = pc.fill_null(pc.equal(pc.strftime(parsed, format=form), candidates), False).to_numpy(
            zero_copy_only=False
        )
        positions = np.flatnonzero(strict.to_numpy(zero_copy_only=False))[same]
        out[positions] = pc.strftime(parsed.filter(pa.array(same)), format="%Y-%m-%d").to_pylist()
        done[positions] = True
    rest = np.flatnonzero(~done)
    if len(rest):
        out[rest] = per_distinct([values[i] for i in rest.tolist()], _date)
    return out.tolist()


def _stripped(value: str) -> str:
    return value.strip()


def _folded(value: str) -> str:
    return fold(value.strip())


def _date(value: str) -> str | None:
    return _date_in_year(value, date.today().year)


@lru_cache(maxsize=500_000)
def _date_in_year(value: str, year: int) -> str | None:
    # Cached across chunks: a leak's birth dates are a few tens of thousands of days in two or three forms, so
    # most chunk-distinct values were seen in an earlier chunk. Keyed on the year: two-digit years pivot on it.
    born = parse_date(value, date(year, 1, 1))
    return born.isoformat() if born else None


@lru_cache(maxsize=100_000)
def _postcode(value: str) -> str | None:
    return postcode(value.strip())


def transpose(rows: list[list[str]]) -> list[tuple[str, ...]]:
    """The columns of ragged rows (short rows padded with empty cells)."""
    return list(zip_longest(*rows, fillvalue=""))


class Columns:
    """A chunk's identifying values, column by column, in the same forms as :class:`~matcher.Parsed`."""

    def __init__(self, columns: list[Column], rows: list[list[str]]) -> None:
        n = len(rows)
        cells = transpose(rows)
        plan = [(c.column, c.field.value, CATEGORY[c.field]) for c in columns if c.field is not Field.IGNORE]
        names_of_categories = sorted({category for _, _, category in plan})
        bit = {category: 1 << k for k, category in enumerate(names_of_categories)}
        mask = np.zeros(n, dtype=np.int64)
        # The value of a field is that of its first mapped column holding something (a row's first non-empty).
        chosen: dict[str, list[str]] = {}
        for column, name, category in plan:
            raw = cells[column] if column < len(cells) else ("",) * n
            cells_array = pa.array(raw, pa.string())
            present = pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(cells_array)), 0).to_numpy(zero_copy_only=False)
            mask |= np.where(present, bit[category], 0)
            if name not in IDENTIFYING:
                continue  # only its presence counts (categories of data exposed)
            stripped: list[str] = [v.strip() for v in raw] if name == "nir" else per_distinct(raw, _stripped)
            if name not in chosen:
                chosen[name] = stripped
            else:
                chosen[name] = [a or b for a, b in zip(chosen[name], stripped, strict=True)]
        empty = [""] * n
        self.nir_given = [bool(v) for v in chosen.get("nir", empty)]
        self.nir = repair_nirs(chosen["nir"]) if "nir" in chosen else [None] * n
        last = per_distinct(chosen["last_name"], _folded) if "last_name" in chosen else empty
        first = per_distinct(chosen["first_name"], _folded) if "first_name" in chosen else empty
        full = per_distinct(chosen["full_name"], _folded) if "full_name" in chosen else empty
        has_parts = "last_name" in chosen or "first_name" in chosen
        self.names: list[list[str]] = [
            ([n for n in (a, b) if n] if has_parts and (la or fi) else f.split())
            for a, b, f, la, fi in zip(last, first, full, chosen.get("last_name", empty),
                                       chosen.get("first_name", empty), strict=True)
        ]  # fmt: skip
        self.birth_date = parse_dates(chosen["birth_date"]) if "birth_date" in chosen else [None] * n
        self.postcode = per_distinct(chosen["postcode"], _postcode) if "postcode" in chosen else [None] * n
        by_mask = {int(m): [c for c in names_of_categories if int(m) & bit[c]] for m in np.unique(mask)}
        self.categories = [by_mask[m] for m in mask.tolist()]
        """Shared lists per combination of categories: read them, never change them."""
