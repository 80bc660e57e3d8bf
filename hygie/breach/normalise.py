# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Values as a leak holds them, put back into the form the vault holds: NIRs, dates, names, postcodes.

Spreadsheets mangle numbers: a NIR shown as 1.99061606165835E+14 (recoverable: a double holds 15 digits
exactly) or 1,99062E+14 (not: digits are gone), a postcode 1234 that was 01234, a birth date as a day count
since 1899-12-30. Each function returns None when nothing trustworthy can be recovered.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from hygie.identity.nir import nir_key

_SCIENTIFIC = re.compile(r"^\d[.,]\d+[eE]\+?\d+$")
_NIR_FORM = re.compile(r"^[0-9]{5}([0-9]{2}|2A|2B)[0-9]{8}$")
"""A compact NIR's form as ``hygie.identity.nir.validate_nir`` accepts it; with the key check below it is the same
test, without python-stdnum's per-character cleaning (a leak has hundreds of thousands of NIRs)."""


def repair_nir(value: str) -> str | None:
    """A valid NIR from what a leak's cell holds, or None."""
    text = value.strip().upper().replace("\u00a0", " ")
    if not text:
        return None
    if _SCIENTIFIC.match(text):
        try:
            number = Decimal(text.replace(",", "."))
        except InvalidOperation:
            return None
        if number != number.to_integral_value():
            return None
        text = str(int(number))
    if re.fullmatch(r"[0-9]{15}\.0+", text):  # a number a spreadsheet wrote as a float (before dots go)
        text = text.split(".")[0]
    compact = re.sub(r"[\s.\-_/]", "", text)
    if _NIR_FORM.match(compact) and nir_key(compact[:13]) == compact[13:]:
        return compact
    return None


def nir_like(value: str) -> bool:
    """Whether a cell looks like a NIR at all (valid or damaged): for sniffing a column's content."""
    compact = re.sub(r"[\s.\-_/]", "", value.strip().upper())
    return bool(re.match(r"^[12][0-9]{4}([0-9]{2}|2A|2B)[0-9]{6,8}$", compact)) or bool(_SCIENTIFIC.match(compact))


_EXCEL_EPOCH = date(1899, 12, 30)
_DATE_FORMS = [
    (re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ].*)?$"), "ymd"),
    (re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"), "ymd"),
    (re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})$"), "dmy"),
    (re.compile(r"^(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{2})$"), "dmy2"),
    (re.compile(r"^(\d{4})(\d{2})(\d{2})$"), "ymd"),
]


def parse_date(value: str, today: date | None = None) -> date | None:
    """A date from the forms leaks use (ISO, French day-first, compact, two-digit years, spreadsheet serials)."""
    text = value.strip()
    if not text:
        return None
    today = today or date.today()
    for form, order in _DATE_FORMS:
        m = form.match(text)
        if not m:
            continue
        a, b, c = (int(g) for g in m.groups())
        if order == "ymd":
            y, mo, d = a, b, c
        else:
            d, mo, y = a, b, c
            if order == "dmy2":
                y += 1900 if y > today.year % 100 else 2000
        try:
            return date(y, mo, d)
        except ValueError:
            return None
    if re.match(r"^\d{4,5}(\.0)?$", text):  # a spreadsheet day serial: 10000 = 1927, 50000 = 2036
        serial = int(float(text))
        if 1000 <= serial <= 60000:
            return _EXCEL_EPOCH + timedelta(days=serial)
    return None


@lru_cache(maxsize=100_000)
def postcode(value: str) -> str | None:
    """Five digits, or None. Cached: matching compares every candidate's postcode (a few thousand distinct values
    nationally) with the row's, and a regular expression per candidate cost a tenth of a large import."""
    digits = re.sub(r"\D", "", value.split(".")[0])
    if len(digits) == 4:  # a leading zero lost in a spreadsheet (Ain, Aisne, Allier...)
        digits = "0" + digits
    return digits if len(digits) == 5 else None


@lru_cache(maxsize=200_000)
def fold(text: str) -> str:
    """Upper case, no accents, hyphens and apostrophes as spaces, single spaces: 'Jean-Édith' → 'JEAN EDITH'.

    Cached: names repeat (a vault of millions holds a few hundred thousand distinct ones), and folding is the
    costliest step of building the blocking index and of parsing a leak. The cache lives in memory only."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^A-Za-z0-9]+", " ", bare).upper().split())


def initial(name: str) -> str:
    folded = fold(name)
    return folded[:1]
