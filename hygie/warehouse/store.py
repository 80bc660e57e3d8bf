# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The warehouse on disk: staging, atomic publication, crash recovery, and reading through DuckDB.

Layout under ``<data dir>/warehouse``::

    <TABLE>/care_month=YYYY-MM/<batch token>-<n>.parquet   published files (listed in the catalog)
    <TABLE>/all/<batch token>-<n>.parquet                    tables without a care date (IR_BEN_R)
    .staging/<batch token>/...                               files of a batch being ingested
    .pending/<batch token>.json                              files being published, until the catalog commit

Every file is encrypted (see :mod:`hygie.warehouse.encryption`), staging included, so an interrupted
ingestion never leaves readable data behind. Publication renames staged files into place, then the caller
commits their catalog rows; :meth:`Warehouse.recover` settles whatever a crash left between the two, touching
only the files a publication intent names.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hygie.warehouse.catalog import BatchRow, FileRow
from hygie.warehouse.encryption import ParquetCrypto

STAGING = ".staging"
PENDING = ".pending"
NO_MONTH = "all"
ROWS_PER_FILE = 4_000_000
"""Roll to a new file past this many rows, so files stay a size every reader handles well."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class StagedFile:
    table: str
    care_month: str | None
    path: Path
    rows: int
    bytes: int = 0
    sha256: str = ""


@dataclass
class _OpenFile:
    writer: pq.ParquetWriter
    staged: StagedFile


@dataclass
class Staging:
    """Encrypted Parquet writers for one batch, one file per (table, care month) at a time."""

    directory: Path
    token: str
    crypto: ParquetCrypto
    schemas: dict[str, pa.Schema]
    _open: dict[tuple[str, str | None], _OpenFile] = field(default_factory=dict)
    _done: list[StagedFile] = field(default_factory=list)
    _counter: int = 0

    _writer: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1, "hygie-parquet"))
    _pending: list[Future[None]] = field(default_factory=list)

    def append(self, table: str, care_month: str | None, data: pa.Table) -> None:
        """Queue rows for writing. Encoding, compression and encryption run on one background thread (they
        release the GIL), so the next chunk is checked while this one is written; order is kept."""
        if data.num_rows == 0:
            return
        self._queue(self._write, table, care_month, data)

    def append_by_month(self, table: str, data: pa.Table, months: pa.Array, unknown: str) -> None:
        """Queue rows for writing by care month (``months``, one per row; ``unknown`` for rows without one).
        The rows are grouped by month on the writing thread too: a gather of every column, it was a tenth of
        the checking thread's time."""
        if data.num_rows == 0:
            return
        self._queue(self._write_by_month, table, data, months, unknown)

    def _queue(self, write: Callable[..., None], *args: object) -> None:
        self._pending.append(self._writer.submit(write, *args))
        if len(self._pending) > 8:
            self._pending.pop(0).result()

    def _write_by_month(self, table: str, data: pa.Table, months: pa.Array, unknown: str) -> None:
        order = pc.sort_indices(months)
        data, months = data.take(order), pc.take(months, order)
        counts = pc.value_counts(months)
        start = 0
        for month, count in sorted(
            zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True)
        ):
            self._write(table, None if month == unknown else month, data.slice(start, count))
            start += count

    def _drain(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def _write(self, table: str, care_month: str | None, data: pa.Table) -> None:
        key = (table, care_month)
        current = self._open.get(key)
        if current is not None and current.staged.rows >= ROWS_PER_FILE:
            self._finish(key)
            current = None
        if current is None:
            self._counter += 1
            month = care_month or NO_MONTH
            path = self.directory / table / month / f"{self.token}-{self._counter:05d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = pq.ParquetWriter(
                path,
                self.schemas[table],
                compression="zstd",
                compression_level=1,
                encryption_properties=self.crypto.encryption_properties(),
            )
            current = _OpenFile(writer, StagedFile(table, care_month, path, 0))
            self._open[key] = current
        current.writer.write_table(data.cast(self.schemas[table]), row_group_size=1_000_000)
        current.staged.rows += data.num_rows

    def _finish(self, key: tuple[str, str | None]) -> None:
        current = self._open.pop(key)
        current.writer.close()
        with current.staged.path.open("rb+") as f:
            os.fsync(f.fileno())
        current.staged.bytes = current.staged.path.stat().st_size
        current.staged.sha256 = sha256_file(current.staged.path)
        self._done.append(current.staged)

    def close(self) -> list[StagedFile]:
        self._drain()
        self._writer.shutdown()
        for key in list(self._open):
            self._finish(key)
        return list(self._done)

    def abort(self) -> None:
        for future in self._pending:
            future.cancel()
        self._writer.shutdown(wait=True)
        self._pending.clear()
        for current in self._open.values():
            with contextlib.suppress(Exception):  # the staging dir is removed just below
                current.writer.close()
        self._open.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def rewrite_file(
    crypto: ParquetCrypto, source: Path, target: Path, transform: Callable[[pa.Table], pa.Table]
) -> StagedFile:
    """Write ``target``: ``source`` with each row group passed through ``transform``, encrypted under a fresh data
    key, made durable (written beside, fsynced, renamed) before returning. One row group in memory at a time;
    the row groups, their order and so the files' pruning statistics are kept."""
    reader = pq.ParquetFile(source, decryption_properties=crypto.decryption_properties())
    partial = target.with_name(target.name + ".tmp")  # ".tmp": never taken into a backup
    rows = 0
    with pq.ParquetWriter(
        partial,
        reader.schema_arrow,
        compression="zstd",
        compression_level=1,
        encryption_properties=crypto.encryption_properties(),
    ) as writer:
        for group in range(reader.num_row_groups):
            data = transform(reader.read_row_group(group))
            writer.write_table(data.cast(reader.schema_arrow), row_group_size=max(data.num_rows, 1))
            rows += data.num_rows
    reader.close()
    with partial.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(partial, target)
    fsync_dir(target.parent)
    return StagedFile("", None, target, rows, target.stat().st_size, sha256_file(target))


