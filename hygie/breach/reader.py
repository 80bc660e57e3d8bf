# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Read a leaked file as found in the wild: CSV or TSV in any encoding and separator, XLSX, or JSON.

Everything happens in memory, from bytes: the clear file is never written anywhere. Cells come back as
strings; spreadsheet cells typed as numbers or dates are turned into the text a person would have typed
(a whole number stored as a float, shown in scientific notation, comes back as its digits; a date cell as
'YYYY-MM-DD').
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from charset_normalizer import from_bytes

from hygie.i18n import N_


class UnreadableFile(ValueError):
    """The file is in no format Hygie reads; the message names the format tried, never file content."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Table:
    format: str
    header: list[str] | None
    """The header row, or None when the first row already holds data."""
    rows: list[list[str]]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        # Spreadsheets hold long numbers as doubles: a 15-digit NIR is exact in a double (< 2^53).
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def detect_format(name: str, blob: bytes) -> str:
    if blob[:4] == b"PK\x03\x04":
        return "xlsx"
    head = blob[:2048].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] in (b"[", b"{"):
        return "json"
    if name.lower().endswith((".tsv", ".tab")):
        return "tsv"
    return "csv"


_FRENCH = frozenset("àâäçéèêëîïôöùûüÿœæÀÂÄÇÉÈÊËÎÏÔÖÙÛÜŸŒÆ«»‘’“”€°²–—…\u00a0ºª·")
"""The non-ASCII characters a French file holds; a Windows-1252 reading that yields others is the wrong one."""


def _reads_as_french_cp1252(sample: bytes) -> bool:
    """Whether the bytes read as Windows-1252 French text: no control character but tab and line ends, and at
    least 9 in 10 of the non-ASCII characters French letters or punctuation (an IBM 850 or Mac file read as
    Windows-1252 gives '‚' or 'Ž' for 'é')."""
    try:
        text = sample.decode("cp1252")
    except UnicodeDecodeError:
        return False
    if any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        return False
    others = [c for c in text if ord(c) > 127]
    return sum(c in _FRENCH for c in others) >= 0.9 * len(others)


def decode(blob: bytes) -> str:
    """Text of a file in an unknown encoding: UTF-8 (with or without BOM); else Windows-1252 when it reads as
    French text (the legacy encoding of nearly every French export, and one that statistical detectors
    mistake for Central European or Asian encodings on short files); else charset-normalizer's guess."""
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    sample = blob[:200_000]
    if _reads_as_french_cp1252(sample):
        try:
            return blob.decode("cp1252")
        except UnicodeDecodeError:
            pass  # an undefined byte further on: not Windows-1252 after all
    best = from_bytes(sample).best()
    encoding = best.encoding if best is not None else "cp1252"
    return blob.decode(encoding, errors="replace")


_SEPARATORS = [",", ";", "\t", "|"]


def _separator(text: str) -> str:
    sample = "\n".join(text[:200_000].splitlines()[:50])  # not the whole file: a leak can be 100 MB
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(_SEPARATORS)).delimiter
    except csv.Error:
        # The separator that splits the sample's lines into the most equal number of fields wins.
        lines = [line for line in sample.splitlines() if line.strip()]
        best, best_score = ",", -1.0
        for sep in _SEPARATORS:
            counts = [len(next(csv.reader([line], delimiter=sep))) for line in lines]
            if not counts or max(counts) < 2:
                continue
            score = counts.count(max(set(counts), key=counts.count)) / len(counts) * max(counts)
            if score > best_score:
                best, best_score = sep, score
        return best


def _text_rows(text: str, delimiter: str | None) -> list[list[str]]:
    sep = delimiter or _separator(text)
    stripped = (list(map(str.strip, r)) for r in csv.reader(io.StringIO(text), delimiter=sep))
    return [r for r in stripped if any(r)]


def _xlsx_rows(blob: bytes) -> list[list[str]]:
    from openpyxl import load_workbook  # type: ignore[import-untyped]

    book = load_workbook(io.BytesIO(blob), read_only=True, data_only=True)
    try:
        sheet = max(book.worksheets, key=lambda s: s.max_row or 0)  # the leak is on the fullest sheet
        rows = [[_cell(v) for v in r] for r in sheet.iter_rows(values_only=True)]
    finally:
        book.close()
    return [r for r in rows if any(r)]


def _json_rows(text: str) -> tuple[list[str], list[list[str]]]:
    data = json.loads(text)
    if isinstance(data, dict):
        # {"patients": [...]} and the like: the largest list in the object holds the records.
        lists = [v for v in data.values() if isinstance(v, list)]
        if not lists:
            raise UnreadableFile(N_("a JSON leak needs a list of records (or an object holding one)"))
        data = max(lists, key=len)
    if not isinstance(data, list):
        raise UnreadableFile(N_("a JSON leak needs a list of records"))
    if data and all(isinstance(r, list) for r in data):
        return [], [[_cell(v) for v in r] for r in data]
    header: list[str] = []
    for record in data:
        if isinstance(record, dict):
            header += [k for k in record if k not in header]
    rows = [[_cell(r.get(k)) if isinstance(r, dict) else "" for k in header] for r in data]
    return header, rows


_DATA_LIKE = re.compile(r"^[\d\s.,/+:-]{4,}$|@")


def _looks_like_header(row: list[str]) -> bool:
    """A header row holds words, not numbers, dates or e-mail addresses."""
    filled = [c for c in row if c]
    return bool(filled) and not any(_DATA_LIKE.search(c) for c in filled)


def read_table(name: str, blob: bytes) -> Table:
    fmt = detect_format(name, blob)
    try:
        if fmt == "json":
            header, rows = _json_rows(decode(blob))
            return Table(fmt, header or None, rows)
        rows = _xlsx_rows(blob) if fmt == "xlsx" else _text_rows(decode(blob), "\t" if fmt == "tsv" else None)
    except UnreadableFile:
        raise
    except Exception as exc:  # openpyxl, csv and json raise many kinds; the leak's content is never echoed
        raise UnreadableFile(
            N_("the file could not be read as {format} ({error})", format=fmt.upper(), error=type(exc).__name__)
        ) from None
    if not rows:
        raise UnreadableFile(N_("the file holds no rows"))
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    if _looks_like_header(rows[0]):
        if len(rows) == 1:
            raise UnreadableFile(N_("the file holds a header row and no data rows"))
        return Table(fmt, rows[0], rows[1:])
    return Table(fmt, None, rows)
