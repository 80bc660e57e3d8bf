# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Tables Hygie writes out for people to open: cells a spreadsheet would execute are neutralised.

Values are stored as delivered (a name may really start with ``=`` or ``-``); only what is written out for a
spreadsheet is escaped, here, for every writer (OWASP "CSV Injection"): a *text* cell starting with ``=``, ``+``,
``-``, ``@``, a tab, a carriage return or a line feed (or the full-width ``＝ ＋ － ＠`` some spreadsheets read as
their ASCII forms) gets a leading single quote, and every text cell of a CSV is quoted. Numbers written as numbers
(``int``, ``float``, ``Decimal``, and pyarrow's numeric columns) are left alone, so a genuine ``-2.5`` stays a
readable negative number; a negative number carried as text is escaped like any other text.

This module imports nothing from Hygie: every layer may use it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

DANGEROUS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""First characters that make a spreadsheet read a text cell as a formula (or hide one behind a blank)."""

_DANGEROUS_START = "^([" + re.escape("".join(DANGEROUS)) + "])"
"""The same characters as a pattern for pyarrow (RE2); ``^`` matches at the start of the cell only."""


def safe_cell(value: Any) -> Any:
    """``value`` as it may be written out: text starting with a dangerous character gets a leading ``'``;
    anything else (numbers, ``None``) is returned unchanged."""
    if isinstance(value, str) and value.startswith(DANGEROUS):
        return "'" + value
    return value


def write_csv(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None, *, delimiter: str = ",") -> str:
    """RFC 4180 text (LF line ends) of ``header`` then ``rows``: text cells escaped by :func:`safe_cell` and quoted,
    numbers unquoted, ``None`` an empty quoted cell."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    if header is not None:
        writer.writerow([safe_cell(str(h)) for h in header])
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return buffer.getvalue()


def write_dict_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """:func:`write_csv` of dict rows in ``columns`` order (keys outside ``columns`` are left out)."""
    return write_csv(([row.get(c) for c in columns] for row in rows), columns)


def _csv_cell(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return safe_cell(value)
    if isinstance(value, bool):
        return str(value)  # quoted text "True"/"False", never the number 1 or 0
    if isinstance(value, int | float | Decimal):
        return value  # written unquoted as its digits: a spreadsheet reads a number, never a formula
    return safe_cell(str(value))  # dates and anything else: their text, escaped


def safe_table(table: pa.Table) -> pa.Table:
    """``table`` with its column names and every text column's dangerous cells escaped as :func:`safe_cell`
    does; other columns' values as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
            column = column.cast(kind)
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            column = pc.replace_substring_regex(column, pattern=_DANGEROUS_START, replacement="'\\1")
        columns.append(column)
    fields = [pa.field(safe_cell(f.name), c.type) for f, c in zip(table.schema, columns, strict=True)]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))
