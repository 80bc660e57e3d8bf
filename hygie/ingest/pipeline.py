# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""Ingestion of delivery batches: check everything, split identities off, pseudonymise, store encrypted.

All or nothing per batch: rows are staged (encrypted) while the batch is checked, and published only if
the whole batch is clean, in one catalog transaction with its identity-vault records. Any error, a crash
or a kill leaves the warehouse as it was (see :mod:`hygie.warehouse.store` for recovery).
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import mmap
import re
import sys
import uuid
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import structlog
from sqlalchemy import select

from hygie import faults
from hygie.audit import Outcome, record, record_now
from hygie.governance.citizen_index import EXTRACT_COLUMNS, index_batch
from hygie.hub import Hub
from hygie.identity.nir import InvalidNIR, valid_nirs, validate_nir
from hygie.identity.pseudonym import active_version
from hygie.ingest import checks
from hygie.ingest.claims import KnownClaims, hashes
from hygie.ingest.contract import (
    BENEFICIARY_TABLE,
    CARE_TABLE,
    DCIR_KEYS,
    DETAIL_TABLES,
    IDENTITY_COLUMNS,
    INGEST_ORDER,
    MANIFEST,
    NIR_COLUMN,
    PSEUDONYM_COLUMN,
    TABLES,
)
from hygie.ingest.errors import DeliveryError, ErrorLog
from hygie.ingest.manifest import Manifest, read_manifest
from hygie.ingest.rules import FieldRule, rules, stored_schema
from hygie.warehouse.catalog import BatchRow
from hygie.warehouse.store import StagedFile, Staging

log = structlog.get_logger("hygie.ingest")
INGEST_ACTOR = "console"
"""Deliveries are taken in at the operator's console (``hygie ingest``)."""

Progress = Callable[[int], None]
"""Called with the number of rows just processed."""

UNKNOWN_MONTH = "unknown"
_DIGEST_BLOCK_BYTES = 16 << 20
_BLOCK_BYTES = 64 << 20
_MAX_HEADER_BYTES = 16 << 10
_COLUMN_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,31}$")
_SEGMENT_BYTES = 192 << 20
"""Bytes of CSV parsed at once on the fast path (about a million care rows)."""
_MAX_DELAY_DAYS_PER_MONTH = 31
_UTF8_BLOCK_BYTES = 16 << 20
NOT_UTF8 = "not UTF-8 text"


@dataclass
class BatchResult:
    batch_dir: Path
    batch_id: str | None
    status: str
    """accepted, duplicate or rejected."""
    rows: dict[str, int] = field(default_factory=dict)
    errors: list[DeliveryError] = field(default_factory=list)
    errors_not_shown: int = 0
    note: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "batch_id": self.batch_id,
            "status": self.status,
            "rows": self.rows,
            "errors": [e.as_dict() for e in self.errors],
        }
        if self.errors_not_shown:
            out["errors_not_shown"] = self.errors_not_shown
        if self.note:
            out["note"] = self.note
        return out


class _FastPathFailed(Exception):
    """The typed CSV reader refused a value: re-read the file as text to find every error exactly."""


@dataclass
class _Pending:
    """What batches committing beside this one add, should they commit: checked as if already stored, so that
    the next batch is checked while they commit. Should one fail, every batch after it is checked again."""

    batches: frozenset[str] = frozenset()
    beneficiaries: frozenset[str] = frozenset()
    claims: tuple[KnownClaims, ...] = ()


@dataclass
class _TableState:
    keys: list[pa.Table] = field(default_factory=list)
    stored: list[pa.Table] = field(default_factory=list)


