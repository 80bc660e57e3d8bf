# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Vectorised checks of one chunk of a delivered table.

Every check first asks a cheap question of the whole chunk (a min/max, a null count, an ``is_in`` that
is all true) and only looks for the offending rows when the answer is bad, so a clean delivery costs a
handful of passes over each column. Reasons describe the rule broken, never the value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from hygie.ingest.contract import MISSING_DATE
from hygie.ingest.rules import FieldRule, code_values

Violation = tuple[pa.Array, str]
"""A boolean mask over the chunk (true where the rule is broken) and the reason."""

_MISSING = dt.date.fromisoformat(MISSING_DATE)
_EPOCH = dt.date(1970, 1, 1).toordinal()
_PATTERNS = {
    "integer": (r"^-?[0-9]{1,18}$", "not a whole number (at most 18 digits)"),
    "year": (r"^[0-9]{4}$", "not a year (YYYY)"),
    "date": (r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "not a date (YYYY-MM-DD)"),
    "number": (r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$", "not a number"),
}
_TEXT_PATTERNS = {
    "yearmonth": (r"^[0-9]{4}-(0[1-9]|1[0-2])$", "not a year and month (YYYY-MM)"),
    "month": (r"^(0[1-9]|1[0-2])$", "not a month (01 to 12)"),
    "boolean": (r"^(0|1|true|false)$", "not a boolean (0 or 1)"),
}


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def has_hexadecimal_prefix(column: pa.ChunkedArray | pa.Array) -> bool:
    """Whether a text column holds a value the typed reader would take as a hexadecimal integer (``0x1F``, with the
    spaces or tabs it tolerates around numbers)."""
    return bool(pc.any(pc.match_substring_regex(column, r"^[ \t]*0[xX]")).as_py())


def parse_text(rule: FieldRule, column: pa.Array) -> tuple[pa.Array, Violation | None]:
    """Type a text column the slow, row-exact way (used once a fast typed read has failed)."""
    target = rule.read_type
    if target == pa.string():
        return column, None
    pattern, reason = _PATTERNS[rule.kind]
    # The typed reader of the fast path tolerates spaces and tabs around numbers and dates: so does this one, and
    # nothing more (trimming every Unicode space let a vertical tab through here while the fast reader refused it,
    # and the refusal then named no line).
    column = pc.utf8_trim(column, characters=" \t")
    ok = pc.match_substring_regex(column, pattern)
    cleaned = pc.if_else(ok, column, pa.scalar(None, pa.string()))
    if rule.kind == "date":
        stamps = pc.strptime(cleaned, format="%Y-%m-%d", unit="s", error_is_null=True)
        # strptime rolls impossible days over (2024-02-30 becomes 2024-03-01): keep only exact round trips.
        exact = pc.equal(pc.strftime(stamps, format="%Y-%m-%d"), cleaned)
        typed = pc.if_else(exact, pc.cast(stamps, pa.date32()), pa.scalar(None, pa.date32()))
        reason = "not a real date in the form YYYY-MM-DD"
    else:
        typed = pc.cast(cleaned, target)
    bad = pc.and_(pc.is_valid(column), pc.is_null(typed))
    return typed, ((bad, reason) if _any(bad) else None)


def effective(rule: FieldRule, column: pa.Array) -> pa.Array:
    """The column with coded missing values (1600-01-01) turned into real nulls."""
    if rule.kind == "date":
        return pc.if_else(pc.equal(column, pa.scalar(_MISSING, pa.date32())), pa.scalar(None, pa.date32()), column)
    return column


def violations(rule: FieldRule, column: pa.Array, earliest: dt.date, latest: dt.date) -> Iterator[Violation]:
    """Every way ``column`` (already typed, coded missing values as null) breaks ``rule``."""
    if rule.required and column.null_count:
        yield pc.is_null(column), "a value is required"
    if column.null_count == len(column):
        return
    if rule.kind in _TEXT_PATTERNS:
        pattern, reason = _TEXT_PATTERNS[rule.kind]
        ok = pc.match_substring_regex(column, pattern)
        if not pc.all(ok).as_py():
            yield pc.invert(ok), reason
    if rule.pattern:
        ok = pc.match_substring_regex(column, rule.pattern)
        if not pc.all(ok).as_py():
            yield pc.invert(ok), f"not {rule.pattern_hint or 'in the expected form'}"
    if rule.kind in {"string", "nir"} and (rule.max_length or rule.min_length):
        lengths = pc.utf8_length(column)
        bounds = pc.min_max(lengths).as_py()
        if rule.max_length and bounds["max"] > rule.max_length:
            yield pc.greater(lengths, rule.max_length), f"longer than {rule.max_length} characters"
        if rule.min_length and bounds["min"] < rule.min_length:
            yield pc.less(lengths, rule.min_length), f"shorter than {rule.min_length} characters"
    if rule.kind in {"integer", "number", "year"}:
        if rule.kind == "number":
            finite = pc.is_finite(column)
            if not pc.all(finite).as_py():
                yield pc.invert(finite), "not a finite number"
        bounds = pc.min_max(column).as_py()
        if rule.minimum is not None and bounds["min"] < rule.minimum:
            yield pc.less(column, rule.minimum), f"below the minimum {rule.minimum:g}"
        if rule.maximum is not None and bounds["max"] > rule.maximum:
            yield pc.greater(column, rule.maximum), f"above the maximum {rule.maximum:g}"
        if rule.kind == "integer" and rule.max_length:
            limit = 10**rule.max_length
            if bounds["max"] >= limit or bounds["min"] <= -limit:
                # Not abs(): it wraps around at the smallest int64.
                too_long = pc.or_(pc.greater_equal(column, limit), pc.less_equal(column, -limit))
                yield too_long, f"more than {rule.max_length} digits"
        if rule.kind == "year" and (bounds["min"] < earliest.year or bounds["max"] > latest.year):
            outside = pc.or_(pc.less(column, earliest.year), pc.greater(column, latest.year))
            yield outside, f"not a plausible year ({earliest.year} to {latest.year})"
    if rule.kind == "date":
        # Compared as day numbers: year 0 or 9999 must be an error, not a Python date overflow.
        days = pc.cast(column, pa.int32())
        bounds = pc.min_max(days).as_py()
        first, last = (d.toordinal() - _EPOCH for d in (earliest, latest))
        if bounds["min"] < first:
            yield (
                pc.less(days, first),
                f"implausible date, before {earliest.isoformat()} (a missing date is coded {MISSING_DATE})",
            )
        if bounds["max"] > last:
            yield pc.greater(days, last), "date in the future"
    if rule.enum is not None:
        ok = pc.is_in(pc.cast(column, pa.string()), value_set=pa.array(rule.enum, pa.string()))
        if not pc.all(pc.or_(ok, pc.is_null(column))).as_py():
            yield pc.invert(ok), f"not one of {', '.join(rule.enum)}"
    if rule.code_list is not None:
        codes = code_values(rule.code_list, rule.kind)
        ok = pc.is_in(column, value_set=codes)
        if not pc.all(pc.or_(ok, pc.is_null(column))).as_py():
            yield pc.invert(ok), f"not a code of the {rule.code_list} code list"


def first_rows(mask: pa.Array, limit: int) -> tuple[list[int], int]:
    """Row positions where ``mask`` is true (nulls count as false): the first ``limit`` and the total."""
    mask = pc.fill_null(mask, False)
    total = int(pc.sum(mask).as_py() or 0)
    if total == 0:
        return [], 0
    positions = pc.indices_nonzero(mask)
    return positions.slice(0, limit).to_pylist(), total