class Warehouse:
    def __init__(self, directory: Path, crypto: ParquetCrypto) -> None:
        self.directory = directory
        self.crypto = crypto
        directory.mkdir(parents=True, exist_ok=True)

    # -- writing ----------------------------------------------------------------------------------

    @contextmanager
    def staging(self, token: str, schemas: dict[str, pa.Schema]) -> Iterator[Staging]:
        """A staging area removed on any exception (callers publish before leaving the block)."""
        directory = self.directory / STAGING / token
        directory.mkdir(parents=True, exist_ok=False)
        staging = Staging(directory, token, self.crypto, schemas)
        try:
            yield staging
        except BaseException:
            staging.abort()
            raise
        shutil.rmtree(directory, ignore_errors=True)

    def publish(self, staged: list[StagedFile], batch_id: str, token: str) -> list[FileRow]:
        """Move staged files into place; the caller commits the returned rows with the batch, then
        calls :meth:`settle`.

        An intent listing the files is made durable first, so recovery knows exactly which files belong to an
        unfinished publication and never touches any other file.
        """
        rows = []
        moves = []
        for item in staged:
            month_dir = f"care_month={item.care_month}" if item.care_month else NO_MONTH
            relative = Path(item.table) / month_dir / item.path.name
            moves.append((item, relative))
            rows.append(
                FileRow(
                    batch_id=batch_id,
                    table_name=item.table,
                    care_month=item.care_month,
                    path=relative.as_posix(),
                    rows=item.rows,
                    bytes=item.bytes,
                    sha256=item.sha256,
                )
            )
        pending = self.directory / PENDING
        pending.mkdir(exist_ok=True)
        intent = pending / f"{token}.json"
        with intent.open("w", encoding="utf-8") as f:
            json.dump({"batch_id": batch_id, "paths": [r.as_posix() for _, r in moves]}, f)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(pending)
        touched: set[Path] = set()
        for item, relative in moves:
            target = self.directory / relative
            for directory in (target.parent.parent, target.parent):
                if not directory.exists():
                    directory.mkdir()
                    touched.add(directory.parent)
            os.rename(item.path, target)
            touched.add(target.parent)
        for directory in touched:
            fsync_dir(directory)
        return rows

    def settle(self, token: str) -> None:
        """The batch is committed: its publication intent is no longer needed."""
        (self.directory / PENDING / f"{token}.json").unlink(missing_ok=True)

    def recover(self, session: Session) -> list[Path]:
        """Finish what an interrupted ingestion left: drop staging areas, and for each publication intent keep
        its files if the catalog committed the batch, or remove exactly those files if it did not.

        Call only while holding the ingestion lock, or a running ingestion would lose its staged files.
        """
        removed: list[Path] = []
        staging = self.directory / STAGING
        if staging.exists():
            for child in staging.iterdir():
                shutil.rmtree(child, ignore_errors=True)
                removed.append(child)
        pending = self.directory / PENDING
        if not pending.exists():
            return removed
        for intent in sorted(pending.glob("*.json")):
            try:
                plan = json.loads(intent.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                # An intent is written and fsynced before any file moves: a torn one means nothing moved.
                intent.unlink()
                continue
            committed = session.get(BatchRow, plan["batch_id"]) is not None
            if not committed:
                for relative in plan["paths"]:
                    path = self.directory / relative
                    if path.exists():
                        path.unlink()
                        removed.append(path)
            intent.unlink()
        fsync_dir(pending)
        return removed

    # -- reading ----------------------------------------------------------------------------------

    def files(self, session: Session, table: str) -> list[Path]:
        paths = session.scalars(select(FileRow.path).where(FileRow.table_name == table).order_by(FileRow.id))
        return [self.directory / p for p in paths]

    def dataset(self, session: Session, table: str) -> ds.Dataset | None:
        files = self.files(session, table)
        if not files:
            return None
        return self.dataset_of(files)

    def dataset_of(self, files: list[Path]) -> ds.Dataset:
        return ds.dataset([str(f) for f in files], format=self.crypto.file_format())

    def connect(self, session: Session, tables: list[str] | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with one view per warehouse table.

        DuckDB never spills to disk here (no temp directory): decrypted data stays in memory.
        """
        con = duckdb.connect(config={"temp_directory": ""})
        names = tables or list(session.scalars(select(FileRow.table_name).distinct()))
        for name in names:
            dataset = self.dataset(session, name)
            if dataset is not None:
                con.register(name, dataset)
        return con

    def row_counts(self, session: Session) -> dict[str, int]:
        result = session.execute(select(FileRow.table_name, func.sum(FileRow.rows)).group_by(FileRow.table_name))
        return {name: int(total) for name, total in result}

    def verify(self, session: Session) -> list[str]:
        """Check every catalogued file is present and unaltered; return one line per problem."""
        problems = []
        for row in session.scalars(select(FileRow)):
            path = self.directory / row.path
            if not path.exists():
                problems.append(f"{row.path}: missing")
            elif sha256_file(path) != row.sha256:
                problems.append(f"{row.path}: content differs from the catalog")
        return problems