class _BatchIngestion:
    def __init__(
        self,
        hub: Hub,
        batch_dir: Path,
        manifest: Manifest,
        progress: Progress | None,
        pending: _Pending,
        ahead: _ReadAhead,
        following: Path | None,
    ) -> None:
        self.hub = hub
        self.pending = pending
        self.ahead = ahead
        self.following = following
        """The batch to be taken after this one, if known: its files are read ahead."""
        self.present: list[str] = []
        """The tables this batch delivers, in the order they are checked."""
        self.dir = batch_dir
        self.manifest = manifest
        self.progress = progress
        settings = hub.settings
        self.errors = ErrorLog(settings.ingest_max_errors)
        self.earliest = dt.date.fromisoformat(settings.earliest_plausible_date)
        self.latest = datetime.now(UTC).date()
        self.max_delay_days = settings.ingest_max_delay_months * _MAX_DELAY_DAYS_PER_MONTH
        self.nir_reason: dict[str, str | None] = {}
        self.beneficiaries: set[str] = set()
        self.identities: list[pa.Table] = []
        self.care_keys: pa.Table | None = None
        self.extracts: list[pa.Table] = []
        """The care rows' columns a citizen is shown, kept from the check for the batch's extracts: read back
        from the encrypted files, they cost a decryption of the whole batch again."""
        self.details: dict[str, _TableState] = {}
        self.rows: dict[str, int] = {}
        self.physical_lines: dict[str, int] = {}
        self.failed_fast = False
        """A file was refused by the typed reader: the batch is rejected whatever the re-check finds."""
        self.staged: list[StagedFile] = []
        self.token = uuid.uuid4().hex
        self.staging_area = ExitStack()
        self.adds = _Pending()
        """What this batch adds to the warehouse once committed (for checking the batches after it)."""
        self.claim_hashes: pa.Table | None = None
        self.care_file_ids: list[int] = []
        self.session = hub.session()
        self.vault = hub.vault(self.session)
        # Read under the ingestion lock, which a pseudonym rotation's switch also holds: a batch is keyed with
        # the version its catalog commit lands under.
        self.pseudonymiser = hub.pseudonymiser.at(active_version(self.session))

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """A cursor on the process's in-memory DuckDB for ingestion (never spilling: keys are pseudonymous but
        still the batch's data), opened once: opening one costs about 20 ms, several times per batch otherwise.
        What a cursor registers goes with it."""
        database = self.hub.ingest_memo.get("duckdb")
        if database is None:
            database = self.hub.ingest_memo["duckdb"] = duckdb.connect(config={"temp_directory": ""})
        return database.cursor()

    # -- reporting ----------------------------------------------------------------------------------

    @property
    def writing(self) -> bool:
        """Once anything is wrong the batch is lost: stop converting and storing, keep checking."""
        return not self.errors and not self.failed_fast

    def report(self, file: str, lines: pa.Array, mask: pa.Array, column: str | None, reason: str) -> None:
        positions, total = checks.first_rows(mask, max(1, self.errors.room))
        if total:
            self.errors.add_lines(file, pc.take(lines, pa.array(positions)).to_pylist(), total, column, reason)

    # -- files --------------------------------------------------------------------------------------

    def read_header(self, name: str, path: Path) -> list[str] | None:
        """Read and check the header row; report what is wrong with it."""
        header, problems = _header(name, path)
        for column, reason in problems:
            self.errors.add(name, 1, column, reason)
        return None if problems else header

    def ingest_file(self, table: str, staging: Staging) -> None:
        entry = next(f for f in self.manifest.files if f.name == f"{table}.csv")
        path = self.dir / entry.name
        header = self.read_header(entry.name, path)
        if header is None:
            return
        mark = self.errors.mark()
        saved = (
            set(self.beneficiaries),
            self.care_keys,
            len(self.identities),
            self.details.get(table),
            len(self.extracts),
        )
        try:
            count = self.scan(table, entry.name, path, header, staging, diagnose=False)
        except _FastPathFailed:
            # Re-read the whole file exactly: forget what its first segments already contributed.
            self.errors.rollback(mark)
            self.beneficiaries, self.care_keys = saved[0], saved[1]
            del self.identities[saved[2] :]
            del self.extracts[saved[4] :]
            self.details.pop(table, None)
            if saved[3] is not None:
                self.details[table] = saved[3]
            self.failed_fast = True
            before = self.errors.total
            count = self.scan(table, entry.name, path, header, staging, diagnose=True)
            if self.errors.total == before:
                self.errors.add(entry.name, None, None, "the file could not be read as CSV")
        if count is not None and count != self.physical_lines[entry.name]:
            self.errors.add(
                entry.name,
                None,
                None,
                "a quoted value spans several lines: line breaks are not accepted inside values",
            )
        if count is not None and count != entry.rows:
            self.errors.add(
                entry.name, None, None, f"the manifest announces {entry.rows} rows but the file holds {count}"
            )
        self.rows[table] = count or 0
        if table in DETAIL_TABLES and table in self.details:
            self.attach_details(table, entry.name, staging)

    def scan(
        self, table: str, name: str, path: Path, header: list[str], staging: Staging, *, diagnose: bool
    ) -> int | None:
        table_rules = rules(table)
        types = {c: (pa.string() if diagnose else table_rules[c].read_type) for c in header}
        malformed: list[int | None] = []

        def skip_malformed(row: Any) -> str:
            malformed.append(row.number)
            return "skip"

        if not diagnose:
            return self.scan_segments(table, name, path, header, staging, types)
        # Bytes that are not UTF-8 are named by line first: the text reader below cannot report them exactly (and
        # pyarrow fails inside its invalid-row handler when such a row is also malformed).
        undecodable = _lines_not_utf8(path, self.errors.room)
        if undecodable:
            for line in undecodable:
                self.errors.add(name, line, None, NOT_UTF8)
            return None
        try:
            reader = pacsv.open_csv(
                path,
                # The header was read and checked by read_header (quoted or not, after a possible BOM).
                read_options=pacsv.ReadOptions(
                    block_size=_BLOCK_BYTES, encoding="utf8", use_threads=False, column_names=header, skip_rows=1
                ),
                parse_options=pacsv.ParseOptions(
                    newlines_in_values=False,
                    ignore_empty_lines=False,
                    invalid_row_handler=skip_malformed if diagnose else None,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types=types,
                    null_values=[""],
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=True,
                ),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
            if not diagnose:
                raise _FastPathFailed from None
            self.errors.add(name, None, None, _parse_failure(exc))
            return None
        offset = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
                if not diagnose:
                    raise _FastPathFailed from None
                self.errors.add(name, None, None, _parse_failure(exc, offset))
                return None
            lines = pa.array(np.arange(offset + 2, offset + 2 + batch.num_rows, dtype=np.int64))
            for number in sorted(m for m in malformed if m is not None):
                # Skipped malformed rows shift the physical line of every later row.
                lines = pc.if_else(pc.greater_equal(lines, number), pc.add(lines, 1), lines)
            self.check_chunk(table, name, pa.Table.from_batches([batch]), lines, staging, diagnose)
            offset += batch.num_rows
            if self.progress:
                self.progress(batch.num_rows)
            if self.errors.room == 0:
                return None
        for bad_line in malformed:
            self.errors.add(name, bad_line, None, "this row has a different number of fields than the header")
        return offset + len(malformed)

    def scan_segments(
        self, table: str, name: str, path: Path, header: list[str], staging: Staging, types: dict[str, pa.DataType]
    ) -> int | None:
        """The fast path: the file cut at line ends into large segments, each parsed by all cores while the
        previous one is being checked (and, while its last is checked, the next file's first)."""
        offset = 0
        segments = _segments(path)
        span = next(segments, None)
        pending = self.ahead.parse(path, span, header, types) if span is not None else None
        while pending is not None:
            try:
                segment = pending.result()
            except (pa.ArrowInvalid, UnicodeDecodeError):
                raise _FastPathFailed from None
            span = next(segments, None)
            if span is not None:
                pending = self.ahead.parse(path, span, header, types)
            else:
                pending = None
                self.read_ahead_after(table)
            lines = pa.array(np.arange(offset + 2, offset + 2 + segment.num_rows, dtype=np.int64))
            self.check_chunk(table, name, segment, lines, staging, diagnose=False)
            offset += segment.num_rows
            if self.progress:
                self.progress(segment.num_rows)
            if self.errors.room == 0:
                if pending is not None:
                    pending.cancel()
                return None
        return offset

    def read_ahead_after(self, table: str) -> None:
        """Start reading what comes after ``table``: the batch's next file, or the next batch's files."""
        later = self.present[self.present.index(table) + 1 :] if table in self.present else []
        if later:
            self.ahead.parse_first_segment(self.dir, later[0])
        elif self.following is not None:
            manifest = read_manifest(self.following, ErrorLog(1))
            if manifest is not None:
                self.ahead.digest_ahead([self.following / f.name for f in manifest.files])
                present = {manifest.table_of(f.name) for f in manifest.files}
                first = next((t for t in INGEST_ORDER if t in present), None)
                if first is not None:
                    self.ahead.parse_first_segment(self.following, first)

    # -- one chunk ------------------------------------------------------------------------------------

    def check_chunk(
        self, table: str, name: str, chunk: pa.Table, lines: pa.Array, staging: Staging, diagnose: bool
    ) -> None:
        n = chunk.num_rows
        table_rules = rules(table)
        columns: dict[str, pa.Array] = {}
        for column_name, rule in table_rules.items():
            if column_name not in chunk.column_names:
                columns[column_name] = pa.nulls(n, rule.read_type)
                continue
            column = chunk.column(column_name).combine_chunks()
            if diagnose:
                column, broken = checks.parse_text(rule, column)
                if broken is not None:
                    self.report(name, lines, broken[0], column_name, broken[1])
            column = checks.effective(rule, column)
            for mask, reason in checks.violations(rule, column, self.earliest, self.latest):
                self.report(name, lines, mask, column_name, reason)
            columns[column_name] = column
        pseudonyms = None
        if NIR_COLUMN in columns:
            pseudonyms = self.check_nirs(table, name, columns, lines)
        if table == BENEFICIARY_TABLE:
            self.check_beneficiary_consistency(name, columns, lines)
        if table == CARE_TABLE:
            self.check_care_dates(name, columns, lines)
        keys = None
        if table == CARE_TABLE or table in DETAIL_TABLES:
            keys = pa.table({k: columns[k] for k in DCIR_KEYS} | {"__line": lines})
        if table == CARE_TABLE and keys is not None:
            # ISO text of the date cut to year and month: strftime costs several times more.
            months = pc.fill_null(
                pc.utf8_slice_codeunits(pc.cast(columns["EXE_SOI_DTD"], pa.string()), 0, 7), UNKNOWN_MONTH
            )
            part = keys.append_column("__care_month", months)
            self.care_keys = part if self.care_keys is None else pa.concat_tables([self.care_keys, part])
        if table in DETAIL_TABLES and keys is not None:
            # Kept even once the batch is lost, so orphan rows are still reported.
            self.details.setdefault(table, _TableState()).keys.append(keys)
        if not self.writing:
            return
        stored = self.to_stored(table, table_rules, columns, pseudonyms)
        if table == BENEFICIARY_TABLE:
            self.identities.append(pa.table({c: columns[c] for c in (NIR_COLUMN, "BEN_RNG_GEM", *IDENTITY_COLUMNS)}))
            staging.append(table, None, stored)
        elif table == CARE_TABLE:
            self.extracts.append(stored.select([PSEUDONYM_COLUMN, *EXTRACT_COLUMNS]))
            staging.append_by_month(table, stored, months, UNKNOWN_MONTH)
        else:
            self.details[table].stored.append(stored)

    def check_nirs(self, table: str, name: str, columns: dict[str, pa.Array], lines: pa.Array) -> pa.Array:
        nirs = columns[NIR_COLUMN]
        # Each distinct NIR checked and keyed once: a person's rows repeat their NIR (care: several a month).
        distinct = pc.unique(nirs)
        where = pc.index_in(nirs, value_set=distinct)
        distinct_ok = valid_nirs(distinct)
        ok = pc.take(distinct_ok, where)
        if not pc.all(pc.or_(ok, pc.is_null(nirs))).as_py():
            bad = pc.filter(nirs, pc.invert(pc.fill_null(ok, True)))
            by_reason: dict[str, list[str]] = {}
            for nir in pc.unique(bad).to_pylist():
                try:  # stdnum says precisely what is wrong (the vectorised check only says that it is)
                    validate_nir(nir)
                    reason = "not a NIR of 15 characters"
                except InvalidNIR as exc:
                    reason = str(exc)
                by_reason.setdefault(reason, []).append(nir)
            for reason, values in by_reason.items():
                self.report(name, lines, pc.is_in(nirs, value_set=pa.array(values, pa.string())), NIR_COLUMN, reason)
        valid = pc.filter(distinct, pc.fill_null(distinct_ok, False))
        if table == BENEFICIARY_TABLE:
            valid_list: list[str] = valid.to_pylist()
            counts = pc.value_counts(nirs.drop_null())
            twice = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1)).to_pylist()
            again = [u for u in valid_list if u in self.beneficiaries]
            if twice or again:
                mask = pc.is_in(nirs, value_set=pa.array(twice + again, pa.string()))
                self.report(name, lines, mask, NIR_COLUMN, "the same person appears more than once in the batch")
            self.beneficiaries.update(valid_list)
        else:
            unknown = self.unknown_beneficiaries(valid)
            if unknown:
                mask = pc.is_in(nirs, value_set=pa.array(unknown, pa.string()))
                self.report(
                    name,
                    lines,
                    mask,
                    NIR_COLUMN,
                    "no beneficiary with this NIR in IR_BEN_R, in this batch or an earlier one",
                )
        if not self.writing:
            return pa.nulls(len(nirs), pa.string())
        # Null for a missing NIR (checked above as required or not), the pseudonym of each valid one otherwise.
        of_distinct = pc.take(self.pseudonymiser.pseudonym_array(valid), pc.index_in(distinct, value_set=valid))
        return pc.take(of_distinct, where)

    def unknown_beneficiaries(self, nirs: pa.Array) -> list[str]:
        """The NIRs (distinct, valid) that name nobody in this batch's IR_BEN_R nor in the vault."""
        fresh = pc.filter(nirs, pc.invert(pc.is_in(nirs, value_set=self.hub.confirmed_nirs)))
        todo = [n for n in fresh.to_pylist() if n not in self.beneficiaries and n not in self.pending.beneficiaries]
        if not todo:
            return []
        found = self.hub.known_people.contains(self.hub.pseudonymiser.indexes(todo))
        confirmed = [n for n, known in zip(todo, found, strict=True) if known]
        # Only people already in the vault are remembered: this batch's own beneficiaries may still be refused.
        self.hub.confirmed_nirs = pa.concat_arrays([self.hub.confirmed_nirs, pa.array(confirmed, pa.string())])
        return [n for n, known in zip(todo, found, strict=True) if not known]

    def check_beneficiary_consistency(self, name: str, c: dict[str, pa.Array], lines: pa.Array) -> None:
        # Only values that passed their own checks are compared (and cast): the others are already errors.
        nir = pc.if_else(pc.fill_null(valid_nirs(c[NIR_COLUMN]), False), c[NIR_COLUMN], pa.scalar(None, pa.string()))
        born = c["DATE_NAISSANCE"]
        sex_digit = pc.utf8_slice_codeunits(nir, 0, 1)
        self.report(
            name,
            lines,
            pc.not_equal(sex_digit, pc.cast(c["BEN_SEX_COD"], pa.string())),
            "BEN_SEX_COD",
            "does not match the sex digit of the NIR",
        )
        born_year = pc.year(born)
        self.report(
            name,
            lines,
            pc.not_equal(born_year, c["BEN_NAI_ANN"]),
            "BEN_NAI_ANN",
            "does not match the year of DATE_NAISSANCE",
        )
        nir_year = pc.cast(pc.utf8_slice_codeunits(nir, 1, 3), pa.int64())
        self.report(
            name,
            lines,
            pc.not_equal(nir_year, pc.remainder(born_year, 100)),
            "DATE_NAISSANCE",
            "the birth year does not match the year digits of the NIR",
        )
        month_text = pc.if_else(
            pc.fill_null(pc.match_substring_regex(c["BEN_NAI_MOI"], r"^(0[1-9]|1[0-2])$"), False),
            c["BEN_NAI_MOI"],
            pa.scalar(None, pa.string()),
        )
        month = pc.cast(month_text, pa.int64())
        self.report(
            name,
            lines,
            pc.not_equal(month, pc.month(born)),
            "BEN_NAI_MOI",
            "does not match the month of DATE_NAISSANCE",
        )
        self.report(name, lines, pc.less(c["BEN_DCD_DTE"], born), "BEN_DCD_DTE", "death before birth")

    def check_care_dates(self, name: str, c: dict[str, pa.Array], lines: pa.Array) -> None:
        care, flow, made_available = c["EXE_SOI_DTD"], c["FLX_TRT_DTD"], c["FLX_DIS_DTD"]
        self.report(name, lines, pc.less(flow, care), "FLX_TRT_DTD", "the flow is dated before the care")
        self.report(name, lines, pc.less(made_available, flow), "FLX_DIS_DTD", "made available before processing")
        self.report(name, lines, pc.less(c["EXE_SOI_DTF"], care), "EXE_SOI_DTF", "care ends before it starts")
        delay = pc.days_between(care, flow)
        self.report(
            name,
            lines,
            pc.greater(delay, self.max_delay_days),
            "EXE_SOI_DTD",
            f"care more than {self.hub.settings.ingest_max_delay_months} months before its flow",
        )

    # -- storing --------------------------------------------------------------------------------------

    def to_stored(
        self,
        table: str,
        table_rules: dict[str, FieldRule],
        c: dict[str, pa.Array],
        pseudonyms: pa.Array | None,
    ) -> pa.Table:
        schema = stored_schema(table)
        arrays = []
        for f in schema:
            if f.name == PSEUDONYM_COLUMN:
                arrays.append(pseudonyms)
                continue
            rule, value = table_rules[f.name], c[f.name]
            if rule.kind == "month":
                value = pc.cast(value, pa.int32())
            elif rule.kind == "boolean":
                value = pc.is_in(value, value_set=pa.array(["1", "true"]))
                value = pc.if_else(pc.is_null(c[f.name]), pa.scalar(None, pa.bool_()), value)
            arrays.append(pc.cast(value, f.type))
        return pa.Table.from_arrays(arrays, schema=schema)

    def check_care_keys_unique(self) -> None:
        if self.care_keys is None or self.care_keys.num_rows == 0:
            return
        claims: KnownClaims = self.hub.ingest_memo.setdefault("claims", KnownClaims())
        con = self.duckdb()
        claims.refresh(self.hub, con, skip=self.pending.batches)
        self.claim_hashes = hashes(self.care_keys, con)
        stored, repeated = claims.already_stored(self.claim_hashes, self.pending.claims)
        self.report(
            f"{CARE_TABLE}.csv",
            self.care_keys.column("__line").combine_chunks(),
            stored,
            None,
            "this care row (same nine DCIR keys) is already in the warehouse from an earlier batch",
        )
        if not pc.any(repeated).as_py():
            con.close()  # no two rows share a hash, so none share their keys
            return
        try:
            # Only the rows whose hash repeats can repeat their keys: grouped exactly, they name the lines.
            con.register("care", self.care_keys.filter(repeated))
            keys = ", ".join(DCIR_KEYS)
            duplicates = con.execute(
                f"SELECT list(__line ORDER BY __line) FROM care GROUP BY {keys} HAVING count(*) > 1 LIMIT 1000"
            ).fetchall()
        finally:
            con.close()
        for (found,) in duplicates:
            for line in found[1:]:
                self.errors.add(f"{CARE_TABLE}.csv", line, None, f"the nine DCIR keys repeat those of line {found[0]}")

    def attach_details(self, table: str, name: str, staging: Staging) -> None:
        """Find each detail row's care row (same batch) to reject orphans and partition by care month."""
        state = self.details.pop(table)
        keys = pa.concat_tables(state.keys)
        care = self.care_keys if self.care_keys is not None else _empty_care_keys()
        con = self.duckdb()
        try:
            con.register("detail", keys)
            con.register("care", care.drop_columns(["__line"]))
            on = " AND ".join(f"d.{k} = c.{k}" for k in DCIR_KEYS)
            matched: pa.Table = con.sql(
                f"SELECT d.__line, c.__care_month FROM detail d LEFT JOIN care c ON {on} ORDER BY d.__line"
            ).to_arrow_table()
        finally:
            con.close()
        months = matched.column("__care_month").combine_chunks()
        self.report(
            name,
            matched.column("__line").combine_chunks(),
            pc.is_null(months),
            None,
            f"orphan detail row: no {CARE_TABLE} row of this batch has the same nine DCIR keys",
        )
        if self.writing and state.stored:
            stored = pa.concat_tables(state.stored)
            staging.append_by_month(table, stored, months, UNKNOWN_MONTH)

    def seal_identities(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for part in self.identities:
            nirs = part.column(NIR_COLUMN).combine_chunks()
            people = {
                "nir": nirs,
                "rng_gem": pc.cast(part.column("BEN_RNG_GEM"), pa.string()),
                "last_name": part.column("NOM"),
                "first_name": part.column("PRENOM"),
                "birth_date": pc.strftime(part.column("DATE_NAISSANCE"), format="%Y-%m-%d"),
                "address": part.column("ADRESSE"),
                "postcode": part.column("CODE_POSTAL"),
                "commune": part.column("COMMUNE"),
                "phone": part.column("TELEPHONE"),
                "email": part.column("EMAIL"),
            }
            flat = {k: v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v for k, v in people.items()}
            rows.extend(self.vault.seal(flat, self.manifest.batch_id))
        return rows

    # -- the batch ------------------------------------------------------------------------------------

    def prepare(self, recover: bool) -> bool:
        """Check the whole batch and stage it encrypted; true if it can be committed. Reads only: the
        database is not written until :meth:`commit`. ``recover``: nothing is committing beside this batch, so
        what a killed ingestion left can be cleared first."""
        manifest = self.manifest
        if recover:
            self.hub.warehouse.recover(self.session)
        for entry in manifest.files:
            digest, self.physical_lines[entry.name] = self.ahead.digest(self.dir / entry.name)
            if digest != entry.sha256.lower():
                self.errors.add(
                    entry.name,
                    None,
                    None,
                    "checksum mismatch: the file is not the one the manifest describes (truncated or altered?)",
                )
        present = {manifest.table_of(f.name) for f in manifest.files}
        self.present = [t for t in INGEST_ORDER if t in present]
        self.hub.known_people.refresh(self.vault)
        with ExitStack() as stack:
            staging = stack.enter_context(self.hub.warehouse.staging(self.token, {t: stored_schema(t) for t in TABLES}))
            for table in self.present:
                if self.errors.room:
                    self.ingest_file(table, staging)
                    if table == CARE_TABLE:
                        self.check_care_keys_unique()
            if self.errors:
                staging.abort()
                return False
            self.staged = staging.close()
            self.staging_area = stack.pop_all()  # removed once committed, or discarded
        self.session.rollback()  # no read transaction left open while the batches before commit
        self.adds = _Pending(frozenset([manifest.batch_id]), frozenset(self.beneficiaries), self._claims_added())
        return True

    def _claims_added(self) -> tuple[KnownClaims, ...]:
        claims = KnownClaims()
        if self.claim_hashes is not None:
            claims.add(self.claim_hashes)
        return (claims,)

    def commit(self) -> BatchResult:
        """Publish the staged files and commit the batch with its identities, extracts and record."""
        manifest = self.manifest
        try:
            # Sealed here, on the committing thread, which has time to spare while the next batch is checked.
            identity_rows = self.seal_identities()
            faults.point("before-publish")
            files = self.hub.warehouse.publish(self.staged, manifest.batch_id, self.token)
            faults.point("after-publish")
            try:
                self.session.add(
                    BatchRow(
                        batch_id=manifest.batch_id,
                        producer=manifest.producer,
                        content_digest=manifest.content_digest(),
                        created_at=manifest.created_at,
                        accepted_at=datetime.now(UTC),
                        rows=self.rows,
                    )
                )
                self.session.flush()
                self.session.add_all(files)
                care, self.extracts = (pa.concat_tables(self.extracts) if self.extracts else None), []
                index_batch(self.hub, self.session, manifest.batch_id, files, care)  # citizens' extracts, same commit
                self.care_file_ids = [f.id for f in files if f.table_name == CARE_TABLE]  # flushed: numbered
                self.vault.store(identity_rows)
                record(
                    self.session,
                    actor=INGEST_ACTOR,
                    action="delivery.ingest",
                    object=f"batch:{manifest.batch_id}",
                    detail={"status": "accepted", "rows": self.rows},
                )
                self.session.commit()
                faults.point("after-commit")
            except BaseException:
                # Never delete published files here: the commit may have happened before the failure. The next
                # recovery (under the ingestion lock) keeps them if the catalog has the batch, removes them if not.
                self.session.rollback()
                raise
            self.hub.warehouse.settle(self.token)
        finally:
            self.discard()
        return self.result("accepted")

    def discard(self) -> None:
        """Remove the staging area (what was published stays for the catalog or recovery) and the session."""
        self.staging_area.close()
        self.session.close()

    def result(self, status: str) -> BatchResult:
        self.session.close()
        return BatchResult(
            batch_dir=self.dir,
            batch_id=self.manifest.batch_id,
            status=status,
            rows=self.rows,
            errors=list(self.errors.errors),
            errors_not_shown=self.errors.dropped,
        )


class _ReadAhead:
    """Files read ahead of the checks, on one thread: while a file is checked, the next one's first segment is
    parsed (at a batch's last file: the next batch's files digested and its first file's first segment parsed).
    A result is kept under everything it depends on and used only for that same request; at most one parse and
    one batch's digests wait, and nothing is reported from here: the checks read headers and manifests again."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(1, "hygie-csv")
        self._waiting: dict[tuple[object, ...], Future[Any]] = {}

    def parse(
        self, path: Path, span: tuple[int, int], header: list[str], types: dict[str, pa.DataType]
    ) -> Future[pa.Table]:
        found = self._waiting.pop(("parse", path, span, tuple(header)), None)
        return found if found is not None else self._pool.submit(_parse_segment, path, span, header, types)

    def parse_first_segment(self, batch_dir: Path, table: str) -> None:
        path = batch_dir / f"{table}.csv"
        try:
            header, problems = _header(path.name, path)
            segments = _segments(path)
            span = next(segments, None)
            segments.close()
        except OSError:
            return  # the checks will say what is wrong with the file
        if problems or span is None:
            return
        table_rules = rules(table)
        types = {c: table_rules[c].read_type for c in header}
        self._drop("parse")
        self._waiting[("parse", path, span, tuple(header))] = self._pool.submit(
            _parse_segment, path, span, header, types
        )

    def digest(self, path: Path) -> tuple[str, int]:
        found = self._waiting.pop(("digest", path), None)
        return found.result() if found is not None else _digest_and_lines(path)

    def digest_ahead(self, paths: list[Path]) -> None:
        self._drop("digest")
        for path in paths:
            self._waiting[("digest", path)] = self._pool.submit(_digest_and_lines, path)

    def _drop(self, kind: str) -> None:
        for key in [k for k in self._waiting if k[0] == kind]:
            self._waiting.pop(key).cancel()

    def close(self) -> None:
        self._drop("parse")
        self._drop("digest")
        self._pool.shutdown(wait=True)


def _header(name: str, path: Path) -> tuple[list[str], list[tuple[str | None, str]]]:
    """The header row of a delivered file and what is wrong with it (column, reason), in reading order. A cell is
    echoed only if it looks like a column name: when the header row is missing, the "header" is a row of data,
    and its values must not appear in any error."""
    contract = TABLES[name.removesuffix(".csv")]
    with path.open("rb") as f:
        raw = f.readline(_MAX_HEADER_BYTES + 1)
    if not raw.strip():
        return [], [(None, "the file is empty: a header row is required")]
    if len(raw) > _MAX_HEADER_BYTES or not raw.endswith(b"\n"):
        return [], [(None, "the header row is missing, too long, or not followed by any line end")]
    try:
        text = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        return [], [(None, NOT_UTF8)]
    try:
        # RFC 4180: cells may be quoted (all, some or none), a quoted cell may hold commas and doubled quotes.
        header = next(csv.reader([text], strict=True))
    except csv.Error:
        return [], [(None, "the header row is not valid CSV (a quote is not closed or is misplaced)")]
    problems: list[tuple[str | None, str]] = []
    seen: set[str] = set()
    for position, column in enumerate(header, start=1):
        if not _COLUMN_NAME.match(column):
            problems.append((None, f"header cell {position} is not a column name (is the header row missing?)"))
            continue
        if column in seen:
            problems.append((column, "column appears twice in the header"))
        seen.add(column)
        if column not in contract.columns:
            hint = " (send the clear NIR in BEN_NIR)" if column == PSEUDONYM_COLUMN else ""
            problems.append((column, f"column not accepted in {contract.name}{hint}"))
    for column in contract.required:
        if column not in seen:
            problems.append((column, "required column missing from the header"))
    return header, problems


def _digest_and_lines(path: Path) -> tuple[str, int]:
    """SHA-256 of the file and its data lines as the bytes count them, in one read."""
    digest = hashlib.sha256()
    breaks, last = 0, b""
    # One buffer read into again: a new 16 MB bytes object per block was faulted in (zeroed) by the kernel
    # each time, a third of this function's time.
    block = bytearray(_DIGEST_BLOCK_BYTES)
    view = memoryview(block)
    with path.open("rb", buffering=0) as f:
        while size := f.readinto(block):
            digest.update(view[:size])
            breaks += block.count(b"\n", 0, size)
            last = bytes(view[size - 1 : size])
    lines = 0 if not last else max(0, breaks - 1 + (0 if last == b"\n" else 1))
    return digest.hexdigest(), lines


def _lines_not_utf8(path: Path, limit: int) -> list[int]:
    """The physical lines (the header is line 1) holding bytes that are not UTF-8: the first ``limit`` of them, and
    one more if there are more. Large blocks are decoded at once; after an error the scan resumes at the next line."""
    found: list[int] = []
    line, skipping = 1, False
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_UTF8_BLOCK_BYTES), b""):
            start = 0
            while start < len(block):
                if skipping:  # the rest of a line already reported
                    end = block.find(b"\n", start)
                    if end < 0:
                        break
                    line, start, skipping = line + 1, end + 1, False
                    continue
                buffered = len(decoder.getstate()[0])  # the unfinished character of the previous block, if any
                try:
                    decoder.decode(block[start:] if start else block)
                except UnicodeDecodeError as exc:
                    at = start + max(0, exc.start - buffered)
                    line += block.count(b"\n", start, at)
                    found.append(line)
                    if len(found) > limit:
                        return found
                    decoder.reset()
                    start, skipping = at, True
                    continue
                line += block.count(b"\n", start)
                break
    if not skipping:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            found.append(line)
    return found


def _segments(path: Path) -> Generator[tuple[int, int], None, None]:
    """Byte ranges of the data rows, cut at line ends about every ``_SEGMENT_BYTES``."""
    size = path.stat().st_size
    if size == 0:
        return
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as view:
        start = view.find(b"\n") + 1
        if start == 0:
            return
        while start < size:
            end = view.find(b"\n", min(start + _SEGMENT_BYTES, size - 1))
            end = size if end < 0 else end + 1
            yield start, end
            start = end


def _parse_segment(
    path: Path, span: tuple[int, int] | None, header: list[str], types: dict[str, pa.DataType]
) -> pa.Table | None:
    if span is None:
        return None
    start, end = span
    source = pa.memory_map(str(path))
    try:
        data = source.read_at(end - start, start)
    finally:
        source.close()
    table = _read_segment(data, header, types)
    if _hexadecimal_integers(data, header, types):
        raise pa.ArrowInvalid("a hexadecimal integer")  # the exact re-read names each one by line and field
    return table


def _read_segment(data: bytes, header: list[str], types: dict[str, pa.DataType]) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=header, block_size=_BLOCK_BYTES // 4, encoding="utf8"),
        # A blank line is a malformed row, not something to skip: skipping would shift every later line.
        parse_options=pacsv.ParseOptions(newlines_in_values=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True
        ),
    )


def _hexadecimal_integers(data: bytes, header: list[str], types: dict[str, pa.DataType]) -> bool:
    """Whether an integer field of this segment holds a hexadecimal literal, which the typed reader converts
    (``0x1F`` read as 31) where the contract wants decimal digits. Two searches for a byte, about 20 ms per 192 MB,
    rule it out for files with no ``x`` at all (care and detail files); only then are the integer fields read as
    text and looked at."""
    if data.find(b"x") < 0 and data.find(b"X") < 0:
        return False
    if data.find(b"0x") < 0 and data.find(b"0X") < 0:
        return False
    integers = [c for c in header if pa.types.is_integer(types[c])]
    if not integers:
        return False
    text = _read_segment(data, header, {c: (pa.string() if c in integers else t) for c, t in types.items()})
    return any(checks.has_hexadecimal_prefix(text.column(c)) for c in integers)


def _empty_care_keys() -> pa.Table:
    schema = stored_schema(CARE_TABLE)
    return pa.table(
        {k: pa.array([], schema.field(k).type) for k in DCIR_KEYS}
        | {"__line": pa.array([], pa.int64()), "__care_month": pa.array([], pa.string())}
    )


def _parse_failure(exc: Exception, offset: int | None = None) -> str:
    # pyarrow's messages can quote the offending value (possibly an identifier): keep only their kind.
    text = str(exc)
    if "Expected" in text and "columns" in text:
        reason = "a row has a different number of fields than the header (truncated or malformed line)"
    elif "UTF8" in text.upper() or isinstance(exc, UnicodeDecodeError):
        reason = NOT_UTF8
    else:
        reason = "the file could not be parsed as CSV"
    if offset is not None:
        reason += f" (after data row {offset})"
    return reason


def ingest_batch(hub: Hub, batch_dir: Path, progress: Progress | None = None) -> BatchResult:
    """Check and store one batch, accepted whole or rejected whole; the outcome is on the record before this
    returns (an accepted batch's event commits with the batch itself)."""
    return ingest_batches(hub, [batch_dir], progress)[0]


def ingest_batches(
    hub: Hub,
    batch_dirs: Sequence[Path],
    progress: Progress | None = None,
    starting: Callable[[Path], None] | None = None,
) -> list[BatchResult]:
    """Ingest batches in order, each accepted or rejected whole as if alone, the outcomes in the same order.

    The ingestion lock is held for the whole run. Accepted batches commit, in order, on a thread of their own
    while the next ones are checked and staged (both cores busy: most of either step releases the GIL). A batch
    is checked as if the batches still committing were already stored; should one of those commits fail, every
    batch after it is checked again from the start. ``starting`` is called with each batch's folder before it is
    checked.
    """
    results: list[BatchResult] = []
    ahead = _ReadAhead()
    switch = sys.getswitchinterval()
    # The checking thread calls into Arrow thousands of times per batch and needs the GIL back after each call,
    # while the committing thread runs Python (sealing, encrypting extracts): at the default 5 ms, each return
    # could wait that long for the other thread to be told to let go.
    sys.setswitchinterval(_SWITCH_SECONDS)
    try:
        with hub.ingest_lock(), ThreadPoolExecutor(1, "hygie-commit") as committer:
            run = _Run(hub, committer, ahead, progress, results)
            try:
                for i, batch_dir in enumerate(batch_dirs):
                    if starting is not None:
                        starting(batch_dir)
                    run.take(batch_dir, batch_dirs[i + 1] if i + 1 < len(batch_dirs) else None)
                run.settle()
            except BaseException:
                run.broken = True  # interrupted: a commit under way finishes, the batches waiting are not committed
                raise
    finally:
        ahead.close()
        sys.setswitchinterval(switch)
        # The run's NIRs, remembered so that each costs one MAC per run, go with it.
        hub.pseudonymiser.forget()
        hub.confirmed_nirs = pa.array([], pa.string())
    return results


_SWITCH_SECONDS = 0.001
"""The interpreter's thread switch interval during a run of batches (Python's default is 0.005 s)."""
_COMMITTING = 2
"""Batches checked and waiting for (or in) their commit at most: two smooth out batches of unequal cost (the
beneficiaries' batch commits slowly, a month of care is checked slowly) without holding many batches' work."""


class _Run:
    """Batches taken one after another under one holding of the ingestion lock."""

    def __init__(
        self,
        hub: Hub,
        committer: ThreadPoolExecutor,
        ahead: _ReadAhead,
        progress: Progress | None,
        results: list[BatchResult],
    ) -> None:
        self.hub = hub
        self.committer = committer
        self.ahead = ahead
        self.following: Path | None = None
        self.progress = progress
        self.reported: dict[int, tuple[Manifest, int]] = {}
        """Rows of each batch taken (by its manifest: the same folder given twice is two batches) already reported
        to ``progress``; the manifest is held so that its ``id`` is not reused."""
        self.results = results
        self.committing: deque[tuple[_BatchIngestion, Future[BatchResult | None]]] = deque()
        self.broken = False
        """Set on the committing thread when a commit fails: the batches queued after it are not committed."""

    def take(self, batch_dir: Path, following: Path | None) -> None:
        self.following = following
        errors = ErrorLog(self.hub.settings.ingest_max_errors)
        manifest = read_manifest(batch_dir, errors)
        if manifest is None:
            self.settle()
            self.finish(
                BatchResult(batch_dir, None, "rejected", errors=list(errors.errors), errors_not_shown=errors.dropped)
            )
            return
        if any(
            manifest.batch_id == other.manifest.batch_id or manifest.content_digest() == other.manifest.content_digest()
            for other, _ in self.committing
        ):
            self.settle()  # the same batch again: compared with it once it is in the catalog
        screened = _screen(self.hub, batch_dir, manifest)
        if screened is not None:
            self.settle()
            self.finish(screened)
            return
        self.queue(batch_dir, manifest)

    def queue(self, batch_dir: Path, manifest: Manifest) -> None:
        outcome = self.prepare(batch_dir, manifest)
        again = self.wait(everything=isinstance(outcome, BatchResult))
        if again is not None:
            # Checked as if the batches before were stored, and one of their commits failed: check again alone.
            if isinstance(outcome, _BatchIngestion):
                outcome.discard()
            for earlier_dir, earlier in [*again, (batch_dir, manifest)]:
                self.queue(earlier_dir, earlier)
        elif isinstance(outcome, BatchResult):
            self.finish(outcome)
        else:
            self.committing.append((outcome, self.committer.submit(self.commit, outcome)))

    def prepare(self, batch_dir: Path, manifest: Manifest) -> _BatchIngestion | BatchResult:
        """The batch checked and staged, ready to commit; or its outcome if rejected."""
        committing = [ingestion.adds for ingestion, _ in self.committing]
        pending = _Pending(
            frozenset().union(*(p.batches for p in committing)),
            frozenset().union(*(p.beneficiaries for p in committing)),
            tuple(c for p in committing for c in p.claims),
        )
        try:
            ingestion = _BatchIngestion(
                self.hub, batch_dir, manifest, self.progress_of(manifest), pending, self.ahead, self.following
            )
        except Exception as exc:
            return _internal_error(batch_dir, manifest, exc)
        try:
            if ingestion.prepare(recover=not self.committing):
                return ingestion
            return ingestion.result("rejected")
        except Exception as exc:
            ingestion.discard()
            return _internal_error(batch_dir, manifest, exc)

    def progress_of(self, manifest: Manifest) -> Progress | None:
        """``progress`` for one check of a batch: a batch checked again (a commit before it failed) reports only
        the rows its earlier check had not, so a run's progress never passes the rows delivered."""
        report = self.progress
        if report is None:
            return None
        seen, done = self.reported.get(id(manifest), (manifest, 0))[1], 0

        def counted(rows: int) -> None:
            nonlocal done
            fresh = max(0, done + rows - seen) - max(0, done - seen)
            done += rows
            self.reported[id(manifest)] = (manifest, max(seen, done))
            if fresh:
                report(fresh)

        return counted

    def commit(self, ingestion: _BatchIngestion) -> BatchResult | None:
        """On the committing thread: the batch's commit, or None if one before it failed (checked again later)."""
        if self.broken:
            ingestion.discard()
            return None
        try:
            return ingestion.commit()
        except BaseException as exc:
            self.broken = True
            if not isinstance(exc, Exception):
                raise
            return _internal_error(ingestion.dir, ingestion.manifest, exc)

    def wait(self, everything: bool) -> list[tuple[Path, Manifest]] | None:
        """Report the oldest commits until fewer than :data:`_COMMITTING` remain (none if ``everything``). If one
        failed, wait for the rest, which were not committed, and return them to be checked again."""
        while self.committing and (everything or len(self.committing) >= _COMMITTING):
            ingestion, future = self.committing.popleft()
            result = future.result()
            assert result is not None  # the oldest is never skipped: only batches after a failure are
            if result.status == "accepted" and ingestion.claim_hashes is not None:
                claims: KnownClaims = self.hub.ingest_memo.setdefault("claims", KnownClaims())
                claims.learn(ingestion.claim_hashes, ingestion.care_file_ids)
            self.finish(result)
            if result.status != "accepted":
                again = [(ingestion.dir, ingestion.manifest) for ingestion, _ in self.committing]
                for _, skipped in self.committing:
                    skipped.result()
                self.committing.clear()
                self.broken = False
                return again
        return None

    def settle(self) -> None:
        """Wait for every batch committing (checking again, and committing, those after a failed one)."""
        again = self.wait(everything=True)
        while again:
            for batch_dir, manifest in again:
                self.queue(batch_dir, manifest)
            again = self.wait(everything=True)

    def finish(self, result: BatchResult) -> None:
        if result.status != "accepted":
            record_now(
                self.hub.session,
                actor=INGEST_ACTOR,
                action="delivery.ingest",
                outcome=Outcome.OK if result.status == "duplicate" else Outcome.FAILED,
                object=f"batch:{result.batch_id}" if result.batch_id else None,
                detail={"status": result.status, "errors": len(result.errors) + result.errors_not_shown},
            )
        log.info(
            "ingest.batch",
            batch_id=result.batch_id,
            status=result.status,
            rows=result.rows,
            errors=len(result.errors) + result.errors_not_shown,
        )
        self.results.append(result)


def _internal_error(batch_dir: Path, manifest: Manifest, exc: Exception) -> BatchResult:
    # Never str(exc): library messages can quote delivered values. The type is enough to investigate.
    log.error("ingest.internal_error", batch_id=manifest.batch_id, error=type(exc).__name__)
    reason = f"internal error while checking the batch ({type(exc).__name__}); nothing was stored"
    return BatchResult(batch_dir, manifest.batch_id, "rejected", errors=[DeliveryError(MANIFEST, None, None, reason)])


def _screen(hub: Hub, batch_dir: Path, manifest: Manifest) -> BatchResult | None:
    """The outcome of a batch already in the catalog (same id or same content), or None for a new one."""
    with hub.session() as session:
        previous = session.get(BatchRow, manifest.batch_id)
        same_content = session.scalars(
            select(BatchRow).where(BatchRow.content_digest == manifest.content_digest())
        ).first()
    if previous is not None and previous.content_digest != manifest.content_digest():
        return BatchResult(
            batch_dir,
            manifest.batch_id,
            "rejected",
            errors=[
                DeliveryError(
                    MANIFEST,
                    None,
                    "batch_id",
                    "this batch_id was already accepted with different content; send a correction as a new batch",
                )
            ],
        )
    if previous is not None or same_content is not None:
        assert same_content is not None
        altered = [f.name for f in manifest.files if _digest_and_lines(batch_dir / f.name)[0] != f.sha256.lower()]
        if altered:
            # The manifest matches an accepted batch but the files do not: a damaged copy, not a duplicate.
            reason = "checksum mismatch: the file is not the one the manifest describes (truncated or altered?)"
            return BatchResult(
                batch_dir,
                manifest.batch_id,
                "rejected",
                errors=[DeliveryError(name, None, None, reason) for name in altered],
            )
        note = None if previous else f"same content as batch {same_content.batch_id}, already stored"
        return BatchResult(batch_dir, manifest.batch_id, "duplicate", rows=dict(same_content.rows), note=note)
    return None


def expand_batches(paths: list[Path]) -> list[Path]:
    """Batch folders from the command line: a folder with a manifest, or a folder of such folders."""
    out: list[Path] = []
    for path in paths:
        if (path / MANIFEST).exists() or not path.is_dir():
            out.append(path)
        else:
            children = sorted(p for p in path.iterdir() if (p / MANIFEST).exists())
            out.extend(children or [path])
    return out


def planned_rows(batch_dir: Path) -> int:
    errors = ErrorLog(1)
    manifest = read_manifest(batch_dir, errors)
    return sum(f.rows for f in manifest.files) if manifest else 0
